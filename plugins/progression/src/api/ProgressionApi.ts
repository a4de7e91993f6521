import { CompoundEntityRef } from '@backstage/catalog-model';
import { createApiRef } from '@backstage/frontend-plugin-api';
import {
  DeliveryInsights,
  EntityEnvironments,
  EntityFlags,
  EntityMetrics,
  GateResult,
  GetEntityInsightsQuery,
  GetEntityMetricsQuery,
  NewApproval,
  NewPromotion,
  NewRollback,
  PromotionDetailsDto,
  PromotionDto,
  ReleaseDto,
} from '@progression-io/backstage-plugin-progression-common';

/**
 * What the Progression frontend asks of its backend.
 *
 * @public
 */
export interface ProgressionApi {
  /** The entity's pipeline and its stages in order. */
  getEnvironments(entityRef: CompoundEntityRef): Promise<EntityEnvironments>;
  /** Requests a promotion of a release (the newest by default) into a stage. */
  requestPromotion(
    entityRef: CompoundEntityRef,
    request: NewPromotion,
  ): Promise<PromotionRef>;
  /** Approves or rejects a promotion awaiting approval. */
  decide(promotionId: string, decision: NewApproval): Promise<PromotionRef>;
  /**
   * Lets a promotion that waits for its closed stage (a deny window, a
   * freeze) go ahead: break-glass, with a reason; audited and notified.
   */
  overrideWindow(promotionId: string, reason: string): Promise<PromotionRef>;
  /** Cancels an active promotion. */
  cancel(promotionId: string): Promise<PromotionRef>;
  /** The entity's promotions, newest first. */
  listPromotions(
    entityRef: CompoundEntityRef,
    filter?: { stage?: string; status?: string; limit?: number },
  ): Promise<{ items: PromotionListItem[]; nextCursor?: string }>;
  /** One promotion with its steps, gate results and approvals. */
  getPromotion(promotionId: string): Promise<PromotionDetails>;
  /** Request rate, error rate and p95 per stage over the last `range` (default 1h). */
  getMetrics(
    entityRef: CompoundEntityRef,
    options?: GetEntityMetricsQuery,
  ): Promise<EntityMetrics>;
  /**
   * Deployment frequency, lead time, change failure rate and time to
   * restore of each stage over the last `range` (default 30d).
   */
  getInsights(
    entityRef: CompoundEntityRef,
    options?: GetEntityInsightsQuery,
  ): Promise<DeliveryInsights>;
  /**
   * What the read-only gates before the approval (isolation, parity) say
   * now about a promotion into `stage`, without starting one.
   */
  previewPromotion(
    entityRef: CompoundEntityRef,
    stage: string,
  ): Promise<{ stage: string; results: GateResult[] }>;
  /** The entity's releases, newest first. */
  listReleases(entityRef: CompoundEntityRef): Promise<ReleaseDto[]>;
  /** Every stage's feature flags, with the differences marked. */
  getFlags(entityRef: CompoundEntityRef): Promise<EntityFlags>;
  /** Rolls a stage back to an earlier release (the previous one by default). */
  requestRollback(
    entityRef: CompoundEntityRef,
    request: NewRollback,
  ): Promise<PromotionRef>;
}

/**
 * A promotion as the history lists it.
 *
 * @public
 */
export type PromotionListItem = PromotionDto;

/**
 * A promotion with every step and approval.
 *
 * @public
 */
export type PromotionDetails = PromotionDetailsDto;

/**
 * What the actions answer: the promotion they started or changed.
 *
 * @public
 */
export type PromotionRef = PromotionDto;

/**
 * The API reference of {@link ProgressionApi}, shared by both frontend systems.
 *
 * @public
 */
export const progressionApiRef = createApiRef<ProgressionApi>().with({
  id: 'plugin.progression.api',
  pluginId: 'progression',
});
