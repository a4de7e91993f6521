import { AuthService } from '@backstage/backend-plugin-api';
import { CatalogService } from '@backstage/plugin-catalog-node';
import { EntityTarget } from '@internal/backstage-plugin-progression-node';
import { ProgressionConfig } from '../config/types';
import { entityTarget } from './entityTarget';

/**
 * Resolves the entity of a promotion for the engine, reading the catalog
 * as the plugin itself (the engine acts for nobody in particular).
 */
export class CatalogEntityResolver {
  constructor(
    private readonly options: {
      catalog: CatalogService;
      auth: AuthService;
      config: ProgressionConfig;
    },
  ) {}

  async resolve(entityRef: string): Promise<EntityTarget> {
    const entity = await this.options.catalog.getEntityByRef(entityRef, {
      credentials: await this.options.auth.getOwnServiceCredentials(),
    });
    if (!entity) throw new Error(`${entityRef} is not in the catalog`);
    return entityTarget(entity, this.options.config);
  }
}
