import { KubeObject, Store } from '../store/Store';

export interface TableColumn {
  name: string;
  type: 'string' | 'integer' | 'date';
  format?: string;
  description: string;
  /** 0 (the default) for `kubectl get`, more for `-o wide` only. */
  priority?: number;
  cell: (o: KubeObject) => string | number;
}

export interface ResourceType {
  group: string; // '' for the core group
  version: string;
  kind: string;
  plural: string;
  singular: string;
  namespaced: boolean;
  shortNames: string[];
  categories?: string[];
  subresources: string[];
  /** Whether spec changes bump metadata.generation. */
  hasGeneration: boolean;
  /**
   * A custom resource without a status subresource: any change outside
   * metadata (status included) bumps metadata.generation, as
   * apiextensions-apiserver's strategy does.
   */
  generationCountsStatus?: boolean;
  /** Whether status is only written through the /status subresource. */
  hasStatus: boolean;
  columns: TableColumn[];
  /** Server-side defaults, applied on create and update. */
  defaults?: (o: KubeObject) => void;
  /** Returns validation problems (422 Invalid when not empty). */
  validate?: (o: KubeObject) => string[];
  /**
   * Read-only objects computed from stored ones and never stored (the
   * metrics API's PodMetrics): get and list only.
   */
  derive?: (store: Store) => KubeObject[];
}

export function apiVersionOf(t: ResourceType) {
  return t.group ? `${t.group}/${t.version}` : t.version;
}

/** translateTimestampSince: how long ago, as kubectl prints it. */
const since = (timestamp: string | undefined) => {
  const at = Date.parse(timestamp ?? '');
  if (Number.isNaN(at)) return '<unknown>';
  const s = Math.max(0, Math.floor((Date.now() - at) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
};
const age = (o: KubeObject) => since(o.metadata.creationTimestamp);
const nameColumn: TableColumn = {
  name: 'Name',
  type: 'string',
  format: 'name',
  description: 'Name must be unique within a namespace.',
  cell: o => o.metadata.name,
};
const ageColumn: TableColumn = {
  name: 'Age',
  type: 'string',
  description:
    'CreationTimestamp is a timestamp representing the server time when this object was created.',
  cell: age,
};
const col = (
  name: string,
  cell: TableColumn['cell'],
  type: TableColumn['type'] = 'string',
): TableColumn => ({ name, type, description: name, cell });

// Defaults from k8s.io/kubernetes/pkg/apis/core/v1/defaults.go and
// pkg/apis/apps/v1/defaults.go, for the fields the plugins compare.
export function defaultPodSpec(spec: any) {
  if (!spec) return;
  spec.restartPolicy ??= 'Always';
  spec.terminationGracePeriodSeconds ??= 30;
  spec.dnsPolicy ??= 'ClusterFirst';
  spec.securityContext ??= {};
  spec.schedulerName ??= 'default-scheduler';
  for (const c of [
    ...(spec.initContainers ?? []),
    ...(spec.containers ?? []),
  ]) {
    const image: string = c.image ?? '';
    const tag = image.includes('@')
      ? 'digest'
      : image.split('/').pop()?.split(':')[1];
    c.imagePullPolicy ??= !tag || tag === 'latest' ? 'Always' : 'IfNotPresent';
    c.terminationMessagePath ??= '/dev/termination-log';
    c.terminationMessagePolicy ??= 'File';
    c.resources ??= {};
    for (const p of c.ports ?? []) p.protocol ??= 'TCP';
    for (const e of c.env ?? []) {
      if (e.valueFrom?.fieldRef) e.valueFrom.fieldRef.apiVersion ??= 'v1';
    }
  }
}

/** A workload's pod template, defaulted as the API server stores it. */
function defaultPodTemplate(spec: any) {
  spec.template ??= {};
  spec.template.metadata ??= {};
  spec.template.metadata.creationTimestamp ??= null;
  defaultPodSpec(spec.template.spec);
}

function validateName(o: KubeObject): string[] {
  const name = o.metadata?.name;
  if (!name)
    return ['metadata.name: Required value: name or generateName is required'];
  if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name) || name.length > 253) {
    return [
      `metadata.name: Invalid value: "${name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character`,
    ];
  }
  return [];
}

