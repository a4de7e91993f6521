import { Config, readDurationFromConfig } from '@backstage/config';
import { durationToMilliseconds } from '@backstage/types';

/**
 * Thrown for a configuration the backend refuses to start with; names the
 * bad key so a platform team can find it.
 *
 * @public
 */
export class ProgressionConfigError extends Error {
  constructor(readonly key: string, problem: string) {
    super(`Invalid Progression configuration at '${key}': ${problem}`);
    this.name = 'ProgressionConfigError';
  }
}

/**
 * A duration in milliseconds, or undefined when the key is absent. Accepts
 * what Backstage's duration reader does (`10m`, `PT30S`, `{ minutes: 10 }`).
 *
 * @public
 */
export function readDurationMs(
  config: Config,
  key: string,
  path: string,
): number | undefined {
  if (!config.has(key)) return undefined;
  let ms: number;
  try {
    ms = durationToMilliseconds(readDurationFromConfig(config, { key }));
  } catch (e) {
    throw new ProgressionConfigError(
      `${path}.${key}`,
      `not a duration (use for example '10m', 'PT30S' or { minutes: 10 }): ${
        (e as Error).message
      }`,
    );
  }
  if (!(ms >= 0)) {
    throw new ProgressionConfigError(`${path}.${key}`, 'must not be negative');
  }
  return ms;
}
