import fs from 'node:fs';
import { Config } from '@backstage/config';
import {
  ANNOTATION_KUBERNETES_AUTH_PROVIDER,
  ANNOTATION_KUBERNETES_AWS_ASSUME_ROLE,
  ANNOTATION_KUBERNETES_AWS_EXTERNAL_ID,
  ANNOTATION_KUBERNETES_OIDC_TOKEN_PROVIDER,
} from '@backstage/plugin-kubernetes-common';
import { parseEntityRef, stringifyEntityRef } from '@backstage/catalog-model';
import {
  Deployer,
  GateDefinition,
  ProgressionConfigError,
  StageConfig,
  readDurationMs,
} from '@progression-io/backstage-plugin-progression-node';
import { isDnsLabel } from '../kubernetes/names';
import { authProviderProblem } from '../kubernetes/authProviders';
import { readFlagsConfig } from './readFlagsConfig';
import { PrometheusConfig } from '../prometheus/PrometheusClient';
import { checkQueryTemplate } from '../prometheus/promql';
import { readHttpUrl, readStageUrl } from './stageUrl';
import { checkAlertEntry } from '../windows/alertFreeze';
import { PromotionWindow, compileWindow } from '../windows/promotionWindows';
import {
  ApprovalConfig,
  ChartQueries,
  ClusterConfig,
  GkeLocator,
  PipelineConfig,
  ProgressionConfig,
  StageWindowPolicy,
} from './types';

export { ProgressionConfigError } from '@progression-io/backstage-plugin-progression-node';
export type {
  ApprovalConfig,
  ChartQueries,
  ClusterConfig,
  PipelineConfig,
  ProgressionConfig,
  StageConfig,
  StageWindowPolicy,
} from './types';
export {
  STAGE_URL_PLACEHOLDERS,
  renderStageUrl,
  resolveStageUrl,
} from './stageUrl';
export type { StageUrlValues } from './stageUrl';

/** The deploy kind of a stage that names none. */
export const DEFAULT_DEPLOY_KIND = 'kubernetes';

/**
 * What Progression was extended with: the gates and deployers a stage may
 * use, each reading its own section of the stage's configuration.
 */
export interface ProgressionExtensions {
  gates: readonly GateDefinition<any>[];
  deployers: readonly Pick<Deployer<any>, 'kind' | 'readConfig'>[];
}

/** A configured cluster, with why promotions cannot use it if they cannot. */
type UsableCluster = ClusterConfig & {
  problem?: { key: string; message: string };
};

const CHART_SELECTOR = 'namespace="{{ namespace }}",app="{{ app }}"';

/** Defaults for workloads that export http_requests_total and http_request_duration_seconds. */
export const DEFAULT_CHART_QUERIES: ChartQueries = {
  requestRate: `sum(rate(http_requests_total{${CHART_SELECTOR}}[1m]))`,
  errorRate: `(sum(rate(http_requests_total{${CHART_SELECTOR},status=~"5.."}[1m])) or vector(0)) / sum(rate(http_requests_total{${CHART_SELECTOR}}[1m]))`,
  p95: `histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{${CHART_SELECTOR}}[1m])))`,
};

function readDnsLabel(config: Config, key: string, path: string): string {
  const value = config.getString(key);
  if (!isDnsLabel(value)) {
    throw new ProgressionConfigError(
      `${path}.${key}`,
      `'${value}' is not a valid name: use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit`,
    );
  }
  return value;
}

/** Names of the Kubernetes plugin's cluster config keys the strategies read. */
const AUTH_METADATA_KEYS: Record<string, string> = {
  assumeRole: ANNOTATION_KUBERNETES_AWS_ASSUME_ROLE,
  externalId: ANNOTATION_KUBERNETES_AWS_EXTERNAL_ID,
  oidcTokenProvider: ANNOTATION_KUBERNETES_OIDC_TOKEN_PROVIDER,
};

/**
 * One cluster in the Kubernetes plugin's shape
 * (`kubernetes.clusterLocatorMethods[].clusters[]`, read as its config
 * locator reads it), or why a promotion cannot use it.
 */
