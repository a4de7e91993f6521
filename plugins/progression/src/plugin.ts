import {
  createApiFactory,
  createPlugin,
  createComponentExtension,
  createRoutableExtension,
  createRouteRef,
  discoveryApiRef,
  fetchApiRef,
} from '@backstage/core-plugin-api';
import { ProgressionClient, progressionApiRef } from './api';

/** @internal */
export const environmentsRouteRef = createRouteRef({
  id: 'progression:environments',
});

/**
 * The Progression frontend plugin for apps on the legacy frontend system.
 *
 * @public
 */
export const progressionPlugin = createPlugin({
  id: 'progression',
  apis: [
    createApiFactory({
      api: progressionApiRef,
      deps: { discoveryApi: discoveryApiRef, fetchApi: fetchApiRef },
      factory: ({ discoveryApi, fetchApi }) =>
        new ProgressionClient({ discoveryApi, fetchApi }),
    }),
  ],
  routes: {
    environments: environmentsRouteRef,
  },
});

/**
 * The Environments tab for legacy apps' entity pages:
 * `<EntityLayout.Route path="/environments" title="Environments"><EntityEnvironmentsContent /></EntityLayout.Route>`.
 *
 * @public
 */
export const EntityEnvironmentsContent = progressionPlugin.provide(
  createRoutableExtension({
    name: 'EntityEnvironmentsContent',
    component: () =>
      import('./components/EnvironmentsContent').then(
        m => m.EnvironmentsContent,
      ),
    mountPoint: environmentsRouteRef,
  }),
);

/**
 * "Where is my release" for legacy apps' Overview tab:
 * `<EntityReleaseCard />` inside the entity page's overview grid.
 *
 * @public
 */
export const EntityReleaseCard = progressionPlugin.provide(
  createComponentExtension({
    name: 'EntityReleaseCard',
    component: {
      lazy: () => import('./components/ReleaseCard').then(m => m.ReleaseCard),
    },
  }),
);

/**
 * Production's delivery insights (deployment frequency, lead time, change
 * failure rate, time to restore over 30 days) for legacy apps' Overview
 * tab: `<EntityDeliveryInsightsCard />` inside the entity page's overview
 * grid.
 *
 * @public
 */
export const EntityDeliveryInsightsCard = progressionPlugin.provide(
  createComponentExtension({
    name: 'EntityDeliveryInsightsCard',
    component: {
      lazy: () =>
        import('./components/DeliveryInsightsCard').then(
          m => m.DeliveryInsightsCard,
        ),
    },
  }),
);
