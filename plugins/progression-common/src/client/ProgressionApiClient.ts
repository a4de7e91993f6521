import { CompoundEntityRef } from '@backstage/catalog-model';
import { ResponseError } from '@backstage/errors';
import type {
  DeliveryInsights,
  EntityEnvironments,
  EntityFlags,
  EntityMetrics,
  EntityValidation,
  GetEntityInsightsQuery,
  GetEntityMetricsQuery,
  ListPromotionsQuery,
  ListPromotionsResponse,
  ListReleasesResponse,
  NewApproval,
  NewPromotion,
  NewRelease,
  NewRollback,
  PreviewPromotionResponse,
  PromotionDetailsDto,
  PromotionDto,
  ReleaseDto,
  ValidateEntityRequest,
} from '../types';

/**
 * How a {@link ProgressionApiClient} reaches the Progression backend.
 *
 * @public
 */
export interface ProgressionApiClientOptions {
  /** The plugin's base URL (`…/api/progression`), asked before each request. */
  baseUrl(): Promise<string>;
  /**
   * Sends a request; the global `fetch` by default. The frontend passes its
   * fetchApi's, which adds the user's token.
   */
  fetch?(url: string, init: RequestInit): Promise<Response>;
  /** A token sent as `Authorization: Bearer`, for a `fetch` that adds none. */
  token?(): Promise<string | undefined>;
  /** Aborts every request. */
  signal?: AbortSignal;
  /**
   * The error a non-2xx response is thrown as; by default Backstage's
   * `ResponseError`, which carries the status and the backend's error.
   */
  errorFromResponse?(response: Response): Promise<Error>;
}

/**
 * The Progression backend's REST API (src/schema/openapi.yaml), typed by the
 * types generated from it. Shared by the frontend and the scaffolder
 * actions, which differ only in how they authenticate and report errors.
 *
 * @public
 */
export class ProgressionApiClient {
  constructor(private readonly options: ProgressionApiClientOptions) {}

  /** The entity's pipeline and its stages in order. */
  async getEnvironments(
    entity: CompoundEntityRef,
  ): Promise<EntityEnvironments> {
    return this.get(`entities/${entityPath(entity)}/environments`);
  }

  /** The entity's releases, newest first. */
  async listReleases(entity: CompoundEntityRef): Promise<ListReleasesResponse> {
    return this.get(`entities/${entityPath(entity)}/releases`);
  }

  /**
   * Registers a release: `created` when it is new (201), not when the same
   * version and image were registered before (200).
   */
  async registerRelease(
    entity: CompoundEntityRef,
    release: NewRelease,
  ): Promise<{ release: ReleaseDto; created: boolean }> {
    const { status, body } = await this.send<ReleaseDto>(
      'POST',
      `entities/${entityPath(entity)}/releases`,
      { body: release },
    );
    return { release: body, created: status === 201 };
  }

  /** The entity's promotions, newest first. */
  async listPromotions(
    entity: CompoundEntityRef,
    query: ListPromotionsQuery = {},
  ): Promise<ListPromotionsResponse> {
    return this.get(`entities/${entityPath(entity)}/promotions`, query);
  }

  /**
   * Requests a promotion of a release (the newest by default) into a stage.
   * Requests with the same idempotency key get the promotion the first one
   * started.
   */
  async requestPromotion(
    entity: CompoundEntityRef,
    request: NewPromotion,
    options: { idempotencyKey?: string } = {},
  ): Promise<PromotionDto> {
    return this.post(`entities/${entityPath(entity)}/promotions`, request, {
      idempotencyKey: options.idempotencyKey,
    });
  }

  /** Rolls a stage back to an earlier release (the previous one by default). */
  async requestRollback(
    entity: CompoundEntityRef,
    request: NewRollback,
    options: { idempotencyKey?: string } = {},
  ): Promise<PromotionDto> {
    return this.post(`entities/${entityPath(entity)}/rollbacks`, request, {
      idempotencyKey: options.idempotencyKey,
    });
  }

  /** One promotion with its steps, gate results and approvals. */
  async getPromotion(id: string): Promise<PromotionDetailsDto> {
    return this.get(`promotions/${encodeURIComponent(id)}`);
  }