function readCluster(
  c: Config,
  path: string,
  source: ClusterConfig['source'],
): ClusterConfig & { problem?: { key: string; message: string } } {
  const url = c.getString('url');
  readHttpUrl(url, `${path}.url`);
  // Read whole, as the Kubernetes plugin reads it: its keys hold '/' and '.'.
  const block = c.getOptional('authMetadata');
  if (
    block !== undefined &&
    (typeof block !== 'object' ||
      Array.isArray(block) ||
      Object.values(block as object).some(v => typeof v !== 'string'))
  ) {
    throw new ProgressionConfigError(
      `${path}.authMetadata`,
      'use an object of strings',
    );
  }
  const authMetadata: Record<string, string> = {};
  for (const [key, name] of Object.entries(AUTH_METADATA_KEYS)) {
    const value = c.getOptionalString(key);
    if (value) authMetadata[name] = value;
  }
  Object.assign(authMetadata, block);
  const authProvider =
    authMetadata[ANNOTATION_KUBERNETES_AUTH_PROVIDER] ??
    c.getOptionalString('authProvider') ??
    'serviceAccount';
  const caFile = c.getOptionalString('caFile');
  if (caFile !== undefined && !fs.existsSync(caFile)) {
    throw new ProgressionConfigError(`${path}.caFile`, `no file ${caFile}`);
  }
  const problem = authProviderProblem(authProvider);
  return {
    name: c.getString('name'),
    url,
    authProvider,
    serviceAccountToken: c.getOptionalString('serviceAccountToken'),
    ...(Object.keys(authMetadata).length && { authMetadata }),
    caData: c.getOptionalString('caData'),
    ...(caFile && { caFile }),
    skipTLSVerify: c.getOptionalBoolean('skipTLSVerify') ?? false,
    source,
    ...(problem && {
      problem: {
        key: `${path}.${
          c.has('authProvider') || !block ? 'authProvider' : 'authMetadata'
        }`,
        message: problem,
      },
    }),
  };
}

/** A `type: gke` locator, read as the Kubernetes plugin reads it. */
function readGkeLocator(method: Config, m: number): GkeLocator {
  const path = `kubernetes.clusterLocatorMethods[${m}]`;
  const endpointType = method.getOptionalString('endpointType') ?? 'public';
  if (endpointType !== 'public' && endpointType !== 'dns') {
    throw new ProgressionConfigError(
      `${path}.endpointType`,
      "use 'public' or 'dns'",
    );
  }
  return {
    projectId: method.getString('projectId'),
    region: method.getOptionalString('region') ?? '-',
    authProvider:
      method.getOptionalString('authProvider') === 'googleServiceAccount'
        ? 'googleServiceAccount'
        : 'google',
    skipTLSVerify: method.getOptionalBoolean('skipTLSVerify') ?? false,
    matchingResourceLabels: (
      method.getOptionalConfigArray('matchingResourceLabels') ?? []
    ).map(label => ({
      key: label.getString('key'),
      value: label.getString('value'),
    })),
    endpointType,
  };
}

/**
 * The clusters stages may name: Progression's own and the Kubernetes
 * plugin's (locators `config` and `localKubectlProxy`). A Kubernetes plugin
 * cluster a promotion cannot use (an auth provider with the user's own
 * token) is refused only when a stage names it: the Kubernetes tab may
 * still use it.
 */
function readClusters(config: Config): Map<string, UsableCluster> {
  const clusters = new Map<string, UsableCluster>();
  const add = (cluster: UsableCluster, path: string) => {
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
    const cluster = readCluster(c, path, 'progression.clusters');
    if (cluster.problem) {
      throw new ProgressionConfigError(
        cluster.problem.key,
        cluster.problem.message,
      );
    }
    add(cluster, path);
  });

  config
    .getOptionalConfigArray('kubernetes.clusterLocatorMethods')
    ?.forEach((method, m) => {
      const type = method.getOptionalString('type');
      const path = `kubernetes.clusterLocatorMethods[${m}]`;
      if (type === 'localKubectlProxy') {
        add(
          {
            name: 'local',
            url: 'http://127.0.0.1:8001',
            authProvider: 'localKubectlProxy',
            // Plain HTTP on loopback: client-node takes it only so.
            skipTLSVerify: true,
            source: 'kubernetes.clusterLocatorMethods',
          },
          path,
        );
      }
      if (type !== 'config') return;
      method.getOptionalConfigArray('clusters')?.forEach((c, i) => {
        const clusterPath = `${path}.clusters[${i}]`;
        add(
          readCluster(c, clusterPath, 'kubernetes.clusterLocatorMethods'),
          clusterPath,
        );
      });
    });
  return clusters;
}

