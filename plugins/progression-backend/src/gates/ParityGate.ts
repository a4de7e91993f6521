import { Config } from '@backstage/config';

/** The `gates.parity` section of a stage. TO BE FILLED IN. */
// eslint-disable-next-line @typescript-eslint/no-empty-interface
export interface ParityGateConfig {}

/**
 * Reads and validates a stage's `gates.parity`, or undefined when the
 * stage has none. Throws ProgressionConfigError naming the bad key.
 */
export function readParityGateConfig(
  stage: Config,
  _path: string,
): ParityGateConfig | undefined {
  return stage.has('gates.parity') ? {} : undefined;
}
