import {
  coreServices,
  createBackendPlugin,
} from '@backstage/backend-plugin-api';
import { catalogServiceRef } from '@backstage/plugin-catalog-node';
import os from 'node:os';
import { signalsServiceRef } from '@backstage/plugin-signals-node';
import { notificationService } from '@backstage/plugin-notifications-node';
import { progressionPermissions } from '@progression-io/backstage-plugin-progression-common';
import {
  Deployer,
  GateDefinition,
  progressionDeployersExtensionPoint,
  progressionGatesExtensionPoint,
} from '@progression-io/backstage-plugin-progression-node';
import { CatalogEntityResolver } from './catalog/CatalogEntityResolver';
import { readProgressionConfig } from './config/readProgressionConfig';
import { DatabasePromotionStore } from './database/DatabasePromotionStore';
import { getMigratedClient } from './database/migrations';
import { PromotionEngine } from './engine/PromotionEngine';
import { PromotionWorker } from './engine/PromotionWorker';
import { builtInGates } from './gates/builtInGates';
import { KubernetesDeployer } from './kubernetes/KubernetesDeployer';
import { CatalogClusters } from './kubernetes/CatalogClusters';
import { ClusterAuth } from './kubernetes/clusterAuth';
import { GkeClusters } from './kubernetes/GkeClusters';
import { KubernetesWorkloads } from './kubernetes/KubernetesWorkloads';
import { PromotionNotifier } from './notifications/PromotionNotifier';
import { PrometheusClient } from './prometheus/PrometheusClient';
import { readPrometheusConfig } from './config/readProgressionConfig';
import { ProgressionReadModel } from './service/ProgressionReadModel';
import { PromotionCommands } from './service/PromotionCommands';
import { createRouter } from './service/router';
import { PromotionSignals } from './signals/PromotionSignals';
import { StageWindows } from './windows/StageWindows';

/**
 * Progression backend plugin: pipelines, promotions, gates and rollbacks.
 * Modules add gates and deployers through the extension points of the
 * `-node` package (backstage-plugin-progression-node).
 *
 * @public
 */