function validatePodTemplate(path: string, template: any): string[] {
  const problems: string[] = [];
  const containers = template?.spec?.containers;
  if (!Array.isArray(containers) || containers.length === 0) {
    problems.push(`${path}.spec.containers: Required value`);
  }
  (containers ?? []).forEach((c: any, i: number) => {
    if (!c.name)
      problems.push(`${path}.spec.containers[${i}].name: Required value`);
    if (!c.image)
      problems.push(`${path}.spec.containers[${i}].image: Required value`);
  });
  return problems;
}

function validateSelector(o: KubeObject): string[] {
  const problems = validatePodTemplate('spec.template', o.spec?.template);
  const selector = o.spec?.selector;
  if (!selector || (!selector.matchLabels && !selector.matchExpressions)) {
    problems.push('spec.selector: Required value');
  } else {
    const labels = o.spec?.template?.metadata?.labels ?? {};
    for (const [k, v] of Object.entries(selector.matchLabels ?? {})) {
      if (labels[k] !== v) {
        problems.push(
          'spec.template.metadata.labels: Invalid value: `selector` does not match template `labels`',
        );
        break;
      }
    }
  }
  return problems;
}

const percent = (v: unknown) => v;

export const RESOURCES: ResourceType[] = [
  {
    group: '',
    version: 'v1',
    kind: 'Namespace',
    plural: 'namespaces',
    singular: 'namespace',
    namespaced: false,
    shortNames: ['ns'],
    subresources: ['status'],
    hasGeneration: false,
    hasStatus: true,
    columns: [
      nameColumn,
      col('Status', o => o.status?.phase ?? 'Active'),
      ageColumn,
    ],
    defaults: o => {
      o.metadata.labels = {
        ...o.metadata.labels,
        'kubernetes.io/metadata.name': o.metadata.name,
      };
      o.spec = { finalizers: ['kubernetes'], ...o.spec };
      o.status = { phase: 'Active', ...o.status };
    },
    validate: validateName,
  },
  {
    group: '',
    version: 'v1',
    kind: 'Pod',
    plural: 'pods',
    singular: 'pod',
    namespaced: true,
    shortNames: ['po'],
    categories: ['all'],
    subresources: ['status', 'log'],
    hasGeneration: false,
    hasStatus: true,
    columns: [
      nameColumn,
      col('Ready', o => {
        const cs = o.status?.containerStatuses ?? [];
        return `${cs.filter((c: any) => c.ready).length}/${
          (o.spec?.containers ?? []).length
        }`;
      }),
      // The printer's rule (pkg/printers/internalversion/printers.go printPod):
      // a container's waiting or terminated reason wins over the phase.
      col('Status', o => {
        for (const c of o.status?.containerStatuses ?? []) {
          const reason =
            c.state?.waiting?.reason ?? c.state?.terminated?.reason;
          if (reason) return reason;
        }
        return o.status?.reason ?? o.status?.phase ?? 'Pending';
      }),
      // A string since Kubernetes 1.22: the count, and when the last
      // container that restarted had ended.
      col('Restarts', o => {
        let restarts = 0;
        let last = '';
        for (const c of o.status?.containerStatuses ?? []) {
          restarts += c.restartCount ?? 0;
          const ended = c.lastState?.terminated?.finishedAt ?? '';
          if (ended > last) last = ended;
        }
        return restarts && last ? `${restarts} (${since(last)} ago)` : restarts;
      }),
      ageColumn,
    ],
    defaults: o => defaultPodSpec(o.spec),
    validate: o => [
      ...validateName(o),
      ...validatePodTemplate('', { spec: o.spec }).map(p =>
        p.replace(/^\./, ''),
      ),
    ],
  },
  {
    group: '',
    version: 'v1',
    kind: 'ConfigMap',
    plural: 'configmaps',
    singular: 'configmap',
    namespaced: true,
    shortNames: ['cm'],
    subresources: [],
    hasGeneration: false,
    hasStatus: false,
    columns: [
      nameColumn,
      col(
        'Data',
        o =>
          Object.keys(o.data ?? {}).length +
          Object.keys(o.binaryData ?? {}).length,
        'integer',
      ),
      ageColumn,
    ],
    validate: validateName,
  },
  {
    group: '',
    version: 'v1',
    kind: 'Secret',
    plural: 'secrets',
    singular: 'secret',
    namespaced: true,
    shortNames: [],
    subresources: [],
    hasGeneration: false,
    hasStatus: false,
    columns: [
      nameColumn,
      col('Type', o => o.type),
      col('Data', o => Object.keys(o.data ?? {}).length, 'integer'),
      ageColumn,
    ],
    defaults: o => {
      o.type ??= 'Opaque';
      // stringData is write-only: it is merged into data, base64-encoded.
      if (o.stringData) {
        o.data = { ...o.data };
        for (const [k, v] of Object.entries(o.stringData)) {
          o.data[k] = Buffer.from(String(v)).toString('base64');
        }
        delete o.stringData;
      }
    },
    validate: validateName,
  },
  {
    group: '',
    version: 'v1',
    kind: 'Service',
    plural: 'services',
    singular: 'service',
    namespaced: true,
    shortNames: ['svc'],
    categories: ['all'],
    subresources: ['status'],
    hasGeneration: false,
    hasStatus: true,
    columns: [
      nameColumn,
      col('Type', o => o.spec?.type),
      col('Cluster-IP', o => o.spec?.clusterIP ?? '<none>'),
      col('External-IP', () => '<none>'),
      col(
        'Port(s)',
        o =>
          (o.spec?.ports ?? [])
            .map((p: any) => `${p.port}/${p.protocol}`)
            .join(',') || '<none>',
      ),
      ageColumn,
    ],
    defaults: o => {
      o.spec ??= {};
      o.spec.type ??= 'ClusterIP';
      o.spec.sessionAffinity ??= 'None';
      for (const p of o.spec.ports ?? []) {
        p.protocol ??= 'TCP';
        p.targetPort ??= p.port;
      }
      o.status ??= { loadBalancer: {} };
    },
    validate: validateName,
  },
  {
    group: 'apps',
    version: 'v1',
    kind: 'Deployment',
    plural: 'deployments',
    singular: 'deployment',
    namespaced: true,
    shortNames: ['deploy'],
    categories: ['all'],
    subresources: ['status', 'scale'],
    hasGeneration: true,
    hasStatus: true,
    columns: [
      nameColumn,
      col(
        'Ready',
        o => `${o.status?.readyReplicas ?? 0}/${o.spec?.replicas ?? 0}`,
      ),
      col('Up-to-date', o => o.status?.updatedReplicas ?? 0, 'integer'),
      col('Available', o => o.status?.availableReplicas ?? 0, 'integer'),
      ageColumn,
    ],
    defaults: o => {
      o.spec ??= {};
      o.spec.replicas ??= 1;
      o.spec.revisionHistoryLimit ??= 10;
      o.spec.progressDeadlineSeconds ??= 600;
      o.spec.strategy ??= { type: 'RollingUpdate' };
      if (o.spec.strategy.type === 'RollingUpdate') {
        o.spec.strategy.rollingUpdate ??= {};
        o.spec.strategy.rollingUpdate.maxSurge ??= percent('25%');
        o.spec.strategy.rollingUpdate.maxUnavailable ??= percent('25%');
      }
      defaultPodTemplate(o.spec);
    },
    validate: o => [...validateName(o), ...validateSelector(o)],
  },
  {
    group: 'apps',
    version: 'v1',
    kind: 'ReplicaSet',
    plural: 'replicasets',
    singular: 'replicaset',
    namespaced: true,
    shortNames: ['rs'],
    categories: ['all'],
    subresources: ['status', 'scale'],
    hasGeneration: true,
    hasStatus: true,
    columns: [
      nameColumn,
      col('Desired', o => o.spec?.replicas ?? 0, 'integer'),
      col('Current', o => o.status?.replicas ?? 0, 'integer'),
      col('Ready', o => o.status?.readyReplicas ?? 0, 'integer'),
      ageColumn,
    ],
    defaults: o => {
      o.spec ??= {};
      o.spec.replicas ??= 1;
      defaultPodTemplate(o.spec);
    },
    validate: o => [...validateName(o), ...validateSelector(o)],
  },
  {
    group: 'batch',
    version: 'v1',
    kind: 'Job',
    plural: 'jobs',
    singular: 'job',
    namespaced: true,
    shortNames: [],
    categories: ['all'],
    subresources: ['status'],
    hasGeneration: true,
    hasStatus: true,
    columns: [
      nameColumn,
      col('Status', o => {
        const c = (o.status?.conditions ?? []).find(
          (x: any) =>
            x.status === 'True' &&
            (x.type === 'Complete' || x.type === 'Failed'),
        );
        return c ? c.type : 'Running';
      }),
      col(
        'Completions',
        o => `${o.status?.succeeded ?? 0}/${o.spec?.completions ?? 1}`,
      ),
      col('Duration', o => {
        const start = Date.parse(o.status?.startTime ?? '');
        const end = Date.parse(o.status?.completionTime ?? '') || Date.now();
        return Number.isNaN(start)
          ? ''
          : `${Math.max(0, Math.round((end - start) / 1000))}s`;
      }),
      ageColumn,
    ],
    defaults: o => {
      o.spec ??= {};
      o.spec.backoffLimit ??= 6;
      o.spec.completions ??= 1;
      o.spec.parallelism ??= 1;
      o.spec.completionMode ??= 'NonIndexed';
      o.spec.suspend ??= false;
      defaultPodTemplate(o.spec);
      // pkg/registry/batch/job/strategy.go generateSelector: without a manual
      // selector, the Job selects its pods by its own uid.
      const uid = o.metadata.uid;
      if (!o.spec.manualSelector && !o.spec.selector && uid) {
        o.spec.selector = {
          matchLabels: { 'batch.kubernetes.io/controller-uid': uid },
        };
        o.spec.template.metadata.labels = {
          ...o.spec.template.metadata.labels,
          'batch.kubernetes.io/controller-uid': uid,
          'batch.kubernetes.io/job-name': o.metadata.name,
          'controller-uid': uid,
          'job-name': o.metadata.name,
        };
      }
    },
    validate: o => {
      const problems = [
        ...validateName(o),
        ...validatePodTemplate('spec.template', o.spec?.template),
      ];
      const rp = o.spec?.template?.spec?.restartPolicy;
      if (rp !== 'Never' && rp !== 'OnFailure') {
        problems.push(
          `spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"`,
        );
      }
      return problems;
    },
  },
  {
    group: 'networking.k8s.io',
    version: 'v1',
    kind: 'NetworkPolicy',
    plural: 'networkpolicies',
    singular: 'networkpolicy',
    namespaced: true,
    shortNames: ['netpol'],
    subresources: [],
    hasGeneration: true,
    hasStatus: false,
    columns: [
      nameColumn,
      col(
        'Pod-Selector',
        o =>
          Object.entries(o.spec?.podSelector?.matchLabels ?? {})
            .map(([k, v]) => `${k}=${v}`)
            .join(',') || '<none>',
      ),
      ageColumn,
    ],
    defaults: o => {
      o.spec ??= {};
      o.spec.podSelector ??= {};
      o.spec.policyTypes ??= o.spec.egress
        ? ['Ingress', 'Egress']
        : ['Ingress'];
    },
    validate: validateName,
  },
];

