import {
  coreServices,
  createBackendPlugin,
} from '@backstage/backend-plugin-api';
import { catalogServiceRef } from '@backstage/plugin-catalog-node';
import { signalsServiceRef } from '@backstage/plugin-signals-node';
import {
  getContainerName,
  getKubernetesId,
  getPipelineName,
  getStageUrlOverride,
  progressionPermissions,
} from '@internal/backstage-plugin-progression-common';
import { readProgressionConfig } from './config/readProgressionConfig';
import { DatabasePromotionStore } from './database/DatabasePromotionStore';
import { getMigratedClient } from './database/migrations';
import { PromotionEngine } from './engine/PromotionEngine';
import { PromotionWorker } from './engine/PromotionWorker';
import { SmokeGate } from './gates/SmokeGate';
import { MetricsGate } from './gates/MetricsGate';
import { IsolationGate } from './gates/IsolationGate';
import { JobGate } from './gates/JobGate';
import { LoadGate } from './gates/LoadGate';
import { ParityGate } from './gates/ParityGate';
import { PrometheusClient } from './prometheus/PrometheusClient';
import { KubernetesWorkloads } from './kubernetes/KubernetesWorkloads';
import { ProgressionService } from './service/ProgressionService';
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
        permissions: coreServices.permissions,
        auditor: coreServices.auditor,
        auth: coreServices.auth,
        scheduler: coreServices.scheduler,
        lifecycle: coreServices.lifecycle,
        userInfo: coreServices.userInfo,
        signals: signalsServiceRef,
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
        userInfo,
        signals,
      }) {
        // Throws, naming the bad key, so the backend refuses to start.
        const progressionConfig = readProgressionConfig(config);
        const store = new DatabasePromotionStore(
          await getMigratedClient(database),
        );
        permissionsRegistry.addPermissions(progressionPermissions);

        const workloads = new KubernetesWorkloads();
        const prometheus =
          progressionConfig.prometheus &&
          new PrometheusClient(progressionConfig.prometheus);
        let service: ProgressionService | undefined = undefined;
        const engine = new PromotionEngine({
          store,
          workloads,
          config: progressionConfig,
          gates: [
            new IsolationGate(),
            new ParityGate(),
            new JobGate(),
            new SmokeGate(),
            new MetricsGate(prometheus),
            new LoadGate(),
          ],
          logger,
          // Live progress: one signals channel per entity.
          onTransition: change => {
            service?.invalidate(change.entityRef);
            signals
              .publish({
                recipients: { type: 'broadcast' },
                channel: `progression:${change.entityRef}`,
                message: { ...change, reason: change.reason ?? null },
              })
              .catch(e => logger.warn(`could not publish progress: ${e}`));
          },
          resolveEntity: async entityRef => {
            const entity = await catalog.getEntityByRef(entityRef, {
              credentials: await auth.getOwnServiceCredentials(),
            });
            if (!entity) throw new Error(`${entityRef} is not in the catalog`);
            return {
              entityRef,
              name: entity.metadata.name,
              namespace: entity.metadata.namespace ?? 'default',
              kubernetesId: getKubernetesId(entity),
              container: getContainerName(entity),
              urlOverrides: Object.fromEntries(
                (
                  progressionConfig.pipelines.get(getPipelineName(entity) ?? '')
                    ?.stages ?? []
                ).flatMap(stage => {
                  const url = getStageUrlOverride(entity, stage.name);
                  return url ? [[stage.name, url]] : [];
                }),
              ),
            };
          },
        });
        const worker = new PromotionWorker({
          store,
          engine,
          logger,
          heartbeatMs: progressionConfig.worker.heartbeatMs,
          staleMs: progressionConfig.worker.staleMs,
        });
        // Every replica runs its own worker; the store's claims make each
        // promotion run on one of them.
        await scheduler.scheduleTask({
          id: 'promotion-worker',
          scope: 'local',
          frequency: { seconds: 5 },
          timeout: { hours: 1 },
          fn: () => worker.runOnce(),
        });
        lifecycle.addShutdownHook(async () => {
          await worker.stop();
          await workloads.close();
        });
        service = new ProgressionService({
          store,
          config: progressionConfig,
          onWork: () => worker.kick(),
          workloads,
          prometheus,
          previewGates: [new IsolationGate(), new ParityGate()],
        });
        logger.info(
          `Progression: ${progressionConfig.pipelines.size} pipeline(s), ${progressionConfig.clusters.size} cluster(s)`,
        );
        httpRouter.use(
          await createRouter({
            httpAuth,
            auth,
            catalog,
            config: progressionConfig,
            permissions,
            auditor,
            service,
            userInfo,
          }),
        );
      },
    });
  },
});