export const progressionPlugin = createBackendPlugin({
  pluginId: 'progression',
  register(env) {
    const moduleGates: GateDefinition<any>[] = [];
    const moduleDeployers: Deployer<any>[] = [];
    env.registerExtensionPoint(progressionGatesExtensionPoint, {
      addGate: (...gates) => moduleGates.push(...gates),
    });
    env.registerExtensionPoint(progressionDeployersExtensionPoint, {
      addDeployer: (...deployers) => moduleDeployers.push(...deployers),
    });

    env.registerInit({
      deps: {
        config: coreServices.rootConfig,
        logger: coreServices.logger,
        database: coreServices.database,
        httpAuth: coreServices.httpAuth,
        httpRouter: coreServices.httpRouter,
        catalog: catalogServiceRef,
        permissionsRegistry: coreServices.permissionsRegistry,
        permissions: coreServices.permissions,
        auditor: coreServices.auditor,
        auth: coreServices.auth,
        scheduler: coreServices.scheduler,
        lifecycle: coreServices.lifecycle,
        signals: signalsServiceRef,
        // Its default factory calls the notifications backend over HTTP;
        // without that backend each send fails, is marked failed, and the
        // notifier warns once (progression.notifications.enabled: false
        // turns it off).
        notifications: notificationService,
      },
      async init({
        config,
        logger,
        database,
        httpAuth,
        httpRouter,
        catalog,
        permissionsRegistry,
        permissions,
        auditor,
        auth,
        scheduler,
        lifecycle,
        signals,
        notifications,
      }) {
        const prometheusConfig = readPrometheusConfig(config);
        const prometheus =
          prometheusConfig && new PrometheusClient(prometheusConfig);
        const workloads = new KubernetesWorkloads({
          auth: new ClusterAuth({ config, logger }),
        });
        const gates = [...builtInGates({ prometheus }), ...moduleGates];
        const deployers = [
          new KubernetesDeployer(workloads),
          ...moduleDeployers,
        ];
        // Throws, naming the bad key, so the backend refuses to start.
        const progressionConfig = readProgressionConfig(config, {
          gates,
          deployers,
        });
        const db = await getMigratedClient(database);
        const store = new DatabasePromotionStore(db);
        permissionsRegistry.addPermissions(progressionPermissions);
        const windows = new StageWindows({
          config: progressionConfig,
          prometheus,
        });

        const reads = new ProgressionReadModel({
          windows,
          store,
          config: progressionConfig,
          gates,
          workloads,
          deployers,
          prometheus,
        });
        const progress = new PromotionSignals(signals, logger);
        const entities = new CatalogEntityResolver({
          catalog,
          auth,
          config: progressionConfig,
        });
        const notifier = progressionConfig.notifications.enabled
          ? new PromotionNotifier({
              db,
              store,
              config: progressionConfig,
              notifications,
              logger,
            })
          : undefined;
        const engine = new PromotionEngine({
          store,
          workloads,
          config: progressionConfig,
          gates,
          deployers,
          logger,
          windows,
          resolveEntity: ref => entities.resolve(ref),
          onTransition: change => {
            reads.invalidate(change.entityRef);
            progress.publish(change);
            notifier?.onTransition(change);
          },
        });
        const worker = new PromotionWorker({
          store,
          engine,
          logger,
          heartbeatMs: progressionConfig.worker.heartbeatMs,
          staleMs: progressionConfig.worker.staleMs,
          // Stable across restarts: the host and the port this backend
          // listens on tell replicas on one host apart.
          replicaId:
            progressionConfig.worker.replicaId ??
            `${os.hostname()}:${
              config.getOptionalNumber('backend.listen.port') ?? 7007
            }`,
        });
        // Every replica runs its own worker; the store's claims make each
        // promotion run on one of them.
        // The Kubernetes plugin's catalog locator: the catalog's clusters,
        // read at start and every minute, before and beside the worker.
        if (progressionConfig.clustersFromCatalog) {
          const catalogClusters = new CatalogClusters({
            catalog,
            auth,
            logger,
            clusters: progressionConfig.clusters,
          });
          await scheduler.scheduleTask({
            id: 'catalog-clusters',
            scope: 'local',
            frequency: { minutes: 1 },
            timeout: { seconds: 30 },
            fn: () => catalogClusters.refresh(),
          });
        }
        // The Kubernetes plugin's gke locators: GKE's clusters, listed at
        // start and every minute.
        if (progressionConfig.gkeLocators.length > 0) {
          const gkeClusters = new GkeClusters({
            locators: progressionConfig.gkeLocators,
            clusters: progressionConfig.clusters,
            logger,
          });
          await scheduler.scheduleTask({
            id: 'gke-clusters',
            scope: 'local',
            frequency: { minutes: 1 },
            timeout: { seconds: 30 },
            fn: () => gkeClusters.refresh(),
          });
        }
        await scheduler.scheduleTask({
          id: 'promotion-worker',
          scope: 'local',
          frequency: { seconds: 5 },
          timeout: { hours: 1 },
          fn: () => worker.runOnce(),
        });
        // One replica at a time keeps the store's growth bounded.
        await scheduler.scheduleTask({
          id: 'promotion-retention',
          scope: 'global',
          frequency: { hours: 1 },
          timeout: { minutes: 15 },
          initialDelay: { minutes: 1 },
          fn: async () => {
            const { keepForMs, keepLast } = progressionConfig.retention;
            const before = new Date(Date.now() - keepForMs);
            let deleted = 0;
            for (;;) {
              const batch = await store.deleteEnded({ before, keepLast });
              deleted += batch;
              if (batch === 0) break;
            }
            if (deleted) {
              logger.info(`deleted ${deleted} promotion(s) past retention`);
            }
          },
        });
        if (notifier) {
          // What a crash left unsent: on every replica (the notifications'
          // rows make each one sent once), soon after a restart.
          await scheduler.scheduleTask({
            id: 'promotion-notifications',
            scope: 'local',
            frequency: { seconds: 30 },
            timeout: { minutes: 5 },
            initialDelay: { seconds: 10 },
            fn: () => notifier.sweep(),
          });
        }
        lifecycle.addShutdownHook(async () => {
          await worker.stop();
          // After the worker: its last state changes may still notify.
          await notifier?.stop();
          await workloads.close();
        });
        logger.info(
          `Progression: ${progressionConfig.pipelines.size} pipeline(s), ${
            progressionConfig.clusters.size
          } cluster(s); gates ${gates
            .map(g => g.name)
            .join(', ')}; deployers ${deployers.map(d => d.kind).join(', ')}`,
        );
        httpRouter.use(
          await createRouter({
            logger,
            httpAuth,
            auth,
            catalog,
            config: progressionConfig,
            permissions,
            auditor,
            reads,
            commands: new PromotionCommands({
              store,
              config: progressionConfig,
              deployers,
              workloads,
              onWork: () => worker.kick(),
              memberships: user => entities.memberships(user),
              windows,
              onWindowOverride: async id =>
                notifier
                  ?.onWindowOverride(id)
                  .catch(e =>
                    logger.warn(
                      `could not record the notification of the window override of promotion ${id}: ${
                        (e as Error).message ?? e
                      }`,
                    ),
                  ),
            }),
          }),
        );
      },
    });
  },
});
