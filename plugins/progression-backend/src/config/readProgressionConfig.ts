import { Config } from '@backstage/config';

/** A cluster that stages can deploy to. */
export interface ClusterConfig {
  name: string;
  url: string;
  authProvider: 'serviceAccount';
  serviceAccountToken?: string;
  caData?: string;
  skipTLSVerify: boolean;
  /** Where it was configured, for error messages. */
  source: 'progression.clusters' | 'kubernetes.clusterLocatorMethods';
}

export interface StageConfig {
  name: string;
  title: string;
  cluster: string;
  namespace: string;
  /** The URL template, placeholders not yet filled in. */
  url?: string;
}

export interface PipelineConfig {
  name: string;
  title: string;
  description?: string;
  stages: StageConfig[];
}

export interface ProgressionConfig {
  clusters: Map<string, ClusterConfig>;
  pipelines: Map<string, PipelineConfig>;
}

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
// RFC 1123 label, the rule for namespace and stage names.
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** Thrown for a configuration the backend refuses to start with. */
export class ProgressionConfigError extends Error {
  constructor(readonly key: string, problem: string) {
    super(`Invalid Progression configuration at '${key}': ${problem}`);
    this.name = 'ProgressionConfigError';
  }
}

function readDnsLabel(config: Config, key: string, path: string): string {
  const value = config.getString(key);
  if (value.length > 63 || !DNS_LABEL.test(value)) {
    throw new ProgressionConfigError(
      `${path}.${key}`,
      `'${value}' is not a valid name: use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit`,
    );
  }
  return value;
}

function readHttpUrl(value: string, path: string): void {
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

function readStageUrl(template: string, path: string): string {
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
  // Check the shape with sample values so a typo fails at start-up.
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

function readClusters(config: Config): Map<string, ClusterConfig> {
  const clusters = new Map<string, ClusterConfig>();
  const add = (cluster: ClusterConfig, path: string) => {
    const existing = clusters.get(cluster.name);
    if (existing?.source === cluster.source) {
      throw new ProgressionConfigError(
        `${path}.name`,
        `duplicate cluster name '${cluster.name}'`,
      );
    }
    // progression.clusters wins over a Kubernetes plugin cluster of the same name.
    if (!existing || cluster.source === 'progression.clusters') {
      clusters.set(cluster.name, cluster);
    }
  };

  config.getOptionalConfigArray('progression.clusters')?.forEach((c, i) => {
    const path = `progression.clusters[${i}]`;
    const url = c.getString('url');
    readHttpUrl(url, `${path}.url`);
    const authProvider =
      c.getOptionalString('authProvider') ?? 'serviceAccount';
    if (authProvider !== 'serviceAccount') {
      throw new ProgressionConfigError(
        `${path}.authProvider`,
        `'${authProvider}' is not supported; use 'serviceAccount'`,
      );
    }
    add(
      {
        name: c.getString('name'),
        url,
        authProvider,
        serviceAccountToken: c.getOptionalString('serviceAccountToken'),
        caData: c.getOptionalString('caData'),
        skipTLSVerify: c.getOptionalBoolean('skipTLSVerify') ?? false,
        source: 'progression.clusters',
      },
      path,
    );
  });

  config
    .getOptionalConfigArray('kubernetes.clusterLocatorMethods')
    ?.forEach((method, m) => {
      if (method.getOptionalString('type') !== 'config') return;
      method.getOptionalConfigArray('clusters')?.forEach((c, i) => {
        const path = `kubernetes.clusterLocatorMethods[${m}].clusters[${i}]`;
        add(
          {
            name: c.getString('name'),
            url: c.getString('url'),
            authProvider: 'serviceAccount',
            serviceAccountToken: c.getOptionalString('serviceAccountToken'),
            caData: c.getOptionalString('caData'),
            skipTLSVerify: c.getOptionalBoolean('skipTLSVerify') ?? false,
            source: 'kubernetes.clusterLocatorMethods',
          },
          path,
        );
      });
    });
  return clusters;
}

function checkPipelineName(name: string) {
  if (!DNS_LABEL.test(name) || name.length > 63) {
    throw new ProgressionConfigError(
      `progression.pipelines.${name}`,
      `'${name}' is not a valid pipeline name: use lowercase letters, digits and '-'`,
    );
  }
}

function readPipeline(
  name: string,
  config: Config,
  clusters: Map<string, ClusterConfig>,
): PipelineConfig {
  const path = `progression.pipelines.${name}`;
  const stageConfigs = config.getOptionalConfigArray('stages') ?? [];
  if (stageConfigs.length === 0) {
    throw new ProgressionConfigError(
      `${path}.stages`,
      'a pipeline needs at least one stage',
    );
  }
  const seen = new Set<string>();
  const stages = stageConfigs.map((stage, i) => {
    const stagePath = `${path}.stages[${i}]`;
    const stageName = readDnsLabel(stage, 'name', stagePath);
    if (seen.has(stageName)) {
      throw new ProgressionConfigError(
        `${stagePath}.name`,
        `duplicate stage name '${stageName}'`,
      );
    }
    seen.add(stageName);
    const cluster = stage.getString('cluster');
    if (!clusters.has(cluster)) {
      const known = [...clusters.keys()];
      throw new ProgressionConfigError(
        `${stagePath}.cluster`,
        `unknown cluster '${cluster}'; ${
          known.length
            ? `configured clusters: ${known.join(', ')}`
            : 'no clusters are configured (progression.clusters)'
        }`,
      );
    }
    const url = stage.getOptionalString('url');
    return {
      name: stageName,
      title: stage.getOptionalString('title') ?? stageName,
      cluster,
      namespace: readDnsLabel(stage, 'namespace', stagePath),
      url:
        url === undefined ? undefined : readStageUrl(url, `${stagePath}.url`),
    };
  });
  return {
    name,
    title: config.getOptionalString('title') ?? name,
    description: config.getOptionalString('description'),
    stages,
  };
}

/**
 * Reads and validates the `progression` section. Throws a
 * {@link ProgressionConfigError} naming the bad key, so that the backend
 * refuses to start with a broken pipeline rather than failing later.
 */
export function readProgressionConfig(config: Config): ProgressionConfig {
  const clusters = readClusters(config);
  const pipelines = new Map<string, PipelineConfig>();
  const pipelinesConfig = config.getOptionalConfig('progression.pipelines');
  for (const name of pipelinesConfig?.keys() ?? []) {
    checkPipelineName(name);
    pipelines.set(
      name,
      readPipeline(name, pipelinesConfig!.getConfig(name), clusters),
    );
  }
  return { clusters, pipelines };
}