  /** Approves or rejects a promotion awaiting approval. */
  async decideApproval(
    id: string,
    decision: NewApproval,
  ): Promise<PromotionDto> {
    return this.post(
      `promotions/${encodeURIComponent(id)}/approvals`,
      decision,
    );
  }

  /** Cancels an active promotion. */
  async cancelPromotion(id: string): Promise<PromotionDto> {
    return this.post(`promotions/${encodeURIComponent(id)}/cancel`);
  }

  /**
   * Break-glass: lets a promotion that waits for a closed stage go ahead
   * now (needs `progression.window.override`; audited and notified).
   */
  async overrideWindow(id: string, reason: string): Promise<PromotionDto> {
    return this.post(`promotions/${encodeURIComponent(id)}/override-window`, {
      reason,
    });
  }

  /** Request rate, error rate and p95 per stage over a time range. */
  async getMetrics(
    entity: CompoundEntityRef,
    query: GetEntityMetricsQuery = {},
  ): Promise<EntityMetrics> {
    return this.get(`entities/${entityPath(entity)}/metrics`, query);
  }

  /**
   * Deployment frequency, lead time, change failure rate and time to
   * restore of each stage over the last 7, 30 (default) or 90 days.
   */
  async getInsights(
    entity: CompoundEntityRef,
    query: GetEntityInsightsQuery = {},
  ): Promise<DeliveryInsights> {
    return this.get(`entities/${entityPath(entity)}/insights`, query);
  }

  /** Every stage's feature flags, with the differences marked. */
  async getFlags(entity: CompoundEntityRef): Promise<EntityFlags> {
    return this.get(`entities/${entityPath(entity)}/flags`);
  }

  /**
   * What the read-only gates before the approval (isolation, parity) say
   * now about a promotion into `stage`, without starting one.
   */
  async previewPromotion(
    entity: CompoundEntityRef,
    stage: string,
  ): Promise<PreviewPromotionResponse> {
    return this.get(
      `entities/${entityPath(entity)}/stages/${encodeURIComponent(
        stage,
      )}/preview`,
    );
  }

  /** Whether an entity, from the catalog or not yet, is ready for Progression. */
  async validateEntity(
    request: ValidateEntityRequest,
  ): Promise<EntityValidation> {
    return this.post('validate', request);
  }

  private async get<T>(path: string, query: object = {}): Promise<T> {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined && value !== '') params.set(key, String(value));
    }
    const qs = params.toString();
    return (await this.send<T>('GET', qs ? `${path}?${qs}` : path)).body;
  }

  private async post<T>(
    path: string,
    body?: object,
    options: { idempotencyKey?: string } = {},
  ): Promise<T> {
    const headers: Record<string, string> = {};
    if (options.idempotencyKey) {
      headers['Idempotency-Key'] = options.idempotencyKey;
    }
    return (await this.send<T>('POST', path, { body, headers })).body;
  }

  private async send<T>(
    method: 'GET' | 'POST',
    path: string,
    request: { body?: object; headers?: Record<string, string> } = {},
  ): Promise<{ status: number; body: T }> {
    const { signal } = this.options;
    const baseUrl = await this.options.baseUrl();
    const token = await this.options.token?.();
    const init: RequestInit = {
      method,
      headers: {
        ...(token && { Authorization: `Bearer ${token}` }),
        ...(request.body !== undefined && {
          'Content-Type': 'application/json',
        }),
        ...request.headers,
      },
      ...(request.body !== undefined && { body: JSON.stringify(request.body) }),
      ...(signal && { signal }),
    };
    const url = `${baseUrl}/v1/${path}`;
    const response = await (this.options.fetch
      ? this.options.fetch(url, init)
      : fetch(url, init));
    if (!response.ok) {
      throw await (this.options.errorFromResponse
        ? this.options.errorFromResponse(response)
        : ResponseError.fromResponse(response));
    }
    // Parsed here rather than by response.json(): that makes objects of the
    // realm fetch runs in, and the scaffolder refuses template arrays with a
    // foreign prototype.
    const text = await response.text();
    return {
      status: response.status,
      body: text ? JSON.parse(text) : undefined,
    };
  }
}

function entityPath(entity: CompoundEntityRef): string {
  return [entity.kind, entity.namespace, entity.name]
    .map(encodeURIComponent)
    .join('/');
}
