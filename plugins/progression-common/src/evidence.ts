/*
 * The evidence of the built-in gates: what `GateResult.evidence` holds for
 * each gate, as the backend's gates write it and the frontend reads it from
 * a promotion's steps and the promote dialog's preview. The REST contract
 * leaves evidence open, so these are not generated.
 *
 * A gate that could not measure (`error`, and some `skipped` results) may
 * leave its evidence partial or empty: read it defensively.
 */
import type { EntityFlags, GateStatus } from './types';

/**
 * One HTTP check of a smoke gate, as evidence.
 *
 * @public
 */
export interface SmokeCheckEvidence {
  name: string;
  request: { method: string; url: string };
  passed: boolean;
  attempts: number;
  status?: number;
  durationMs?: number;
  /** The start of the response body, at most 2 KiB. */
  bodyExcerpt?: string;
  /** Why it failed: the status, the assertion that was false, or the error. */
  failure?: string;
}

/**
 * What the smoke gate checked.
 *
 * @public
 */
export interface SmokeGateEvidence {
  checks: SmokeCheckEvidence[];
}

/**
 * How a measured value is shown to people.
 *
 * @public
 */
export type MetricUnit = 'ratio' | 'seconds' | 'ms' | 'rps' | 'none';

/**
 * One sample of a metric check.
 *
 * @public
 */
export interface MetricSample {
  time: string;
  value?: number;
  status: 'successful' | 'failed' | 'inconclusive' | 'error';
  note?: string;
  traffic?: number;
}

/**
 * One metric check of the metrics gate: its samples against the threshold.
 *
 * @public
 */
export interface MetricCheckEvidence {
  name: string;
  query: string;
  condition: string;
  threshold: number;
  baseline?: number;
  unit: MetricUnit;
  minTraffic?: { query: string; min: number };
  samples: MetricSample[];
  /** The median of the values measured, the baseline of later releases. */
  value?: number;
  status: GateStatus;
  reason: string;
  warnings?: string[];
}

/**
 * What the metrics gate (and the soak gate, which samples the stage a
 * release leaves) measured. Without a Prometheus to ask, the gate is
 * skipped and names only the checks it would have run.
 *
 * @public
 */
export type MetricsGateEvidence =
  | { prometheus: string; checks: MetricCheckEvidence[] }
  | {
      /** Set when the checks were optional and no Prometheus is configured. */
      optional?: true;
      checks: Array<Pick<MetricCheckEvidence, 'name' | 'query'>>;
    };

/**
 * What a load gate measured, as evidence.
 *
 * @public
 */
export interface LoadGateEvidence {
  target: {
    url: string;
    method: string;
    connections: number;
    durationMs?: number;
    requests?: number;
    rate?: number;
  };
  measured?: {
    /** Requests that ended: with a response or with an error. */
    requests: number;
    responses: number;
    /** Requests without a response: refused connections, resets, timeouts. */
    errors: number;
    timeouts: number;
    /** Responses with a status other than 2xx. */
    non2xx: number;
    /** The share of requests that failed or answered neither 2xx nor 3xx. */
    errorRate: number;
    /** Responses per second over the run. */
    throughput: number;
    elapsedMs: number;
    latencyMs: { p50: number; p95: number; p99: number; max: number };
    statusCodes: Record<string, number>;
    /** The most frequent error messages with their counts (at most 5). */
    errorMessages?: Record<string, number>;
  };
  /** The stage's `gates.load.thresholds`; at least one is set. */
  thresholds: {
    p95Ms?: number;
    p99Ms?: number;
    /** 0..1, the share of requests that failed or answered neither 2xx nor 3xx. */
    errorRate?: number;
    /** Responses per second. */
    minThroughput?: number;
  };
  violations: string[];
  /** Set when the run was cut short by the signal. */
  cancelled?: boolean;
}

/**
 * What a Job of the job gate does before the deploy.
 *
 * @public
 */
export type JobRole = 'backup' | 'migration';

/**
 * How a Job that a gate ran in a stage ended, as evidence: never secret
 * values (env var names only).
 *
 * @public
 */
