import { CompoundEntityRef } from '@backstage/catalog-model';
import { ResponseError } from '@backstage/errors';
import { DiscoveryApi, FetchApi } from '@backstage/frontend-plugin-api';
import { EntityEnvironments } from '@internal/backstage-plugin-progression-common';
import { ProgressionApi } from './ProgressionApi';

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
    const path = [entityRef.kind, entityRef.namespace, entityRef.name]
      .map(encodeURIComponent)
      .join('/');
    return this.get(`/v1/entities/${path}/environments`);
  }

  private async get<T>(path: string): Promise<T> {
    const baseUrl = await this.discoveryApi.getBaseUrl('progression');
    const response = await this.fetchApi.fetch(`${baseUrl}${path}`);
    if (!response.ok) {
      throw await ResponseError.fromResponse(response);
    }
    return (await response.json()) as T;
  }
}
