import { PromotionState } from '@progression-io/backstage-plugin-progression-common';

/*
 * What Progression keeps: releases, promotions with their steps and
 * approvals. The engine, the commands and the read model depend on this
 * interface; DatabasePromotionStore implements it with knex.
 */

export interface Release {
  id: string;
  entityRef: string;
  version: string;
  image: string;
  commit?: string;
  /** When the release's commit was made (ISO 8601), if CI said so. */
  committedAt?: string;
  buildUrl?: string;
  createdBy: string;
  createdAt: string;
}

export interface Promotion {
  id: string;
  /** A release moving into a stage, or an on-demand rollback to an earlier one. */
  kind: 'promotion' | 'rollback';
  entityRef: string;
  pipeline: string;
  stage: string;
  releaseId: string;
  state: PromotionState;
  requestedBy: string;
  reason?: string;
  error?: string;
  idempotencyKey?: string;
  ownerId?: string;
  heartbeatAt?: string;
  /** Not before: when a step that failed is tried again. */
  retryAt?: string;
  attempt: number;
  createdAt: string;
  updatedAt: string;
  finishedAt?: string;
}

export interface PromotionStep {
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

export interface Approval {
  approver: string;
  decision: 'approved' | 'rejected';
  comment?: string;
  evidenceHash: string;
  createdAt: string;
}

export interface NewStep {
  kind: string;
  name: string;
  status: string;
  actor?: string;
  reason?: string;
  evidence?: unknown;
}

/** The newest, the active and the last successful promotion of a stage. */
export interface StageSummary {
  last?: Promotion;
  active?: Promotion;
  lastSucceeded?: Promotion;
}

export interface NewPromotion {
  entityRef: string;
  pipeline: string;
  stage: string;
  releaseId: string;
  requestedBy: string;
  reason?: string;
  idempotencyKey?: string;
  /**
   * Whose key it is: the caller and route for a request, `internal` (the
   * default) for Progression's own, so the two never collide.
   */
  idempotencyScope?: string;
  /** The request's hash: the same key with another request is refused. */
  requestHash?: string;
  /**
   * A busy stage refuses (`conflict`, the default) or the promotion waits
   * `queued` until it is free (`queue`: releases that flow by themselves).
   */
  whenBusy?: 'conflict' | 'queue';
  kind?: 'promotion' | 'rollback';
}

/**
 * What delivery insights read of one entity: its stages, from a time on
 * (the start of the first day of the range).
 */
export interface DeliveryQuery {
  entityRef: string;
  stages: string[];
  since: Date;
}

/** One day of a stage's delivery, in UTC. */
export interface DailyDelivery {
  /** YYYY-MM-DD (UTC). */
  date: string;
  /** Deployments that ended this day succeeded. */
  succeeded: number;
  /** Deployments that ended this day failed or rolled back. */
  failed: number;
  /** The median lead time of this day's succeeded deployments. */
  leadTimeMedianMs?: number;
  /** The median time to restore of the incidents that began this day. */
  restoreMedianMs?: number;
}

/**
 * A stage's delivery figures from the promotion history (see
 * docs/api.md, "Delivery insights", for the definitions).
 */
export interface StageDelivery {
  stage: string;
  /** Deployments that ended succeeded. */
  succeeded: number;
  /** Deployments that failed after the deploy or were rolled back. */
  failed: number;
  leadTime: {
    /** Succeeded deployments measured. */
    count: number;
    /** Of those, how many measure from the commit time (the rest from registration). */
    fromCommit: number;
    medianMs?: number;
    p90Ms?: number;
  };
  restore: {
    /** Runs of failed deployments, each ended by the next restore or still open. */
    incidents: number;
    restored: number;
    medianMs?: number;
  };
  /** Only the days with something to count, oldest first. */
  daily: DailyDelivery[];
}

/**
 * The promotion store. Every state change is a compare-and-set: false (or
 * undefined) means someone else changed the row first.
 */
export interface PromotionStore {
  /**
   * Registers a release; the same version with the same image again returns
   * the existing one, another image is a ConflictError.
   */
  registerRelease(
    input: Omit<Release, 'id' | 'createdAt'>,
  ): Promise<{ release: Release; created: boolean }>;
  getRelease(id: string): Promise<Release | undefined>;
  findRelease(entityRef: string, version: string): Promise<Release | undefined>;
  getReleases(ids: string[]): Promise<Map<string, Release>>;
  findReleaseByImage(
    entityRef: string,
    image: string,
  ): Promise<Release | undefined>;
  /** The entity's releases, newest first. */
  listReleases(entityRef: string, limit?: number): Promise<Release[]>;

