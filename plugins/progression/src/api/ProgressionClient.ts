import { CompoundEntityRef } from '@backstage/catalog-model';
import { DiscoveryApi, FetchApi } from '@backstage/frontend-plugin-api';
import {
  DeliveryInsights,
  EntityEnvironments,
  EntityFlags,
  EntityMetrics,
  GateResult,
  GetEntityInsightsQuery,
  GetEntityMetricsQuery,
  ListPromotionsQuery,
  NewApproval,
  NewPromotion,
  NewRollback,
  ProgressionApiClient,
  ReleaseDto,
} from '@progression-io/backstage-plugin-progression-common';
import {
  ProgressionApi,
  PromotionDetails,
  PromotionListItem,
  PromotionRef,
} from './ProgressionApi';

/**
 * The {@link ProgressionApi} over the backend's REST API, as the signed-in
 * user; a failed request throws a `ResponseError`.
 *
 * @public
 */
export class ProgressionClient implements ProgressionApi {
  private readonly client: ProgressionApiClient;

  constructor(options: { discoveryApi: DiscoveryApi; fetchApi: FetchApi }) {
    const { discoveryApi, fetchApi } = options;
    this.client = new ProgressionApiClient({
      baseUrl: () => discoveryApi.getBaseUrl('progression'),
      fetch: (url, init) => fetchApi.fetch(url, init),
    });
  }

  async getEnvironments(
    entityRef: CompoundEntityRef,
  ): Promise<EntityEnvironments> {
    return this.client.getEnvironments(entityRef);
  }

  async requestPromotion(
    entityRef: CompoundEntityRef,
    request: NewPromotion,
  ): Promise<PromotionRef> {
    return this.client.requestPromotion(entityRef, request);
  }

  async decide(
    promotionId: string,
    decision: NewApproval,
  ): Promise<PromotionRef> {
    return this.client.decideApproval(promotionId, decision);
  }

  async overrideWindow(
    promotionId: string,
    reason: string,
  ): Promise<PromotionRef> {
    return this.client.overrideWindow(promotionId, reason);
  }

  async cancel(promotionId: string): Promise<PromotionRef> {
    return this.client.cancelPromotion(promotionId);
  }

  async listPromotions(
    entityRef: CompoundEntityRef,
    filter: { stage?: string; status?: string; limit?: number } = {},
  ): Promise<{ items: PromotionListItem[]; nextCursor?: string }> {
    // The history's outcome filter is free text; the backend answers an
    // unknown state with a 400.
    return this.client.listPromotions(entityRef, filter as ListPromotionsQuery);
  }

  async getMetrics(
    entityRef: CompoundEntityRef,
    options: GetEntityMetricsQuery = {},
  ): Promise<EntityMetrics> {
    return this.client.getMetrics(entityRef, options);
  }

  async getInsights(
    entityRef: CompoundEntityRef,
    options: GetEntityInsightsQuery = {},
  ): Promise<DeliveryInsights> {
    return this.client.getInsights(entityRef, options);
  }

  async previewPromotion(
    entityRef: CompoundEntityRef,
    stage: string,
  ): Promise<{ stage: string; results: GateResult[] }> {
    return this.client.previewPromotion(entityRef, stage);
  }

  async listReleases(entityRef: CompoundEntityRef): Promise<ReleaseDto[]> {
    return (await this.client.listReleases(entityRef)).items;
  }

  async getFlags(entityRef: CompoundEntityRef): Promise<EntityFlags> {
    return this.client.getFlags(entityRef);
  }

  async getPromotion(promotionId: string): Promise<PromotionDetails> {
    return this.client.getPromotion(promotionId);
  }

  async requestRollback(
    entityRef: CompoundEntityRef,
    request: NewRollback,
  ): Promise<PromotionRef> {
    return this.client.requestRollback(entityRef, request);
  }
}
