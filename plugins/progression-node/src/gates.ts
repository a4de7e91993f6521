import { Config } from '@backstage/config';
import {
  GateResult,
  StageJobRun,
} from '@progression-io/backstage-plugin-progression-common';
import { KubeConfig, V1Deployment } from '@kubernetes/client-node';
import { LiveWorkload, RolloutResult } from './deployers';
import { EntityTarget, ReleaseRef, StageConfig, StageLocation } from './stage';

/**
 * When a gate runs, relative to the deploy: before the approval
 * (`preflight`), after it just before the deploy (`predeploy`), after the
 * deploy (`verification`), or after a rollback (`rollback`).
 *
 * @public
 */
export type GatePhase = GateResult['phase'];

/**
 * The phases in the order a promotion passes them.
 *
 * @public
 */
export const GATE_PHASES: readonly GatePhase[] = [
  'preflight',
  'predeploy',
  'verification',
  'rollback',
];

/**
 * Whether an abort's reason says that the promotion moved on without the
 * step (a cancel, a rejection): work the step started, such as a Job, is no
 * longer wanted and may be stopped. Any other reason (the backend shuts
 * down, the worker lost its claim) means that whoever takes the promotion
 * over carries on from that work, so it should be left running.
 *
 * @public
 */
export const isPromotionMoved = (reason: unknown): boolean =>
  reason instanceof Error && reason.name === 'PromotionMoved';

/**
 * A Kubernetes Job that a gate runs in a stage's namespace (a migration,
 * a load or API test image). The Job's name must be unique per promotion:
 * after a restart the runner finds the Job an earlier run created and waits
 * for it instead of creating a second one.
 *
 * @public
 */
export interface StageJobSpec {
  /** An RFC 1123 label, the same on every retry of the same promotion. */
  name: string;
  /** The promotion the Job belongs to; a Job of that name for another promotion is an error. */
  promotionId: string;
  /** The workload's label value, set on the Job. */
  kubernetesId: string;
  /** The container's name. */
  container: string;
  image: string;
  /** argv, run without a shell. */
  command?: string[];
  args?: string[];
  env?: Record<string, string>;
  /** More labels for the Job and its pod (the runner adds its own). */
  labels?: Record<string, string>;
  timeoutMs: number;
  backoffLimit: number;
  /**
   * Delete the Job (and its pods) when its promotion is cancelled while it
   * runs: a test image whose result nobody waits for. Default false: a Job
   * such as a migration is left to finish, a half-run one being worse.
   */
  deleteOnCancel?: boolean;
  /**
   * What the Job takes over from the stage's Deployment: its env, envFrom,
   * service account and image pull secrets.
   */
  inherited?: {
    env?: { name: string; value?: string; valueFrom?: unknown }[];
    envFrom?: unknown[];
    serviceAccountName?: string;
    imagePullSecrets?: { name: string }[];
  };
}

/**
 * The cluster access a gate gets; gates never talk to clusters any other way.
 *
 * @public
 */
export interface StageWorkloads {
  /** The client configuration of a configured cluster. */
  kubeConfig(cluster: StageLocation['cluster']): KubeConfig;
  /** The one Deployment labelled `backstage.io/kubernetes-id=<kubernetesId>`. */
  findDeployment(
    location: StageLocation,
    kubernetesId: string,
  ): Promise<V1Deployment>;
  /**
   * What runs in the stage now: the Deployment labelled
   * `backstage.io/kubernetes-id=<kubernetesId>` and its rollout, read from
   * the cluster (`cached`: from a watch cache; undefined when it holds
   * no single such Deployment).
   */
  readLive(
    location: StageLocation,
    kubernetesId: string,
    container?: string,
  ): Promise<LiveWorkload>;
  readCached(
    location: StageLocation,
    kubernetesId: string,
    container?: string,
  ): Promise<LiveWorkload | undefined>;
  /**
   * Waits for a Deployment's rollout as `kubectl rollout status` does,
   * failing fast on a new pod that cannot come up or stays unready past
   * `readyTimeoutMs`; rejects with `signal.reason` when it aborts.
   */
  waitForRollout(
    location: StageLocation,
    deployment: string,
    options: {
      timeoutMs: number;
      readyTimeoutMs?: number;
      signal?: AbortSignal;
    },
  ): Promise<RolloutResult>;
  /** The container of the Deployment that runs the release. */
  containerOf(
    deployment: V1Deployment,
    kubernetesId: string,
    wanted?: string,
  ): string;
  /**
   * Runs (or, after a restart, adopts) a Job and waits until it ends. When
   * `signal` aborts because the promotion was cancelled, a Job with
   * `deleteOnCancel` is deleted with its pods (`deleted` says whether it
   * was); when it aborts for a shutdown or a lost claim, the Job keeps
   * running for the worker that takes the promotion over to adopt.
   */
  runJob(
    location: StageLocation,
    spec: StageJobSpec,
    signal?: AbortSignal,
  ): Promise<StageJobRun>;
}

