import { Config } from '@backstage/config';
import { parseEntityRef } from '@backstage/catalog-model';
import jsonata from 'jsonata';
import { PrometheusConfig } from '../prometheus/PrometheusClient';
import { checkQueryTemplate } from '../prometheus/promql';
import { ProgressionConfigError, readDurationMs } from './readHelpers';

export { ProgressionConfigError } from './readHelpers';
import { FlagsConfig, readFlagsConfig } from '../flags/readFlags';
import {
  IsolationGateConfig,
  readIsolationGateConfig,
} from '../gates/IsolationGate';
import { JobGateConfig, readJobGateConfig } from '../gates/JobGate';
import { LoadGateConfig, readLoadGateConfig } from '../gates/LoadGate';
import { MetricCheckConfig, readMetricsGateConfig } from '../gates/MetricsGate';
import { ParityGateConfig, readParityGateConfig } from '../gates/ParityGate';

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

/** One HTTP check of a stage's smoke gate. */
export interface SmokeCheckConfig {
  name: string;
  method: string;
  path: string;
  body?: string;
  headers: Record<string, string>;
  /** Acceptable HTTP statuses. */
  expectStatus: number[];
  /** JSONata expressions over the JSON body; each must be true. */
  assert: string[];
  timeoutMs: number;
  retries: number;
  retryDelayMs: number;
}

export interface ApprovalConfig {
  required: boolean;
  /** User and group entity refs whose members may approve. */
  approvers: string[];
  minApprovals: number;
  allowSelfApproval: boolean;
  expiresAfterMs?: number;
}

export interface StageConfig {
  name: string;
  title: string;
  cluster: string;
  namespace: string;
  /** The URL template, placeholders not yet filled in. */
  url?: string;
  /** Releases flow into this stage without a click once the previous one passed. */
  autoPromote: boolean;
  approval: ApprovalConfig;
  /** How long a release must stay healthy here before it may move on. */
  soakMs: number;
  rollback: { automatic: boolean };
  /** How long a rollout may take before the deploy fails. */
  rolloutTimeoutMs: number;
  smoke: SmokeCheckConfig[];
  /** The stage's other gates; each absent (or empty) when not configured. */
  gates: {
    metrics: MetricCheckConfig[];
    load?: LoadGateConfig;
    job?: JobGateConfig;
    isolation?: IsolationGateConfig;
    parity?: ParityGateConfig;
  };
  /** Where the stage's feature flags are read from. */
  flags: FlagsConfig;
}

/** The PromQL templates of the Environments tab's charts. */
export interface ChartQueries {
  requestRate: string;
  errorRate: string;
  p95: string;
}

const CHART_SELECTOR = 'namespace="{{ namespace }}",app="{{ app }}"';

/** Defaults for workloads that export http_requests_total and http_request_duration_seconds. */
export const DEFAULT_CHART_QUERIES: ChartQueries = {
  requestRate: `sum(rate(http_requests_total{${CHART_SELECTOR}}[1m]))`,
  errorRate: `(sum(rate(http_requests_total{${CHART_SELECTOR},status=~"5.."}[1m])) or vector(0)) / sum(rate(http_requests_total{${CHART_SELECTOR}}[1m]))`,
  p95: `histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{${CHART_SELECTOR}}[1m])))`,
};

export interface PipelineConfig {
  name: string;
  title: string;
  description?: string;
  stages: StageConfig[];
  /** The charts' queries; placeholders as in metric gates, except version. */
  charts: ChartQueries;
}

