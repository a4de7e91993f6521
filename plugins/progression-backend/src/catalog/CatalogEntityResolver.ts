import { AuthService } from '@backstage/backend-plugin-api';
import { Entity, RELATION_MEMBER_OF } from '@backstage/catalog-model';
import { NotFoundError } from '@backstage/errors';
import { CatalogService } from '@backstage/plugin-catalog-node';
import { EntityTarget } from '@progression-io/backstage-plugin-progression-node';
import { ProgressionConfig } from '../config/types';
import { entityTarget } from './entityTarget';
import { withTimeout } from '../util/withTimeout';

/**
 * What Progression reads of the catalog on its own behalf: the entity of a
 * promotion for the engine, and an approver's groups. As the plugin
 * itself, and bounded in time.
 */
export class CatalogEntityResolver {
  constructor(
    private readonly options: {
      catalog: CatalogService;
      auth: AuthService;
      config: ProgressionConfig;
      /** How long a catalog read may take. Default 10 s. */
      timeoutMs?: number;
    },
  ) {}

  async resolve(entityRef: string): Promise<EntityTarget> {
    const entity = await this.read(entityRef);
    if (!entity) {
      throw new NotFoundError(
        `${entityRef} is no longer in the catalog, so its workload cannot be found`,
      );
    }
    return entityTarget(entity, this.options.config);
  }

  /**
   * A user and the groups the catalog says they are a member of now (not
   * what a sign-in token said hours ago). A user the catalog does not
   * know is only themselves.
   */
  async memberships(userEntityRef: string): Promise<string[]> {
    const user = await this.read(userEntityRef);
    const groups = (user?.relations ?? [])
      .filter(r => r.type === RELATION_MEMBER_OF)
      .map(r => r.targetRef);
    return [userEntityRef, ...groups];
  }

  private async read(entityRef: string): Promise<Entity | undefined> {
    const credentials = await this.options.auth.getOwnServiceCredentials();
    return withTimeout(
      () => this.options.catalog.getEntityByRef(entityRef, { credentials }),
      this.options.timeoutMs ?? 10_000,
      `the catalog did not answer within ${
        (this.options.timeoutMs ?? 10_000) / 1000
      } s`,
    );
  }
}
