import { Entity, stringifyEntityRef } from '@backstage/catalog-model';
import { createServiceFactory } from '@backstage/backend-plugin-api';
import { catalogServiceRef } from '@backstage/plugin-catalog-node';
import { catalogServiceMock } from '@backstage/plugin-catalog-node/testUtils';

/**
 * A Component on the `standard` pipeline (or `pipeline`) whose workload
 * carries the `backstage.io/kubernetes-id` label `kubernetesId` (its name
 * by default).
 */
export function component(
  name: string,
  options: { kubernetesId?: string; owner?: string; pipeline?: string } = {},
): Entity {
  return {
    apiVersion: 'backstage.io/v1alpha1',
    kind: 'Component',
    metadata: {
      name,
      namespace: 'default',
      annotations: {
        'progression.backstage.io/pipeline': options.pipeline ?? 'standard',
        'backstage.io/kubernetes-id': options.kubernetesId ?? name,
      },
    },
    spec: { type: 'service', owner: options.owner ?? 'team' },
  };
}

/** Olivia, a member of the release managers (production's approvers). */
export const releaseManager: Entity = {
  apiVersion: 'backstage.io/v1alpha1',
  kind: 'User',
  metadata: { name: 'olivia', namespace: 'default' },
  spec: { memberOf: ['release-managers'] },
  relations: [
    { type: 'memberOf', targetRef: 'group:default/release-managers' },
  ],
};

/**
 * A catalog whose entities the test may change: reads see the list as it
 * is at that moment.
 */
export function mutableCatalog(entities: Entity[]) {
  return createServiceFactory({
    service: catalogServiceRef,
    deps: {},
    factory: () =>
      catalogServiceMock.mock({
        getEntityByRef: async ref => {
          const wanted =
            typeof ref === 'string' ? ref : stringifyEntityRef(ref);
          return entities.find(
            e => stringifyEntityRef(e) === wanted.toLocaleLowerCase('en-US'),
          );
        },
      }),
  });
}