/** A kind the plugins list but the simulator runs no controller for. */
function storedOnly(
  group: string,
  version: string,
  kind: string,
  plural: string,
  extra: Partial<ResourceType> = {},
): ResourceType {
  return {
    group,
    version,
    kind,
    plural,
    singular: kind.toLowerCase(),
    namespaced: true,
    shortNames: [],
    subresources: [],
    hasGeneration: false,
    hasStatus: false,
    columns: [nameColumn, ageColumn],
    validate: validateName,
    ...extra,
  };
}

/** A stable small number from a name: the same pod shows the same usage. */
function spread(name: string, from: number, to: number) {
  let h = 0;
  for (const c of name) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return from + (h % (to - from + 1));
}

// What the Kubernetes plugin's backend lists besides the kinds above
// (@backstage/plugin-kubernetes-backend's default objects): stored and
// served, with no controller behind them.
RESOURCES.push(
  storedOnly('', 'v1', 'LimitRange', 'limitranges', { shortNames: ['limits'] }),
  storedOnly('', 'v1', 'ResourceQuota', 'resourcequotas', {
    shortNames: ['quota'],
    hasStatus: true,
    subresources: ['status'],
  }),
  storedOnly('apps', 'v1', 'StatefulSet', 'statefulsets', {
    shortNames: ['sts'],
    categories: ['all'],
    hasGeneration: true,
    hasStatus: true,
    subresources: ['status'],
  }),
  storedOnly('apps', 'v1', 'DaemonSet', 'daemonsets', {
    shortNames: ['ds'],
    categories: ['all'],
    hasGeneration: true,
    hasStatus: true,
    subresources: ['status'],
  }),
  storedOnly('batch', 'v1', 'CronJob', 'cronjobs', {
    shortNames: ['cj'],
    categories: ['all'],
    hasGeneration: true,
    hasStatus: true,
    subresources: ['status'],
    columns: [nameColumn, col('Schedule', o => o.spec?.schedule), ageColumn],
  }),
  storedOnly(
    'autoscaling',
    'v2',
    'HorizontalPodAutoscaler',
    'horizontalpodautoscalers',
    {
      singular: 'horizontalpodautoscaler',
      shortNames: ['hpa'],
      categories: ['all'],
      hasGeneration: true,
      hasStatus: true,
      subresources: ['status'],
      columns: [
        nameColumn,
        col(
          'Reference',
          o =>
            `${o.spec?.scaleTargetRef?.kind}/${o.spec?.scaleTargetRef?.name}`,
        ),
        col('MinPods', o => o.spec?.minReplicas ?? 1, 'integer'),
        col('MaxPods', o => o.spec?.maxReplicas ?? 0, 'integer'),
        ageColumn,
      ],
    },
  ),
  // Accounts and RBAC: stored, and read by the authorizer when the
  // simulator enforces RBAC (`--rbac`). A ServiceAccount's token comes from
  // its `token` subresource (the TokenRequest API, `kubectl create token`).
  storedOnly('', 'v1', 'ServiceAccount', 'serviceaccounts', {
    shortNames: ['sa'],
    subresources: ['token'],
  }),
  storedOnly('rbac.authorization.k8s.io', 'v1', 'Role', 'roles'),
  storedOnly('rbac.authorization.k8s.io', 'v1', 'RoleBinding', 'rolebindings'),
  storedOnly('rbac.authorization.k8s.io', 'v1', 'ClusterRole', 'clusterroles', {
    namespaced: false,
  }),
  storedOnly(
    'rbac.authorization.k8s.io',
    'v1',
    'ClusterRoleBinding',
    'clusterrolebindings',
    { namespaced: false },
  ),
  storedOnly('networking.k8s.io', 'v1', 'Ingress', 'ingresses', {
    shortNames: ['ing'],
    hasGeneration: true,
    hasStatus: true,
    subresources: ['status'],
  }),
  {
    // The metrics API (metrics-server): each running pod's usage now,
    // stable per pod, computed at every read.
    ...storedOnly('metrics.k8s.io', 'v1beta1', 'PodMetrics', 'pods', {
      singular: '',
      validate: undefined,
    }),
    derive: store => {
      const now = new Date().toISOString();
      return store
        .list('pods', undefined)
        .filter(pod => pod.status?.phase === 'Running')
        .map(pod => ({
          apiVersion: 'metrics.k8s.io/v1beta1',
          kind: 'PodMetrics',
          metadata: {
            name: pod.metadata.name,
            namespace: pod.metadata.namespace,
            labels: pod.metadata.labels,
            creationTimestamp: now,
          },
          timestamp: now,
          window: '15s',
          containers: (pod.spec?.containers ?? []).map((c: any) => ({
            name: c.name,
            usage: {
              cpu: `${spread(`${pod.metadata.name}/${c.name}`, 2, 40)}m`,
              memory: `${spread(`${c.name}/${pod.metadata.name}`, 30, 90)}Mi`,
            },
          })),
        }));
    },
  },
);

