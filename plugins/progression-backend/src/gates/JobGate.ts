import { Config } from '@backstage/config';

/** The `gates.job` section of a stage. TO BE FILLED IN. */
// eslint-disable-next-line @typescript-eslint/no-empty-interface
export interface JobGateConfig {}

/**
 * Reads and validates a stage's `gates.job`, or undefined when the
 * stage has none. Throws ProgressionConfigError naming the bad key.
 */
export function readJobGateConfig(
  stage: Config,
  _path: string,
): JobGateConfig | undefined {
  return stage.has('gates.job') ? {} : undefined;
}
