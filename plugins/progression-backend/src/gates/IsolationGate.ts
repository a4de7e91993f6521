import { Config } from '@backstage/config';

/** The `gates.isolation` section of a stage. TO BE FILLED IN. */
// eslint-disable-next-line @typescript-eslint/no-empty-interface
export interface IsolationGateConfig {}

/**
 * Reads and validates a stage's `gates.isolation`, or undefined when the
 * stage has none. Throws ProgressionConfigError naming the bad key.
 */
export function readIsolationGateConfig(
  stage: Config,
  _path: string,
): IsolationGateConfig | undefined {
  return stage.has('gates.isolation') ? {} : undefined;
}
