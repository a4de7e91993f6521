/**
 * One environment of a pipeline, as the REST API returns it.
 *
 * @public
 */
export interface Stage {
  /** Unique within its pipeline, for example `staging`. */
  name: string;
  /** Human-readable name, defaults to `name`. */
  title: string;
  /** The name of a configured cluster. */
  cluster: string;
  /** The namespace that holds the entity's workload in this stage. */
  namespace: string;
  /** Base URL of the stage for smoke and load checks, entity values filled in. */
  url?: string;
  /** Why the entity's URL override for this stage was ignored, if it was. */
  urlOverrideIgnored?: string;
  /** What runs in the stage now, from the cluster (absent when unknown). */
  live?: StageLive;
  /** The newest promotion into this stage. */
  lastPromotion?: PromotionSummary;
  /** The promotion running now, if any. */
  activePromotion?: PromotionSummary;
  /** Set when what runs differs from what the last successful promotion deployed. */
  drift?: { expectedImage: string; liveImage: string };
  /** Why the live state could not be read (for example an unreachable cluster). */
  error?: string;
  /**
   * Each gate's latest result in the stage's active promotion (or, when
   * none runs, its last one), with its one-line reason. The evidence is in
   * the promotion's details.
   */
  gates?: StageGateSummary[];
  /** The gates a promotion into this stage runs, in order, with when each runs. */
  configuredGates?: { gate: string; phase: string }[];
}

/**
 * A gate's latest result in a stage, for the card.
 *
 * @public
 */
export interface StageGateSummary {
  gate: string;
  status: string;
  reason?: string;
  promotionId: string;
  at: string;
}

/**
 * The workload of an entity in one stage, as the cluster reports it.
 *
 * @public
 */
export interface StageLive {
  deployment: string;
  image: string;
  /** The release version whose image runs, or the image tag. */
  version: string;
  revision: number;
  replicas: number;
  readyReplicas: number;
  updatedReplicas: number;
  availableReplicas: number;
  health: 'healthy' | 'progressing' | 'degraded';
  /** kubectl rollout status's words for it. */
  message: string;
}

/**
 * A promotion in a few words.
 *
 * @public
 */
export interface PromotionSummary {
  id: string;
  state: string;
  version: string;
  requestedBy: string;
  createdAt: string;
  finishedAt?: string;
  error?: string;
  /** While it awaits approval: who approved (for the current evidence) and how many are needed. */
  approvals?: { approvedBy: string[]; needed: number };
}

/**
 * An ordered list of stages that a release goes through.
 *
 * @public
 */
export interface Pipeline {
  name: string;
  title: string;
  description?: string;
  stages: Stage[];
}

/**
 * The environments of one catalog entity: its pipeline and how its workload
 * is found in each stage.
 *
 * @public
 */
export interface EntityEnvironments {
  /** Full entity reference, for example `component:default/payments-api`. */
  entityRef: string;
  pipeline: Pipeline;
  /** The `backstage.io/kubernetes-id` label value (the entity name when the annotation is absent). */
  kubernetesId: string;
}

/**
 * The outcome of a gate. A gate that cannot measure is `error` or
 * `inconclusive` and does not pass unless its configuration says so.
 *
 * @public
 */
export type GateStatus =
  | 'passed'
  | 'failed'
  | 'inconclusive'
  | 'error'
  | 'skipped';

/**
 * A gate's result with its evidence: what was measured, against what, and
 * a one-line reason a person understands.
 *
 * @public
 */
export interface GateResult {
  gate: string;
  /**
   * When it ran: before the approval (`preflight`), after the approval just
   * before the deploy (`predeploy`, for example a migration Job), after the
   * deploy (`verification`), or after a rollback (`rollback`).
   */
  phase: 'preflight' | 'predeploy' | 'verification' | 'rollback';
  status: GateStatus;
  reason: string;
  evidence: unknown;
  startedAt: string;
  finishedAt: string;
}

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
 * One point of a metric series: Unix seconds and the value (null where
 * Prometheus had none, for example no traffic).
 *
 * @public
 */
export interface MetricPoint {
  t: number;
  v: number | null;
}

/**
 * A stage's request rate (req/s), error rate (0..1) and p95 latency
 * (seconds) over a time range.
 *
 * @public
 */
export interface StageMetrics {
  stage: string;
  requestRate?: MetricPoint[];
  errorRate?: MetricPoint[];
  p95?: MetricPoint[];
  /** Why this stage's series could not be read. */
  error?: string;
}

/**
 * The metrics of an entity's stages, as the REST API returns them.
 *
 * @public
 */
export interface EntityMetrics {
  entityRef: string;
  /** False when no Prometheus is configured; `reason` says so. */
  available: boolean;
  reason?: string;
  range: string;
  stepSeconds: number;
  stages: StageMetrics[];
}

/**
 * One feature flag across an entity's stages.
 *
 * @public
 */
export interface FlagRow {
  key: string;
  /** Per stage; null when the stage lacks the flag or its flags could not be read. */
  values: Record<
    string,
    { state: string; variant: string; value: unknown } | null
  >;
  /** The effective value differs between stages. */
  differs: boolean;
}

/**
 * The feature flags of an entity's stages (flagd JSON in each stage's
 * ConfigMap), with the differences marked.
 *
 * @public
 */
export interface EntityFlags {
  entityRef: string;
  stages: string[];
  flags: FlagRow[];
  /** Stages whose flags could not be read, and why. */
  errors: Record<string, string>;
}

/**
 * The states of a promotion (see the backend's transition table).
 *
 * @public
 */
export const PROMOTION_STATES = [
  'pending',
  'preflight',
  'awaiting-approval',
  'deploying',
  'verifying',
  'succeeded',
  'failed',
  'rejected',
  'cancelled',
  'rolling-back',
  'rolled-back',
] as const;

/**
 * A state of a promotion.
 *
 * @public
 */
export type PromotionState = (typeof PROMOTION_STATES)[number];

/**
 * The states a promotion ends in.
 *
 * @public
 */
export const TERMINAL_PROMOTION_STATES: readonly PromotionState[] = [
  'succeeded',
  'failed',
  'rejected',
  'cancelled',
  'rolled-back',
];

/**
 * A release as the REST API returns it.
 *
 * @public
 */
export interface ReleaseDto {
  id: string;
  entityRef: string;
  version: string;
  image: string;
  commit?: string;
  url?: string;
  createdBy: string;
  createdAt: string;
}

/**
 * A promotion (or an on-demand rollback) as the REST API returns it.
 *
 * @public
 */
export interface PromotionDto {
  id: string;
  kind: 'promotion' | 'rollback';
  entityRef: string;
  pipeline: string;
  stage: string;
  state: PromotionState;
  release: ReleaseDto;
  requestedBy: string;
  reason?: string;
  error?: string;
  createdAt: string;
  updatedAt: string;
  finishedAt?: string;
}

/**
 * One step of a promotion as the REST API returns it: a transition, the
 * deploy, a gate with its evidence, a rollback.
 *
 * @public
 */
export interface PromotionStepDto {
  id: number;
  kind: string;
  name: string;
  status: string;
  fromState?: string;
  toState?: string;
  actor?: string;
  reason?: string;
  evidence?: unknown;
  startedAt: string;
  finishedAt?: string;
}

/**
 * Whether an entity is ready for Progression (`POST /v1/validate`); valid
 * when there are no problems.
 *
 * @public
 */
export interface EntityValidation {
  valid: boolean;
  pipeline?: string;
  stages: string[];
  kubernetesId: string;
  problems: string[];
  warnings: string[];
}