/**
 * What a gate gets to measure a stage. A preview (the promote dialog) has
 * no release, promotion id or results so far.
 *
 * @public
 */
export interface GateContext {
  stage: StageConfig;
  /** The stage URL with the entity's values filled in. */
  stageUrl?: string;
  /**
   * Aborted when the promotion is cancelled or its worker stops;
   * `isPromotionMoved(signal.reason)` tells the two apart.
   */
  signal?: AbortSignal;
  /** The entity whose release moves. */
  entity?: EntityTarget;
  /** The release being promoted (for a rollback: the one rolled back to). */
  release?: ReleaseRef;
  /** The promotion, for names of objects a gate creates. */
  promotionId?: string;
  /** Where the stage's workload runs. */
  location?: StageLocation;
  /** The stage the release comes from (the previous one), when there is one. */
  source?: { stage: StageConfig; location: StageLocation };
  /** The pipeline's other stages and where they run. */
  otherStages?: { stage: StageConfig; location: StageLocation }[];
  /** The cluster access. */
  workloads?: StageWorkloads;
  /** The results of the gates that ran before this one in this promotion. */
  results?: GateResult[];
  /**
   * What this gate measured for the last release that succeeded in this
   * stage (relative thresholds), by gate and check name.
   */
  baseline?: (gate: string, check: string) => Promise<number | undefined>;
}

/**
 * One kind of check between stages, registered through
 * `progressionGatesExtensionPoint`. A gate reads its own section of a
 * stage's configuration, says in which phases that configuration runs, and
 * returns a result with evidence. It does not throw for a failed
 * measurement: a gate that cannot measure returns `error` or
 * `inconclusive`, which never passes.
 *
 * @public
 */
export interface GateDefinition<TConfig = unknown> {
  /** Its name: the key of its section under a stage's `gates`, and of its results. */
  readonly name: string;
  /** The phases it may run in. */
  readonly phases: readonly GatePhase[];
  /**
   * Which stage's configuration turns it on: the stage being entered
   * (default), or the stage the release leaves (`source`, as soak does).
   */
  readonly configuredOn?: 'stage' | 'source';
  /**
   * Its effect outlasts a retry (a Job that ran): once it passed in a
   * promotion it is not run again there after a restart.
   */
  readonly once?: boolean;
  /**
   * Cheap and read-only before the approval: the promote dialog may run
   * it to show what would stop a promotion, without starting one.
   */
  readonly preview?: boolean;
  /**
   * Reads its section of a stage (`stage` is the whole stage; `path` its
   * key, for errors) and validates it, throwing a ProgressionConfigError
   * that names the bad key. Undefined when the stage does not configure it.
   * `policy` is what Progression itself read of the stage.
   */
  readConfig(
    stage: Config,
    options: { path: string; policy: Omit<StageConfig, 'gates'> },
  ): TConfig | undefined;
  /** The phases this configuration runs in; all of `phases` when absent. */
  phasesOf?(config: TConfig): readonly GatePhase[];
  /** Measures; the context's stage carries its configuration under `gates[name]`. */
  run(context: GateContext, phase: GatePhase): Promise<GateResult>;
}

/**
 * Starts a gate's clock: the function it returns builds the gate's result,
 * stamped with when the measurement started and ended.
 *
 * @public
 */
export function startGateResult(gate: string, phase: GatePhase) {
  const startedAt = new Date().toISOString();
  return (
    status: GateResult['status'],
    reason: string,
    evidence: unknown,
  ): GateResult => ({
    gate,
    phase,
    status,
    reason,
    evidence,
    startedAt,
    finishedAt: new Date().toISOString(),
  });
}

/**
 * The configuration a stage gives `gate`, and the phases it runs in then
 * (none when the stage does not configure it).
 *
 * @public
 */
export function configuredPhases(
  gate: GateDefinition<any>,
  stage: StageConfig,
  source?: StageConfig,
): readonly GatePhase[] {
  const from = gate.configuredOn === 'source' ? source : stage;
  const config = from?.gates[gate.name];
  if (config === undefined) return [];
  const phases = gate.phasesOf ? gate.phasesOf(config) : gate.phases;
  return phases.filter(p => gate.phases.includes(p));
}
