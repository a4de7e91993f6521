import { Config } from '@backstage/config';
import {
  FlagsConfig,
  ProgressionConfigError,
} from '@progression-io/backstage-plugin-progression-node';
import { isConfigMapKey, isDnsSubdomain } from '../kubernetes/names';

/**
 * Reads a stage's `flags` (falling back to the pipeline's `flags`), with
 * the defaults ConfigMap `feature-flags`, key `flags.json`. `path` is the
 * stage's path (`progression.pipelines.<name>.stages[<i>]`); a bad value
 * is named at the stage or the pipeline, wherever it was set.
 */
export function readFlagsConfig(
  stage: Config,
  pipeline: Config,
  path: string,
): FlagsConfig {
  const pipelinePath = path.replace(/\.stages\[\d+\]$/, '');
  const read = (
    key: 'configMap' | 'key',
    valid: (v: string) => boolean,
    rule: string,
  ): string | undefined => {
    for (const [config, at] of [
      [stage, path],
      [pipeline, pipelinePath],
    ] as const) {
      if (!config.has(`flags.${key}`)) continue;
      const value = config.getOptional(`flags.${key}`);
      if (typeof value !== 'string' || !valid(value)) {
        throw new ProgressionConfigError(
          `${at}.flags.${key}`,
          `${JSON.stringify(value)} is not a valid ${rule}`,
        );
      }
      return value;
    }
    return undefined;
  };
  return {
    configMap:
      read(
        'configMap',
        isDnsSubdomain,
        "ConfigMap name: use at most 253 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit",
      ) ?? 'feature-flags',
    key:
      read(
        'key',
        isConfigMapKey,
        "ConfigMap key: use letters, digits, '-', '_' and '.'",
      ) ?? 'flags.json',
  };
}
