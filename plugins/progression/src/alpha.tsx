import {
  ApiBlueprint,
  coreExtensionData,
  createFrontendModule,
  createFrontendPlugin,
  discoveryApiRef,
  fetchApiRef,
} from '@backstage/frontend-plugin-api';
import {
  EntityCardBlueprint,
  EntityContentBlueprint,
} from '@backstage/plugin-catalog-react/alpha';
import { isProgressionAvailable } from '@progression-io/backstage-plugin-progression-common';
import kubernetesPlugin from '@backstage/plugin-kubernetes/alpha';
import { z } from 'zod/v4';
import { ProgressionClient, progressionApiRef } from './api';
import { KubernetesNamespaceFilter } from './components/KubernetesNamespaceFilter';

/** @alpha */
export const progressionApi = ApiBlueprint.make({
  params: defineParams =>
    defineParams({
      api: progressionApiRef,
      deps: { discoveryApi: discoveryApiRef, fetchApi: fetchApiRef },
      factory: ({ discoveryApi, fetchApi }) =>
        new ProgressionClient({ discoveryApi, fetchApi }),
    }),
});

/**
 * The Environments tab, on every entity that has the
 * `progression.backstage.io/pipeline` annotation.
 *
 * @alpha
 */
export const entityEnvironmentsContent =
  EntityContentBlueprint.makeWithOverrides({
    name: 'environments',
    configSchema: {
      /**
       * The path of the entity page's Kubernetes tab (the Kubernetes
       * plugin's `kubernetes`), when the app has one: each stage card then
       * links to it. No link without it.
       */
      kubernetesTab: z
        .string()
        .regex(/^[a-z0-9-]+$/)
        .optional(),
    },
    factory(originalFactory, { config }) {
      return originalFactory({
        path: '/environments',
        title: 'Environments',
        filter: isProgressionAvailable,
        loader: () =>
          import('./components/EnvironmentsContent').then(m => (
            <m.EnvironmentsContent kubernetesTab={config.kubernetesTab} />
          )),
      });
    },
  });

/**
 * "Where is my release": a compact card of each stage's live version for
 * the Overview tab.
 *
 * @alpha
 */
export const entityReleaseCard = EntityCardBlueprint.make({
  name: 'release',
  params: {
    filter: isProgressionAvailable,
    type: 'info',
    loader: () =>
      import('./components/ReleaseCard').then(m => <m.ReleaseCard />),
  },
});

/**
 * Production's delivery insights — deployment frequency, lead time, change
 * failure rate, time to restore over 30 days — as a card for the Overview
 * tab.
 *
 * @alpha
 */
export const entityDeliveryInsightsCard = EntityCardBlueprint.make({
  name: 'delivery-insights',
  params: {
    filter: isProgressionAvailable,
    type: 'content',
    loader: () =>
      import('./components/DeliveryInsightsCard').then(m => (
        <m.DeliveryInsightsCard />
      )),
  },
});

/**
 * The Progression frontend plugin for the new frontend system.
 *
 * @alpha
 */
export default createFrontendPlugin({
  pluginId: 'progression',
  info: { packageJson: () => import('../package.json') },
  extensions: [
    progressionApi,
    entityEnvironmentsContent,
    entityReleaseCard,
    entityDeliveryInsightsCard,
  ],
});

/**
 * The Kubernetes plugin's entity tab, wrapped in
 * {@link KubernetesNamespaceFilter}: a stage card's Pods link
 * (`kubernetesTab`) opens it on that stage's namespace only. Add it to the
 * app's features beside the Kubernetes plugin.
 *
 * @alpha
 */
export const kubernetesNamespaceFilterModule = createFrontendModule({
  pluginId: 'kubernetes',
  extensions: [
    kubernetesPlugin
      .getExtension('entity-content:kubernetes/kubernetes')
      .override({
        *factory(originalFactory) {
          for (const output of originalFactory()) {
            yield output.id === coreExtensionData.reactElement.id
              ? coreExtensionData.reactElement(
                  <KubernetesNamespaceFilter>
                    {output.value as JSX.Element}
                  </KubernetesNamespaceFilter>,
                )
              : output;
          }
        },
      }),
  ],
});
