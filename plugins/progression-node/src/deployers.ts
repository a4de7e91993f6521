import { Config } from '@backstage/config';
import type { StageGitOps } from '@progression-io/backstage-plugin-progression-common';
import type { StageWorkloads } from './gates';
import { EntityTarget, ReleaseRef, StageConfig, StageLocation } from './stage';

/**
 * How a rollout stands, in `kubectl rollout status`'s words.
 *
 * @public
 */
export interface RolloutResult {
  done: boolean;
  failed: boolean;
  message: string;
  /**
   * The new pod that made the rollout fail before its deadline, when one
   * did: the container, the kubelet's waiting reason (or `NotReady` after
   * the stage's `readyTimeout`), its message and the restarts so far.
   */
  pod?: {
    name: string;
    container: string;
    reason: string;
    message?: string;
    restartCount?: number;
  };
  /**
   * What the deployer saw of the system it deployed through, kept as the
   * step's evidence (`observed`): for Argo CD, the sync operation
   * (revision, phase, start and end, who started it) and the health.
   */
  evidence?: Record<string, unknown>;
}

/**
 * What runs in a stage now.
 *
 * @public
 */
export interface LiveWorkload {
  deployment: string;
  container: string;
  image: string;
  revision: number;
  replicas: number;
  readyReplicas: number;
  updatedReplicas: number;
  availableReplicas: number;
  generation: number;
  observedGeneration: number;
  /** The promotion that last deployed it, when Progression did. */
  promotionId?: string;
  /**
   * The entity it belongs to (`progression.backstage.io/entity-ref`): the
   * one whose promotion first changed it, the only one that may change it
   * again. Undefined until a promotion did.
   */
  entityRef?: string;
  changeCause?: string;
  /** Done, failed (its progress deadline passed), or still rolling out. */
  rollout: { done: boolean; failed?: boolean; message: string };
  /**
   * Set when a GitOps tool manages the Deployment (Argo CD's tracking
   * annotation): the Application's name. Progression's own image patch
   * refuses such a Deployment; the tool's deployer changes Git instead.
   */
  managedBy?: { tool: 'argocd'; application: string };
  /** For a GitOps stage: what each side says runs, and where they differ. */
  gitops?: GitOpsState;
}

/**
 * A GitOps stage seen from its three sides: the overlay at the branch head
 * (Git), the Application (Argo CD) and the live Deployment; `drift` names
 * each side that disagrees. The environments API's `Stage.gitops`, one
 * type so that what a deployer reports and what the API answers cannot
 * drift apart.
 *
 * @public
 */
export type GitOpsState = StageGitOps;

/**
 * The entity's workload in one stage: what a deployer acts on.
 *
 * @public
 */
export interface DeployTarget {
  entity: EntityTarget;
  stage: StageConfig;
  location: StageLocation;
  /** The stage's cluster, through Progression's client (and credentials). */
  workloads: StageWorkloads;
}

/**
 * What a deploy is about to change, recorded before it changes anything:
 * enough to tell after a restart whether the change already happened, and
 * to undo it. A deployer may add its own fields (commits, revisions).
 *
 * @public
 */
export interface DeployRecord {
  cluster: string;
  namespace: string;
  deployment: string;
  container: string;
  fromImage: string;
  fromRevision: number;
  toImage: string;
  [detail: string]: unknown;
}

/**
 * One deploy of a promotion.
 *
 * @public
 */
export interface DeployRequest {
  promotionId: string;
  /** A promotion moves forward; an on-demand rollback goes back to `release`. */
  kind: 'promotion' | 'rollback';
  release: ReleaseRef;
  /** Why, in words, for the workload's history. */
  changeCause: string;
  /** Who asked for it (a user entity ref), when a person did. */
  requestedBy?: string;
  /** What an earlier attempt of this promotion recorded, if it got that far. */
  previous?: DeployRecord;
}

/**
 * How a release reaches a stage and leaves it, registered through
 * `progressionDeployersExtensionPoint`; a stage picks one with
 * `deploy.kind`. The engine records `plan`'s record before it calls
 * `apply`, so that a crash in between still knows what to undo, and calls
 * nothing twice that already reached the stage.
 *
 * Within one run of a promotion the engine passes the same record object
 * to `apply`, `awaitRollout` and `rollBack`, and puts it in the rollout's
 * evidence afterwards: a deployer may add to it what it learns on the way
 * (the Argo CD deployer adds its deploy commit in `apply` and its
 * roll-forward commit in `rollBack`, which its `awaitRollout` then waits
 * for). Such additions are not stored before the next step is recorded,
 * so after a restart the deployer must find them again (by the commit's
 * trailer, for example) rather than rely on them.
 *
 * @public
 */
export interface Deployer<TConfig = unknown> {
  /** The value of `deploy.kind` that selects it. */
  readonly kind: string;
  /**
   * Reads and validates the stage's `deploy` section (undefined when the
   * stage has none); throws a ProgressionConfigError naming the bad key.
   */
  readConfig?(deploy: Config | undefined, options: { path: string }): TConfig;
  /** What runs in the stage now; `cached` reads may come from a watch cache (undefined when not known yet). */
  describeLive(
    target: DeployTarget,
    options?: { cached?: boolean },
  ): Promise<LiveWorkload | undefined>;
  /**
   * Reads what runs and says what the deploy will change; `applied` when
   * the stage already runs this promotion's release (a restart after the
   * change was made).
   */
  plan(
    target: DeployTarget,
    request: DeployRequest,
  ): Promise<{ record: DeployRecord; applied: boolean }>;
  /** Makes the change the record describes. */
  apply(
    target: DeployTarget,
    record: DeployRecord,
    request: DeployRequest,
  ): Promise<void>;
  /**
   * Waits until the change is live and healthy, failed (a deployer that
   * can tell a rollout will not succeed says so at once, naming why), or
   * `timeoutMs` passed. Rejects with `signal.reason` when the signal
   * aborts: an interrupted wait is not a failed deploy.
   */
  awaitRollout(
    target: DeployTarget,
    record: DeployRecord,
    options: { timeoutMs: number; signal?: AbortSignal },
  ): Promise<RolloutResult>;
  /**
   * Puts back what ran before the record's change (`fromImage`), and says
   * what it did as evidence (undefined when the stage already runs it).
   */
  rollBack(target: DeployTarget, record: DeployRecord): Promise<unknown>;
}