function readApproval(stage: Config, path: string): ApprovalConfig {
  const approval = stage.getOptionalConfig('approval');
  // In full (`group:release-managers` is `group:default/release-managers`):
  // the catalog's relations that approvals are checked against name them so.
  const approvers = (approval?.getOptionalStringArray('approvers') ?? []).map(
    (ref, i) => {
      try {
        const parsed = parseEntityRef(ref);
        if (
          !['user', 'group'].includes(parsed.kind.toLocaleLowerCase('en-US'))
        ) {
          throw new Error('not a user or group');
        }
        return stringifyEntityRef(parsed);
      } catch {
        throw new ProgressionConfigError(
          `${path}.approval.approvers[${i}]`,
          `'${ref}' is not a user or group entity reference such as group:default/release-managers`,
        );
      }
    },
  );
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

/** The `windows`, `freezeOn` and `rollbacksWhenClosed` of a pipeline or a stage. */
function readWindowSection(
  config: Config,
  path: string,
  hasPrometheus: boolean,
): Partial<StageWindowPolicy> {
  const windows = (config.getOptionalConfigArray('windows') ?? []).map(
    (w, i): PromotionWindow => {
      const at = `${path}.windows[${i}]`;
      const kind = w.getString('kind');
      if (kind !== 'allow' && kind !== 'deny') {
        throw new ProgressionConfigError(
          `${at}.kind`,
          `'${kind}' is not a window kind; use allow or deny`,
        );
      }
      const durationMs = readDurationMs(w, 'duration', at);
      if (durationMs === undefined || durationMs <= 0) {
        throw new ProgressionConfigError(
          `${at}.duration`,
          'a window needs a duration longer than 0, for example 8h',
        );
      }
      const spec = {
        kind,
        name: w.getOptionalString('name'),
        schedule: w.getString('schedule'),
        durationMs,
        timezone: w.getOptionalString('timezone'),
      } as const;
      try {
        return compileWindow(spec);
      } catch (e) {
        throw new ProgressionConfigError(
          /time zone/.test((e as Error).message)
            ? `${at}.timezone`
            : `${at}.schedule`,
          (e as Error).message,
        );
      }
    },
  );
  const alerts = config.getOptionalStringArray('freezeOn.alerts');
  alerts?.forEach((entry, i) => {
    const problem = checkAlertEntry(entry);
    if (problem) {
      throw new ProgressionConfigError(
        `${path}.freezeOn.alerts[${i}]`,
        problem,
      );
    }
  });
  if (alerts?.length && !hasPrometheus) {
    throw new ProgressionConfigError(
      `${path}.freezeOn.alerts`,
      'alerts are read from Prometheus, and progression.prometheus is not configured',
    );
  }
  const rollbacks = config.getOptionalString('rollbacksWhenClosed');
  if (
    rollbacks !== undefined &&
    rollbacks !== 'allow' &&
    rollbacks !== 'deny'
  ) {
    throw new ProgressionConfigError(
      `${path}.rollbacksWhenClosed`,
      `'${rollbacks}' is not allowed; use allow or deny`,
    );
  }
  return {
    windows,
    freezeOnAlerts: alerts ?? [],
    ...(rollbacks && { rollbacksWhenClosed: rollbacks }),
  };
}

/**
 * Each stage's windows and freezes: the pipeline's apply to every stage,
 * a stage's own are added to them; a stage's `rollbacksWhenClosed` wins.
 */
function readWindowPolicies(
  pipeline: Config,
  path: string,
  stages: Config[],
  hasPrometheus: boolean,
): Map<string, StageWindowPolicy> {
  const shared = readWindowSection(pipeline, path, hasPrometheus);
  const policies = new Map<string, StageWindowPolicy>();
  stages.forEach((stage, i) => {
    const own = readWindowSection(stage, `${path}.stages[${i}]`, hasPrometheus);
    const policy: StageWindowPolicy = {
      windows: [...(shared.windows ?? []), ...(own.windows ?? [])],
      freezeOnAlerts: [
        ...new Set([
          ...(shared.freezeOnAlerts ?? []),
          ...(own.freezeOnAlerts ?? []),
        ]),
      ],
      rollbacksWhenClosed:
        own.rollbacksWhenClosed ?? shared.rollbacksWhenClosed ?? 'allow',
    };
    if (
      policy.windows.length ||
      policy.freezeOnAlerts.length ||
      policy.rollbacksWhenClosed !== 'allow'
    ) {
      policies.set(stage.getString('name'), policy);
    }
  });
  return policies;
}

function checkPipelineName(name: string) {
  if (!isDnsLabel(name)) {
    throw new ProgressionConfigError(
      `progression.pipelines.${name}`,
      `'${name}' is not a valid pipeline name: use lowercase letters, digits and '-'`,
    );
  }
}

function readDeploy(
  stage: Config,
  path: string,
  deployers: ProgressionExtensions['deployers'],
): StageConfig['deploy'] {
  const kind = stage.getOptionalString('deploy.kind') ?? DEFAULT_DEPLOY_KIND;
  const deployer = deployers.find(d => d.kind === kind);
  if (!deployer) {
    throw new ProgressionConfigError(
      `${path}.deploy.kind`,
      `no deployer '${kind}' is installed; installed: ${deployers
        .map(d => d.kind)
        .join(', ')}`,
    );
  }
  return {
    kind,
    config: deployer.readConfig?.(stage.getOptionalConfig('deploy'), {
      path: `${path}.deploy`,
    }),
  };
}

/**
 * Each installed gate's section of the stage, read by the gate itself;
 * a section no installed gate reads is an error (a typo, or a module that
 * is not installed).
 */
function readGates(
  stage: Config,
  path: string,
  policy: Omit<StageConfig, 'gates'>,
  gates: ProgressionExtensions['gates'],
): StageConfig['gates'] {
  const configured = stage.getOptionalConfig('gates');
  for (const key of configured?.keys() ?? []) {
    if (!gates.some(g => g.name === key)) {
      throw new ProgressionConfigError(
        `${path}.gates.${key}`,
        `no gate '${key}' is installed; installed: ${gates
          .map(g => g.name)
          .join(', ')}`,
      );
    }
  }
  return Object.fromEntries(
    gates.flatMap(gate => {
      const config = gate.readConfig(stage, { path, policy });
      return config === undefined ? [] : [[gate.name, config]];
    }),
  );
}

function readPipeline(
  name: string,
  config: Config,
  clusters: Map<string, UsableCluster>,
  fromCatalog: boolean,
  extensions: ProgressionExtensions,
  hasPrometheus: boolean,
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
  const stages = stageConfigs.map((stage, i): StageConfig => {
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
    if (!clusters.has(cluster) && !fromCatalog) {
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
    const problem = clusters.get(cluster)?.problem;
    if (problem) {
      throw new ProgressionConfigError(
        `${stagePath}.cluster`,
        `cluster '${cluster}' (${problem.key}) cannot be used by promotions: ${problem.message}`,
      );
    }
    const url = stage.getOptionalString('url');
    const policy = {
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
      readyTimeoutMs:
        readDurationMs(stage, 'readyTimeout', stagePath) ?? 60_000,
      deploy: readDeploy(stage, stagePath, extensions.deployers),
      flags: readFlagsConfig(stage, config, stagePath),
    };
    return {
      ...policy,
      gates: readGates(stage, stagePath, policy, extensions.gates),
    };
  });
  return {
    name,
    title: config.getOptionalString('title') ?? name,
    description: config.getOptionalString('description'),
    stages,
    charts: readChartQueries(config, path),
    windows: readWindowPolicies(config, path, stageConfigs, hasPrometheus),
  };
}

/** Where metric gates and charts read from; undefined when not configured. */
export function readPrometheusConfig(
  config: Config,
): PrometheusConfig | undefined {
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

function readWorker(config: Config): ProgressionConfig['worker'] {
  const path = 'progression.worker';
  const worker = config.getOptionalConfig(path);
  const duration = (key: string, fallback: number, at = path) => {
    const section = at === path ? worker : config.getOptionalConfig(at);
    return (section && readDurationMs(section, key, at)) ?? fallback;
  };
  const heartbeatMs = duration('heartbeatInterval', 10_000);
  const staleMs = duration('staleAfter', 60_000);
  if (staleMs <= heartbeatMs) {
    throw new ProgressionConfigError(
      `${path}.staleAfter`,
      'must be longer than heartbeatInterval, or live workers lose their promotions',
    );
  }
  const retryPath = `${path}.retry`;
  const retry = {
    initialDelayMs: duration('initialDelay', 1000, retryPath),
    maxDelayMs: duration('maxDelay', 60_000, retryPath),
    budgetMs: duration('budget', 5 * 60_000, retryPath),
  };
  if (retry.maxDelayMs < retry.initialDelayMs || retry.initialDelayMs <= 0) {
    throw new ProgressionConfigError(
      `${retryPath}.maxDelay`,
      'must be at least initialDelay, and initialDelay more than 0',
    );
  }
  const replicaId = worker?.getOptionalString('replicaId');
  if (replicaId !== undefined && !/^[\w.:-]{1,100}$/.test(replicaId)) {
    throw new ProgressionConfigError(
      `${path}.replicaId`,
      "use at most 100 letters, digits, '.', ':', '_' and '-'",
    );
  }
  return {
    heartbeatMs,
    staleMs,
    retry,
    stepTimeoutMs: duration('stepTimeout', 60 * 60_000),
    replicaId,
  };
}

/**
 * Reads and validates the `progression` section. Throws a
 * {@link ProgressionConfigError} naming the bad key, so that the backend
 * refuses to start with a broken pipeline rather than failing later.
 */
export function readProgressionConfig(
  config: Config,
  extensions: ProgressionExtensions,
): ProgressionConfig {
  const clusters = readClusters(config);
  const locators =
    config.getOptionalConfigArray('kubernetes.clusterLocatorMethods') ?? [];
  const clustersFromCatalog = locators.some(
    method => method.getOptionalString('type') === 'catalog',
  );
  const gkeLocators = locators
    .map((method, m) => ({ method, m }))
    .filter(({ method }) => method.getOptionalString('type') === 'gke')
    .map(({ method, m }) => readGkeLocator(method, m));
  const prometheus = readPrometheusConfig(config);
  const pipelines = new Map<string, PipelineConfig>();
  const pipelinesConfig = config.getOptionalConfig('progression.pipelines');
  for (const name of pipelinesConfig?.keys() ?? []) {
    checkPipelineName(name);
    pipelines.set(
      name,
      readPipeline(
        name,
        pipelinesConfig!.getConfig(name),
        clusters,
        clustersFromCatalog || gkeLocators.length > 0,
        extensions,
        prometheus !== undefined,
      ),
    );
  }
  const worker = readWorker(config);
  const entityCacheTtlMs =
    readDurationMs(
      config.getOptionalConfig('progression') ?? config,
      'entityCacheTtl',
      'progression',
    ) ?? 5000;
  const retention = config.getOptionalConfig('progression.retention');
  const keepLast = retention?.getOptionalNumber('keepLast') ?? 50;
  if (!Number.isInteger(keepLast) || keepLast < 1) {
    throw new ProgressionConfigError(
      'progression.retention.keepLast',
      'must be a whole number of at least 1',
    );
  }
  return {
    clusters,
    clustersFromCatalog,
    gkeLocators,
    pipelines,
    worker,
    retention: {
      keepForMs:
        (retention &&
          readDurationMs(retention, 'keepFor', 'progression.retention')) ??
        180 * 24 * 3600_000,
      keepLast,
    },
    entityCacheTtlMs,
    prometheus,
    notifications: {
      enabled:
        config.getOptionalBoolean('progression.notifications.enabled') ?? true,
    },
  };
}
