import { mockServices } from '@backstage/backend-test-utils';
import { CatalogService } from '@backstage/plugin-catalog-node';
import { GateDefinition } from '@progression-io/backstage-plugin-progression-node';
import knexFactory from 'knex';
import { ProgressionConfig } from '../config/types';
import { DatabasePromotionStore } from '../database/DatabasePromotionStore';
import { applyDatabaseMigrations } from '../database/migrations';
import { PromotionStore } from '../database/PromotionStore';
import { builtInGates } from '../gates/builtInGates';
import { KubernetesDeployer } from '../kubernetes/KubernetesDeployer';
import { KubernetesWorkloads } from '../kubernetes/KubernetesWorkloads';
import { PrometheusClient } from '../prometheus/PrometheusClient';
import { ProgressionReadModel } from '../service/ProgressionReadModel';
import { PromotionCommands } from '../service/PromotionCommands';
import { createRouter } from '../service/router';

/** A promotion store on a fresh in-memory SQLite database, migrated. */
export async function createTestStore(): Promise<DatabasePromotionStore> {
  const knex = knexFactory({
    client: 'better-sqlite3',
    connection: ':memory:',
    useNullAsDefault: true,
  });
  await applyDatabaseMigrations(knex);
  return new DatabasePromotionStore(knex);
}

/**
 * The REST router over real parts (a store, the built-in gates, the
 * cluster access when given) and Backstage's mock services for what is
 * not Progression's: auth that accepts mock credentials, an allow-all
 * permission policy, an auditor and user info.
 */
export async function createTestRouter(options: {
  config: ProgressionConfig;
  catalog: CatalogService;
  store?: PromotionStore;
  workloads?: KubernetesWorkloads;
  prometheus?: PrometheusClient;
  gates?: GateDefinition<any>[];
  onWork?: () => void;
}) {
  const store = options.store ?? (await createTestStore());
  const gates =
    options.gates ?? builtInGates({ prometheus: options.prometheus });
  const deployers = options.workloads
    ? [new KubernetesDeployer(options.workloads)]
    : [];
  const reads = new ProgressionReadModel({
    store,
    config: options.config,
    gates,
    workloads: options.workloads,
    deployers,
    prometheus: options.prometheus,
  });
  return createRouter({
    logger: mockServices.logger.mock(),
    httpAuth: mockServices.httpAuth(),
    auth: mockServices.auth(),
    catalog: options.catalog,
    config: options.config,
    permissions: mockServices.permissions(),
    auditor: mockServices.auditor.mock(),
    reads,
    commands: new PromotionCommands({
      store,
      config: options.config,
      deployers,
      workloads: options.workloads ?? new KubernetesWorkloads(),
      onWork: options.onWork ?? (() => {}),
      memberships: async user => [user],
    }),
  });
}