export interface ProgressionConfig {
  clusters: Map<string, ClusterConfig>;
  pipelines: Map<string, PipelineConfig>;
  worker: { heartbeatMs: number; staleMs: number };
  /** How long the read routes reuse a reader's catalog lookup of an entity. */
  entityCacheTtlMs: number;
  /** Where metric gates and charts read from; absent when not configured. */
  prometheus?: PrometheusConfig;
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

function readApproval(stage: Config, path: string): ApprovalConfig {
  const approval = stage.getOptionalConfig('approval');
  const approvers = approval?.getOptionalStringArray('approvers') ?? [];
  approvers.forEach((ref, i) => {
    try {
      const parsed = parseEntityRef(ref);
      if (!['user', 'group'].includes(parsed.kind.toLocaleLowerCase('en-US'))) {
        throw new Error('not a user or group');
      }
    } catch {
      throw new ProgressionConfigError(
        `${path}.approval.approvers[${i}]`,
        `'${ref}' is not a user or group entity reference such as group:default/release-managers`,
      );
    }
  });
  const required = approval?.getOptionalBoolean('required') ?? false;
  const minApprovals = approval?.getOptionalNumber('minApprovals') ?? 1;
  if (!Number.isInteger(minApprovals) || minApprovals < 1) {
    throw new ProgressionConfigError(
      `${path}.approval.minApprovals`,
      'must be a whole number of at least 1',
    );
  }
  if (required && approvers.length === 0) {
    throw new ProgressionConfigError(
      `${path}.approval.approvers`,
      'an approval is required but nobody may give it; name users or groups',
    );
  }
  return {
    required,
    approvers,
    minApprovals,
    allowSelfApproval:
      approval?.getOptionalBoolean('allowSelfApproval') ?? false,
    expiresAfterMs: approval
      ? readDurationMs(approval, 'expiresAfter', `${path}.approval`)
      : undefined,
  };
}

/** A check's body as sent: strings as they are, anything else as JSON. */
function bodyText(body: unknown): string | undefined {
  if (body === undefined) return undefined;
  return typeof body === 'string' ? body : JSON.stringify(body);
}

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

function readSmokeChecks(stage: Config, path: string): SmokeCheckConfig[] {
  const checks = stage.getOptionalConfigArray('gates.smoke.checks') ?? [];
  return checks.map((check, i) => {
    const checkPath = `${path}.gates.smoke.checks[${i}]`;
    const method = (check.getOptionalString('method') ?? 'GET').toUpperCase();
    if (!METHODS.includes(method)) {
      throw new ProgressionConfigError(
        `${checkPath}.method`,
        `'${method}' is not one of ${METHODS.join(', ')}`,
      );
    }
    const requestPath = check.getString('path');
    if (!requestPath.startsWith('/') || /[\s\\]/.test(requestPath)) {
      throw new ProgressionConfigError(
        `${checkPath}.path`,
        `'${requestPath}' must start with '/' and contain no spaces`,
      );
    }
    const expect = check.has('expectStatus')
      ? ([] as number[]).concat(
          check.getOptional('expectStatus') as number | number[],
        )
      : [200];
    if (!expect.every(n => Number.isInteger(n) && n >= 100 && n <= 599)) {
      throw new ProgressionConfigError(
        `${checkPath}.expectStatus`,
        'must be an HTTP status code or a list of them',
      );
    }
    const asserts = check.has('assert')
      ? ([] as string[]).concat(
          check.getOptional('assert') as string | string[],
        )
      : [];
    asserts.forEach((expression, j) => {
      try {
        jsonata(String(expression));
      } catch (e) {
        throw new ProgressionConfigError(
          `${checkPath}.assert${asserts.length > 1 ? `[${j}]` : ''}`,
          `not a valid JSONata expression: ${(e as Error).message}`,
        );
      }
    });
    const body = check.getOptional('body');
    const retries = check.getOptionalNumber('retries') ?? 0;
    if (!Number.isInteger(retries) || retries < 0 || retries > 20) {
      throw new ProgressionConfigError(
        `${checkPath}.retries`,
        'must be a whole number from 0 to 20',
      );
    }
    return {
      name: check.getOptionalString('name') ?? `${method} ${requestPath}`,
      method,
      path: requestPath,
      body: bodyText(body),
      headers: (check.getOptional('headers') as Record<string, string>) ?? {},
      expectStatus: expect,
      assert: asserts.map(String),
      timeoutMs: readDurationMs(check, 'timeout', checkPath) ?? 5000,
      retries,
      retryDelayMs: readDurationMs(check, 'retryDelay', checkPath) ?? 1000,
    };
  });
}

function readChartQueries(config: Config, path: string): ChartQueries {
  const read = (key: keyof ChartQueries) => {
    const query = config.getOptionalString(`metrics.${key}`);
    if (query === undefined) return DEFAULT_CHART_QUERIES[key];
    try {
      checkQueryTemplate(query);
    } catch (e) {
      throw new ProgressionConfigError(
        `${path}.metrics.${key}`,
        (e as Error).message,
      );
    }
    if (/\{\{\s*version\s*\}\}/.test(query)) {
      throw new ProgressionConfigError(
        `${path}.metrics.${key}`,
        'a chart spans releases, so it cannot use {{ version }}',
      );
    }
    return query;
  };
  return {
    requestRate: read('requestRate'),
    errorRate: read('errorRate'),
    p95: read('p95'),
  };
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
    const smoke = readSmokeChecks(stage, stagePath);
    if (smoke.length > 0 && url === undefined) {
      throw new ProgressionConfigError(
        `${stagePath}.url`,
        'the stage has smoke checks but no url to run them against',
      );
    }
    if (stage.has('gates.load') && url === undefined) {
      throw new ProgressionConfigError(
        `${stagePath}.url`,
        'the stage has a load test but no url to run it against',
      );
    }
    return {
      name: stageName,
      title: stage.getOptionalString('title') ?? stageName,
      cluster,
      namespace: readDnsLabel(stage, 'namespace', stagePath),
      url:
        url === undefined ? undefined : readStageUrl(url, `${stagePath}.url`),
      autoPromote: stage.getOptionalBoolean('autoPromote') ?? false,
      approval: readApproval(stage, stagePath),
      soakMs: readDurationMs(stage, 'soak', stagePath) ?? 0,
      rollback: {
        automatic: stage.getOptionalBoolean('rollback.automatic') ?? true,
      },
      rolloutTimeoutMs:
        readDurationMs(stage, 'rolloutTimeout', stagePath) ?? 10 * 60_000,
      smoke,
      gates: {
        metrics: readMetricsGateConfig(stage, stagePath),
        load: readLoadGateConfig(stage, stagePath),
        job: readJobGateConfig(stage, stagePath),
        isolation: readIsolationGateConfig(stage, stagePath),
        parity: readParityGateConfig(stage, stagePath),
      },
      flags: readFlagsConfig(stage, config, stagePath),
    };
  });
  return {
    name,
    title: config.getOptionalString('title') ?? name,
    description: config.getOptionalString('description'),
    stages,
    charts: readChartQueries(config, path),
  };
}

