import { CompoundEntityRef } from '@backstage/catalog-model';
import { createApiRef } from '@backstage/frontend-plugin-api';
import { EntityEnvironments } from '@internal/backstage-plugin-progression-common';

/**
 * What the Progression frontend asks of its backend.
 *
 * @public
 */
export interface ProgressionApi {
  /** The entity's pipeline and its stages in order. */
  getEnvironments(entityRef: CompoundEntityRef): Promise<EntityEnvironments>;
}

/**
 * The API reference of {@link ProgressionApi}, shared by both frontend systems.
 *
 * @public
 */
export const progressionApiRef = createApiRef<ProgressionApi>().with({
  id: 'plugin.progression.api',
  pluginId: 'progression',
});
