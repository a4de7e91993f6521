import { Config } from '@backstage/config';

/** The `gates.load` section of a stage. TO BE FILLED IN. */
// eslint-disable-next-line @typescript-eslint/no-empty-interface
export interface LoadGateConfig {}

/**
 * Reads and validates a stage's `gates.load`, or undefined when the
 * stage has none. Throws ProgressionConfigError naming the bad key.
 */
export function readLoadGateConfig(
  stage: Config,
  _path: string,
): LoadGateConfig | undefined {
  return stage.has('gates.load') ? {} : undefined;
}
