import { AuthService } from '@backstage/backend-plugin-api';
import {
  Entity,
  RELATION_CHILD_OF,
  RELATION_MEMBER_OF,
} from '@backstage/catalog-model';
import { NotFoundError } from '@backstage/errors';
import { CatalogService } from '@backstage/plugin-catalog-node';
import { EntityTarget } from '@progression-io/backstage-plugin-progression-node';
import { ProgressionConfig } from '../config/types';
import { entityTarget } from './entityTarget';
import { withTimeout } from '../util/withTimeout';

/** The most groups an approver's membership is followed through. */
const MAX_GROUPS = 100;

/** The targets of an entity's relations of one type, lower-cased as the catalog keeps them. */
const refsOf = (entity: Entity | undefined, type: string) =>
  (entity?.relations ?? [])
    .filter(r => r.type === type)
    .map(r => r.targetRef.toLocaleLowerCase('en-US'));

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
   * what a sign-in token said hours ago), with the groups above those
   * (`childOf`, transitively): a member of `sre`, a child of `platform`,
   * counts as one of `platform`, as the notifications backend counts the
   * members of a group's child groups among its members when it tells
   * approvers. A user the catalog does not know is only themselves.
   * At most {@link MAX_GROUPS} groups are followed.
   */
  async memberships(userEntityRef: string): Promise<string[]> {
    const user = await this.read(userEntityRef);
    const seen = new Set<string>();
    let level = refsOf(user, RELATION_MEMBER_OF);
    while (level.length && seen.size < MAX_GROUPS) {
      const fresh = level
        .filter(ref => !seen.has(ref))
        .slice(0, MAX_GROUPS - seen.size);
      fresh.forEach(ref => seen.add(ref));
      const groups = await Promise.all(fresh.map(ref => this.read(ref)));
      level = groups.flatMap(group => refsOf(group, RELATION_CHILD_OF));
    }
    return [userEntityRef, ...seen];
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