export interface StageJobRun {
  name: string;
  namespace: string;
  image: string;
  command?: string[];
  args?: string[];
  /** Env var names given to the container (configured and inherited); never values. */
  envNames: string[];
  /** Whether this run created the Job or found it from an earlier run. */
  reused: boolean;
  status: 'complete' | 'failed' | 'timeout' | 'cancelled' | 'error';
  conditions: {
    type: string;
    status: string;
    reason?: string;
    message?: string;
  }[];
  durationMs?: number;
  pod?: string;
  exitCode?: number;
  /** The last lines of the pod's log, at most 4 KiB. */
  logTail?: string;
  logError?: string;
  error?: string;
  /** For a cancelled promotion's Job: whether it was deleted (with its pods). */
  deleted?: boolean;
}

/**
 * What the evidence says about one Job of the job gate.
 *
 * @public
 */
export type JobEvidence = { role: JobRole } & StageJobRun;

/**
 * The Jobs the job gate ran (the backup, then the migration) in the stage
 * namespace.
 *
 * @public
 */
export interface JobGateEvidence {
  namespace?: string;
  jobs: JobEvidence[];
}

/**
 * A Kubernetes label selector, as written in a resource.
 *
 * @public
 */
export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

/**
 * A NetworkPolicy ingress peer as written in the policy (Kubernetes'
 * `NetworkPolicyPeer`).
 *
 * @public
 */
export interface NetworkPolicyPeer {
  ipBlock?: { cidr: string; except?: string[] };
  namespaceSelector?: LabelSelector;
  podSelector?: LabelSelector;
}

/**
 * A namespace of another stage, as the isolation gate saw it.
 *
 * @public
 */
export interface OtherNamespace {
  stage: string;
  cluster: string;
  namespace: string;
  labels?: Record<string, string>;
  /** Why its labels are not known, or why it is not checked. */
  note?: string;
}

/**
 * An ingress rule that lets something other than the stage itself in.
 *
 * @public
 */
export interface IsolationViolation {
  policy: string;
  rule: number;
  /** The peer as written in the policy; absent for a rule without `from`. */
  peer?: NetworkPolicyPeer;
  /** What the rule admits, in words. */
  admits: string;
  /** The other stage's namespace it admits, when it is one. */
  namespace?: string;
  stage?: string;
  description: string;
}

/**
 * What the isolation gate found in the stage namespace's NetworkPolicies.
 *
 * @public
 */
export interface IsolationEvidence {
  cluster: string;
  namespace: string;
  labels: Record<string, string>;
  environmentLabel: string;
  environment?: string;
  policiesChecked: string[];
  defaultDeny: string | null;
  otherStages: OtherNamespace[];
  violations: IsolationViolation[];
  warnings: string[];
  /**
   * The namespace Backstage's checks come from, when configured
   * (`observerNamespace`): its labels, absent when it does not exist, and
   * the ingress rules that admit it ('policy rule i').
   */
  observer?: {
    namespace: string;
    labels?: Record<string, string>;
    admittedBy: string[];
  };
}

/**
 * A Secret or ConfigMap a pod template needs, and the keys it needs.
 *
 * @public
 */
export interface ResourceReference {
  kind: 'Secret' | 'ConfigMap';
  name: string;
  /** Keys named by the references (empty when the whole object is used). */
  keys: string[];
  /** Where it is referenced, e.g. `container api env DB_PASSWORD`. */
  usedBy: string[];
}

/**
 * Whether a referenced Secret or ConfigMap, with its keys, exists in the
 * target stage.
 *
 * @public
 */
export interface ReferenceCheck extends ResourceReference {
  exists: boolean;
  missingKeys: string[];
  /**
   * False for a Secret's keys the gate did not look at
   * (`gates.parity.secrets: names`: existence only).
   */
  keysChecked?: false;
}

/**
 * A difference between the stages that does not stop a promotion.
 *
 * @public
 */
export interface ParityWarning {
  kind: 'env' | 'resources' | 'replicas' | 'containers' | 'flag' | 'flags';
  message: string;
}

/**
 * What the parity gate compared between the stage a release comes from and
 * the one it goes to.
 *
 * @public
 */
export interface ParityEvidence {
  source: { stage: string; namespace: string; deployment?: string };
  target: { stage: string; namespace: string; deployment?: string };
  references: ReferenceCheck[];
  failures: string[];
  warnings: ParityWarning[];
  /** Both stages' feature flags side by side. */
  flags?: Omit<EntityFlags, 'entityRef'>;
}
