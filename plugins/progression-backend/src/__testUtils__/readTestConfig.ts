import { Config } from '@backstage/config';
import {
  DEFAULT_DEPLOY_KIND,
  ProgressionExtensions,
  readProgressionConfig,
} from '../config/readProgressionConfig';
import { ProgressionConfig } from '../config/types';
import { builtInGates } from '../gates/builtInGates';

/**
 * Reads a progression config section as a backend with no modules would:
 * the built-in gates and the kubernetes deployer.
 */
export function readTestConfig(
  config: Config,
  extensions: ProgressionExtensions = {
    gates: builtInGates(),
    deployers: [{ kind: DEFAULT_DEPLOY_KIND }],
  },
): ProgressionConfig {
  return readProgressionConfig(config, extensions);
}
