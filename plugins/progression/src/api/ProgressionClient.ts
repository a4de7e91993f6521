import { CompoundEntityRef } from '@backstage/catalog-model';
import { ResponseError } from '@backstage/errors';
import { DiscoveryApi, FetchApi } from '@backstage/frontend-plugin-api';
import {
  EntityEnvironments,
  EntityFlags,
  EntityMetrics,
  GateResult,
} from '@internal/backstage-plugin-progression-common';
import {
  ProgressionApi,
  PromotionDetails,
  PromotionListItem,
  PromotionRef,
} from './ProgressionApi';

/**
 * The {@link ProgressionApi} over the backend's REST API.
 *
 * @public
 */
export class ProgressionClient implements ProgressionApi {
  private readonly discoveryApi: DiscoveryApi;
  private readonly fetchApi: FetchApi;

  constructor(options: { discoveryApi: DiscoveryApi; fetchApi: FetchApi }) {
    this.discoveryApi = options.discoveryApi;
    this.fetchApi = options.fetchApi;
  }

  async getEnvironments(
    entityRef: CompoundEntityRef,
  ): Promise<EntityEnvironments> {
    return this.get(`/v1/entities/${entityPath(entityRef)}/environments`);
  }

  async requestPromotion(
    entityRef: CompoundEntityRef,
    request: { stage: string; version?: string; reason?: string },
  ): Promise<PromotionRef> {
    return this.post(
      `/v1/entities/${entityPath(entityRef)}/promotions`,
      request,
    );
  }

  async decide(
    promotionId: string,
    decision: { decision: 'approve' | 'reject'; comment?: string },
  ): Promise<PromotionRef> {
    return this.post(
      `/v1/promotions/${encodeURIComponent(promotionId)}/approvals`,
      decision,
    );
  }

  async cancel(promotionId: string): Promise<PromotionRef> {
    return this.post(
      `/v1/promotions/${encodeURIComponent(promotionId)}/cancel`,
      {},
    );
  }

  async listPromotions(
    entityRef: CompoundEntityRef,
    filter: { stage?: string; status?: string; limit?: number } = {},
  ): Promise<{ items: PromotionListItem[]; nextCursor?: string }> {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(filter)) {
      if (value !== undefined && value !== '') query.set(key, String(value));
    }
    const qs = query.toString();
    return this.get(
      `/v1/entities/${entityPath(entityRef)}/promotions${qs ? `?${qs}` : ''}`,
    );
  }

  async getMetrics(
    entityRef: CompoundEntityRef,
    options: { stage?: string; range?: '15m' | '1h' | '6h' | '24h' } = {},
  ): Promise<EntityMetrics> {
    const query = new URLSearchParams();
    if (options.stage) query.set('stage', options.stage);
    if (options.range) query.set('range', options.range);
    const qs = query.toString();
    return this.get(
      `/v1/entities/${entityPath(entityRef)}/metrics${qs ? `?${qs}` : ''}`,
    );
  }

  async previewPromotion(
    entityRef: CompoundEntityRef,
    stage: string,
  ): Promise<{ stage: string; results: GateResult[] }> {
    return this.get(
      `/v1/entities/${entityPath(entityRef)}/stages/${encodeURIComponent(
        stage,
      )}/preview`,
    );
  }

  async listReleases(
    entityRef: CompoundEntityRef,
  ): Promise<Array<{ version: string; image: string; createdAt: string }>> {
    const { items } = await this.get<{
      items: Array<{ version: string; image: string; createdAt: string }>;
    }>(`/v1/entities/${entityPath(entityRef)}/releases`);
    return items;
  }

  async getFlags(entityRef: CompoundEntityRef): Promise<EntityFlags> {
    return this.get(`/v1/entities/${entityPath(entityRef)}/flags`);
  }

  async getPromotion(promotionId: string): Promise<PromotionDetails> {
    return this.get(`/v1/promotions/${encodeURIComponent(promotionId)}`);
  }

  async requestRollback(
    entityRef: CompoundEntityRef,
    request: { stage: string; toVersion?: string; reason?: string },
  ): Promise<PromotionRef> {
    return this.post(
      `/v1/entities/${entityPath(entityRef)}/rollbacks`,
      request,
    );
  }

  private async get<T>(path: string): Promise<T> {
    return this.send<T>(path);
  }

  private async post<T>(path: string, body: object): Promise<T> {
    return this.send<T>(path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
  }

  private async send<T>(path: string, init?: RequestInit): Promise<T> {
    const baseUrl = await this.discoveryApi.getBaseUrl('progression');
    const response = await this.fetchApi.fetch(`${baseUrl}${path}`, init);
    if (!response.ok) {
      throw await ResponseError.fromResponse(response);
    }
    return (await response.json()) as T;
  }
}

function entityPath(entityRef: CompoundEntityRef): string {
  return [entityRef.kind, entityRef.namespace, entityRef.name]
    .map(encodeURIComponent)
    .join('/');
}