// Argo CD's Application CRD (applications.argoproj.io), as installed with
// Argo CD: no status subresource, its printer columns. The Argo CD stand-in
// (src/gitops/) reconciles these; without it they are only stored.
RESOURCES.push({
  group: 'argoproj.io',
  version: 'v1alpha1',
  kind: 'Application',
  plural: 'applications',
  singular: 'application',
  namespaced: true,
  shortNames: ['app', 'apps'],
  subresources: [],
  hasGeneration: true,
  generationCountsStatus: true,
  hasStatus: false,
  columns: [
    nameColumn,
    col('Sync Status', o => o.status?.sync?.status ?? ''),
    col('Health Status', o => o.status?.health?.status ?? ''),
    { ...col('Revision', o => o.status?.sync?.revision ?? ''), priority: 10 },
    { ...col('Project', o => o.spec?.project ?? ''), priority: 10 },
    ageColumn,
  ],
  // The CRD's schema requires spec.destination and spec.project.
  validate: o => [
    ...validateName(o),
    ...(o.spec?.destination ? [] : ['spec.destination: Required value']),
    ...(o.spec?.project ? [] : ['spec.project: Required value']),
  ],
});

export function findResource(group: string, version: string, plural: string) {
  return RESOURCES.find(
    r => r.group === group && r.version === version && r.plural === plural,
  );
}
