import { Entity, stringifyEntityRef } from '@backstage/catalog-model';
import {
  getContainerName,
  getKubernetesId,
  getPipelineName,
  getStageUrlOverride,
} from '@progression-io/backstage-plugin-progression-common';
import { EntityTarget } from '@progression-io/backstage-plugin-progression-node';
import { ProgressionConfig } from '../config/types';

/**
 * What Progression acts on for a catalog entity: its workload label and
 * container, and its stage URL overrides for the stages of its pipeline.
 */
export function entityTarget(
  entity: Entity,
  config: ProgressionConfig,
): EntityTarget {
  const stages =
    config.pipelines.get(getPipelineName(entity) ?? '')?.stages ?? [];
  return {
    entityRef: stringifyEntityRef(entity),
    name: entity.metadata.name,
    namespace: entity.metadata.namespace ?? 'default',
    kubernetesId: getKubernetesId(entity),
    container: getContainerName(entity),
    urlOverrides: Object.fromEntries(
      stages.flatMap(stage => {
        const url = getStageUrlOverride(entity, stage.name);
        return url ? [[stage.name, url]] : [];
      }),
    ),
    annotations: Object.fromEntries(
      Object.entries(entity.metadata.annotations ?? {}).filter(([key]) =>
        key.startsWith('progression.backstage.io/'),
      ),
    ),
  };
}
