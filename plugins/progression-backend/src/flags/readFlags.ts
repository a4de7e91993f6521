import { Config } from '@backstage/config';

/** Where a stage's feature flags live (flagd JSON in a ConfigMap). TO BE FILLED IN. */
export interface FlagsConfig {
  configMap: string;
  key: string;
}

/**
 * Reads a stage's `flags` (falling back to the pipeline's `flags`), with
 * the defaults ConfigMap `feature-flags`, key `flags.json`.
 */
export function readFlagsConfig(
  stage: Config,
  pipeline: Config,
  _path: string,
): FlagsConfig {
  const read = (key: string) =>
    stage.getOptionalString(`flags.${key}`) ??
    pipeline.getOptionalString(`flags.${key}`);
  return {
    configMap: read('configMap') ?? 'feature-flags',
    key: read('key') ?? 'flags.json',
  };
}