  /**
   * Each stage's deployments, lead time, change failure rate and time to
   * restore since `since`, computed by the database.
   */
  deliveryInsights(query: DeliveryQuery): Promise<StageDelivery[]>;
  /**
   * What the delivery insights of `query` are computed from, in a few
   * characters: it changes when a promotion of those stages ends in the
   * range (ended promotions never change). Read from an index alone.
   */
  deliveryFingerprint(query: DeliveryQuery): Promise<string>;

  /**
   * Creates a pending promotion. The same idempotency key returns the same
   * promotion; a second active promotion of the entity and stage is a
   * ConflictError naming the active one.
   */
  createPromotion(
    input: NewPromotion,
  ): Promise<{ promotion: Promotion; created: boolean }>;
  /**
   * What an earlier request with the same idempotency key (in the same
   * scope) created; an IdempotencyKeyReusedError (422) when that was
   * another request.
   */
  findRepeated(
    input: Pick<
      NewPromotion,
      'entityRef' | 'idempotencyKey' | 'idempotencyScope' | 'requestHash'
    >,
  ): Promise<Promotion | undefined>;
  /** Starts what waits for a stage that is free; how many started. */
  activateQueued(): Promise<number>;
  getPromotion(id: string): Promise<Promotion | undefined>;
  /** Promotions of an entity, newest first; the cursor is opaque. */
  listPromotions(
    entityRef: string,
    options?: {
      stage?: string;
      state?: PromotionState;
      limit?: number;
      cursor?: string;
    },
  ): Promise<{ items: Promotion[]; nextCursor?: string }>;
  listInState(state: PromotionState, limit?: number): Promise<Promotion[]>;
  stageSummaries(
    entityRef: string,
    stages: string[],
  ): Promise<Map<string, StageSummary>>;
  /** The newest promotion of a release into a stage that started, whatever its outcome. */
  findLatest(
    entityRef: string,
    stage: string,
    releaseId: string,
  ): Promise<Promotion | undefined>;
  /** On-demand rollbacks of the stage requested after `promotion` that succeeded, newest first. */
  findRollbacksAfter(promotion: Promotion): Promise<Promotion[]>;
  /** The release's successful promotion into the stage, if any. */
  findSucceeded(
    entityRef: string,
    stage: string,
    releaseId: string,
  ): Promise<Promotion | undefined>;

  /**
   * Moves a promotion from `from` to `to` and records the step, in one
   * transaction; false when it was not in `from` anymore.
   */
  transition(
    id: string,
    from: PromotionState,
    to: PromotionState,
    step: NewStep & { error?: string },
    options?: {
      ownerId?: string;
      enqueue?: NewPromotion;
      /** Not before: when a promotion that waits is looked at again. */
      retryAt?: Date;
    },
  ): Promise<boolean>;
  /** Records a step; with a fence, only while the promotion is in that state (and claim). */
  addStep(
    promotionId: string,
    step: NewStep,
    fence?: { state: PromotionState; ownerId?: string },
  ): Promise<boolean>;
  /**
   * Puts a promotion aside until `retryAt`, recording why (when a step is
   * given); with `state`, only while it is still in that state.
   */
  deferPromotion(
    id: string,
    ownerId: string | undefined,
    retryAt: Date,
    step?: NewStep,
    state?: PromotionState,
  ): Promise<boolean>;
  /** A promotion's steps, oldest first: all, or a page after a step id. */
  listSteps(
    promotionId: string,
    page?: { after?: number; limit: number },
  ): Promise<PromotionStep[]>;
  /**
   * Deletes ended promotions that finished before `before`, keeping the
   * newest `keepLast` of every entity and stage; how many it deleted.
   */
  deleteEnded(options: {
    before: Date;
    keepLast: number;
    batch?: number;
  }): Promise<number>;
  /** The gate steps of several promotions, oldest first, without evidence. */
  listGateSteps(
    promotionIds: string[],
  ): Promise<(Omit<PromotionStep, 'evidence'> & { promotionId: string })[]>;

  addApproval(
    promotionId: string,
    approval: Omit<Approval, 'createdAt'>,
  ): Promise<void>;
  listApprovals(promotionId: string): Promise<Approval[]>;

  /**
   * Claims one promotion in `states` that nobody works on (or whose worker
   * stopped heartbeating before `staleBefore`).
   */
  claim(
    ownerId: string,
    states: PromotionState[],
    staleBefore: Date,
  ): Promise<Promotion | undefined>;
  /** Renews a claim; false when the promotion is not this owner's anymore. */
  heartbeat(id: string, ownerId: string): Promise<boolean>;
  unclaim(id: string, ownerId: string): Promise<void>;
  /** Frees claims of owners that start with `prefix`, except `current`. */
  releaseClaims(prefix: string, current: string): Promise<number>;
  statesOf(ids: string[]): Promise<Map<string, PromotionState>>;
}