function readPrometheus(config: Config): PrometheusConfig | undefined {
  const prometheus = config.getOptionalConfig('progression.prometheus');
  const url = prometheus?.getOptionalString('url');
  if (!prometheus || !url) return undefined;
  readHttpUrl(url, 'progression.prometheus.url');
  const headers = prometheus.getOptionalConfig('headers');
  return {
    url,
    headers: Object.fromEntries(
      (headers?.keys() ?? []).map(k => [k, headers!.getString(k)]),
    ),
    timeoutMs:
      readDurationMs(prometheus, 'timeout', 'progression.prometheus') ?? 10_000,
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
  const worker = config.getOptionalConfig('progression.worker');
  const heartbeatMs =
    (worker &&
      readDurationMs(worker, 'heartbeatInterval', 'progression.worker')) ??
    10_000;
  const staleMs =
    (worker && readDurationMs(worker, 'staleAfter', 'progression.worker')) ??
    60_000;
  if (staleMs <= heartbeatMs) {
    throw new ProgressionConfigError(
      'progression.worker.staleAfter',
      'must be longer than heartbeatInterval, or live workers lose their promotions',
    );
  }
  const entityCacheTtlMs =
    readDurationMs(
      config.getOptionalConfig('progression') ?? config,
      'entityCacheTtl',
      'progression',
    ) ?? 5000;
  return {
    clusters,
    pipelines,
    worker: { heartbeatMs, staleMs },
    entityCacheTtlMs,
    prometheus: readPrometheus(config),
  };
}
