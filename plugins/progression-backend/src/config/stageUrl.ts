import { ProgressionConfigError } from '@progression-io/backstage-plugin-progression-node';

/** The placeholders a stage URL may use. */
export const STAGE_URL_PLACEHOLDERS = [
  'entity.name',
  'entity.namespace',
  'kubernetesId',
  'stage.name',
  'stage.namespace',
] as const;

export type StageUrlValues = Record<
  (typeof STAGE_URL_PLACEHOLDERS)[number],
  string
>;

const PLACEHOLDER = /\{\{\s*([^}\s]*)\s*\}\}/g;

/** Throws, naming `path`, unless `value` is an http or https URL. */
export function readHttpUrl(value: string, path: string): void {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ProgressionConfigError(path, `'${value}' is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ProgressionConfigError(
      path,
      `'${value}' must be an http or https URL`,
    );
  }
}

/**
 * Fills a stage URL template. Values are entity and stage names (already
 * restricted to URL-safe characters) and are percent-encoded all the same.
 */
export function renderStageUrl(
  template: string,
  values: StageUrlValues,
): string {
  return template.replace(PLACEHOLDER, (_, name: string) =>
    encodeURIComponent(values[name as keyof StageUrlValues]),
  );
}

/** Checks a stage URL template at start-up, so a typo fails early. */
export function readStageUrl(template: string, path: string): string {
  for (const [, name] of template.matchAll(PLACEHOLDER)) {
    if (!(STAGE_URL_PLACEHOLDERS as readonly string[]).includes(name)) {
      throw new ProgressionConfigError(
        path,
        `unknown placeholder '{{ ${name} }}'; use one of ${STAGE_URL_PLACEHOLDERS.map(
          p => `{{ ${p} }}`,
        ).join(', ')}`,
      );
    }
  }
  readHttpUrl(
    renderStageUrl(template, {
      'entity.name': 'example',
      'entity.namespace': 'default',
      kubernetesId: 'example',
      'stage.name': 'stage',
      'stage.namespace': 'namespace',
    }),
    path,
  );
  return template;
}

/**
 * A stage's URL for one entity: the configured template filled in, or the
 * entity's override (`progression.backstage.io/url.<stage>`) when it keeps
 * the configured URL's origin. An override may narrow where checks go (a
 * path of its own), never widen it: one on another origin, or on a stage
 * without a configured URL, is ignored and `ignored` says why.
 */
export function resolveStageUrl(
  template: string | undefined,
  values: StageUrlValues,
  override?: string,
): { url?: string; ignored?: string } {
  const url = template ? renderStageUrl(template, values) : undefined;
  if (override === undefined) return { url };
  if (!url) {
    return {
      url,
      ignored: `the stage has no configured url, so the override '${override}' is ignored`,
    };
  }
  let parsed: URL;
  try {
    parsed = new URL(override);
  } catch {
    return { url, ignored: `the override '${override}' is not a URL` };
  }
  const configured = new URL(url);
  if (
    parsed.origin !== configured.origin ||
    parsed.username ||
    parsed.password
  ) {
    return {
      url,
      ignored: `the override '${override}' leaves the configured origin ${configured.origin}`,
    };
  }
  return { url: parsed.toString().replace(/\/$/, '') };
}
