/**
 * Progression frontend plugin: the Environments tab of catalog entities.
 * The new frontend system's plugin is the default export of `./alpha`.
 *
 * @packageDocumentation
 */

export {
  progressionPlugin,
  EntityEnvironmentsContent,
  EntityReleaseCard,
  EntityDeliveryInsightsCard,
} from './plugin';
export { progressionApiRef, ProgressionClient } from './api';
export { KubernetesNamespaceFilter } from './components/KubernetesNamespaceFilter';
export type { ProgressionApi } from './api';
export { isProgressionAvailable } from '@progression-io/backstage-plugin-progression-common';
