import {
  coreServices,
  createBackendModule,
} from '@backstage/backend-plugin-api';
import { catalogServiceRef } from '@backstage/plugin-catalog-node';
import { scaffolderActionsExtensionPoint } from '@backstage/plugin-scaffolder-node';
import {
  createPromoteAction,
  createRegisterReleaseAction,
  createValidatePipelineAction,
} from './actions';

/**
 * Registers Progression's scaffolder actions: `progression:release:register`,
 * `progression:promote` and `progression:pipeline:validate`.
 *
 * @public
 */
export const scaffolderModuleProgression = createBackendModule({
  pluginId: 'scaffolder',
  moduleId: 'progression',
  register(env) {
    env.registerInit({
      deps: {
        scaffolder: scaffolderActionsExtensionPoint,
        discovery: coreServices.discovery,
        auth: coreServices.auth,
        catalog: catalogServiceRef,
      },
      async init({ scaffolder, discovery, auth, catalog }) {
        scaffolder.addActions(
          createRegisterReleaseAction({ discovery, auth }),
          createPromoteAction({ discovery, auth }),
          createValidatePipelineAction({ discovery, auth, catalog }),
        );
      },
    });
  },
});
