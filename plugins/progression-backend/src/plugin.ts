import {
  coreServices,
  createBackendPlugin,
} from '@backstage/backend-plugin-api';
import { catalogServiceRef } from '@backstage/plugin-catalog-node';
import { progressionPermissions } from '@internal/backstage-plugin-progression-common';
import { readProgressionConfig } from './config/readProgressionConfig';
import { getMigratedClient } from './database/migrations';
import { createRouter } from './service/router';

/**
 * Progression backend plugin: pipelines, promotions, gates and rollbacks.
 *
 * @public
 */
export const progressionPlugin = createBackendPlugin({
  pluginId: 'progression',
  register(env) {
    env.registerInit({
      deps: {
        config: coreServices.rootConfig,
        logger: coreServices.logger,
        database: coreServices.database,
        httpAuth: coreServices.httpAuth,
        httpRouter: coreServices.httpRouter,
        catalog: catalogServiceRef,
        permissionsRegistry: coreServices.permissionsRegistry,
      },
      async init({
        config,
        logger,
        database,
        httpAuth,
        httpRouter,
        catalog,
        permissionsRegistry,
      }) {
        // Throws, naming the bad key, so the backend refuses to start.
        const progressionConfig = readProgressionConfig(config);
        await getMigratedClient(database);
        permissionsRegistry.addPermissions(progressionPermissions);
        logger.info(
          `Progression: ${progressionConfig.pipelines.size} pipeline(s), ${progressionConfig.clusters.size} cluster(s)`,
        );
        httpRouter.use(
          await createRouter({ httpAuth, catalog, config: progressionConfig }),
        );
      },
    });
  },
});
