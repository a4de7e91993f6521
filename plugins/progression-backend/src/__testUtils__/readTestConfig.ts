import { Config } from '@backstage/config';
import {
  DEFAULT_DEPLOY_KIND,
  ProgressionExtensions,
  readProgressionConfig,
  readPrometheusConfig,
} from '../config/readProgressionConfig';
import { ProgressionConfig } from '../config/types';
import { builtInGates } from '../gates/builtInGates';
import { PrometheusClient } from '../prometheus/PrometheusClient';

/**
 * Reads a progression config section as a backend with no modules would:
 * the built-in gates, with a Prometheus client when the section configures
 * one (as plugin.ts builds them), and the kubernetes deployer.
 */
export function readTestConfig(
  config: Config,
  extensions?: ProgressionExtensions,
): ProgressionConfig {
  if (extensions) return readProgressionConfig(config, extensions);
  const prometheus = readPrometheusConfig(config);
  return readProgressionConfig(config, {
    gates: builtInGates({
      prometheus: prometheus && new PrometheusClient(prometheus),
    }),
    deployers: [{ kind: DEFAULT_DEPLOY_KIND }],
  });
}
