/*
 * Benchmark of the environments and delivery insights reads, run with
 * `yarn workspace @progression-io/backstage-plugin-progression-backend bench:environments`.
 * It prints figures; nothing here asserts on time.
 *
 * One Backstage backend (the catalog and Progression, SQLite files, the
 * cluster simulator behind the stages) holds 1,000 entities, each with
 * 3 stages × 100 promotions. autocannon then reads one entity's
 * environments at 50 connections, its delivery insights over 90 days
 * (which hold its whole history), the insights of every entity once (each
 * read computes them) and then in turn for the duration (each read checks
 * the range's fingerprint, as nothing has ended since), and the same
 * backend's `GET /api/catalog/entities/by-name/...` for the same entity, and prints
 * requests/s, p99 and the ratio to the catalog's. The load comes from a
 * worker thread, so that it does not share the server's event loop. Last,
 * the insights query and the fingerprint query alone, straight on the
 * store, one call at a time.
 */
import { createBackendModule } from '@backstage/backend-plugin-api';
import { databaseServiceFactory } from '@backstage/backend-defaults/database';
import { mockServices, startTestBackend } from '@backstage/backend-test-utils';
import catalogPlugin from '@backstage/plugin-catalog-backend';
import { catalogProcessingExtensionPoint } from '@backstage/plugin-catalog-node';
import { KubeSimulator } from '@internal/kube-simulator';
import autocannon from 'autocannon';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import knexFactory from 'knex';
import { DatabasePromotionStore } from '../src/database/DatabasePromotionStore';
import { applyDatabaseMigrations } from '../src/database/migrations';
import { progressionPlugin } from '../src/plugin';
import { percentile } from './benchUtil';

const ENTITIES = Number(process.env.BENCH_ENTITIES ?? 1000);
const PROMOTIONS_PER_STAGE = Number(process.env.BENCH_PROMOTIONS ?? 100);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const DURATION_S = Number(process.env.BENCH_DURATION ?? 10);
const STAGES = ['development', 'staging', 'production'];
const name = (i: number) => `svc-${String(i).padStart(4, '0')}`;

/** Releases and promotions written straight into the plugin's tables. */
async function seedPromotions(dir: string) {
  const knex = knexFactory({
    client: 'better-sqlite3',
    connection: { filename: path.join(dir, 'progression.sqlite') },
    useNullAsDefault: true,
  });
  await applyDatabaseMigrations(knex);
  const start = Date.now() - ENTITIES * PROMOTIONS_PER_STAGE * 60_000;
  let clock = start;
  for (let e = 0; e < ENTITIES; e++) {
    const entityRef = `component:default/${name(e)}`;
    const releases: Record<string, unknown>[] = [];
    const promotions: Record<string, unknown>[] = [];
    const steps: Record<string, unknown>[] = [];
    for (let r = 0; r < PROMOTIONS_PER_STAGE; r++) {
      const id = crypto.randomUUID();
      const version = `1.${r}.0`;
      const at = new Date((clock += 1000));
      releases.push({
        id,
        entity_ref: entityRef,
        version,
        image: `registry.local/${name(e)}:${version}`,
        created_by: 'user:default/ci',
        created_at: at.toISOString(),
        // Half the releases say when their commit was made: lead time
        // reads it or the registration.
        committed_at:
          r % 2 ? new Date(at.getTime() - 3_600_000).toISOString() : null,
      });
      STAGES.forEach((stage, s) => {
        const promotionId = crypto.randomUUID();
        // The image patch went out: a rolled-back promotion is a deployment.
        if (r % 10 === 9) {
          steps.push({
            promotion_id: promotionId,
            kind: 'deploy',
            name: 'patch',
            status: 'started',
            started_at: new Date(at.getTime() + s * 100 + 10).toISOString(),
          });
        }
        promotions.push({
          id: promotionId,
          entity_ref: entityRef,
          pipeline: 'standard',
          stage,
          release_id: id,
          // Every tenth promotion failed and was rolled back.
          state: r % 10 === 9 ? 'rolled-back' : 'succeeded',
          requested_by: 'user:default/ci',
          kind: 'promotion',
          attempt: 1,
          created_at: new Date(at.getTime() + s * 100).toISOString(),
          updated_at: new Date(at.getTime() + s * 100 + 50).toISOString(),
          finished_at: new Date(at.getTime() + s * 100 + 50).toISOString(),
        });
      });
    }
    await knex.batchInsert('progression_releases', releases, 200);
    await knex.batchInsert('progression_promotions', promotions, 200);
    await knex.batchInsert('progression_promotion_steps', steps, 200);
  }
  const [{ count }] = await knex('progression_promotions').count({
    count: '*',
  });
  await knex.destroy();
  return Number(count);
}

function entity(i: number) {
  return {
    apiVersion: 'backstage.io/v1alpha1',
    kind: 'Component',
    metadata: {
      name: name(i),
      namespace: 'default',
      annotations: {
        'backstage.io/managed-by-location': 'url:https://example.com/bench',
        'backstage.io/managed-by-origin-location':
          'url:https://example.com/bench',
        'progression.backstage.io/pipeline': 'standard',
        'backstage.io/kubernetes-id': name(i),
      },
    },
    spec: { type: 'service', owner: 'group:default/team', lifecycle: 'test' },
  };
}

/** Gives the catalog the benchmark's entities. */
const benchEntities = createBackendModule({
  pluginId: 'catalog',
  moduleId: 'bench-entities',
  register(env) {
    env.registerInit({
      deps: { catalog: catalogProcessingExtensionPoint },
      async init({ catalog }) {
        catalog.addEntityProvider({
          getProviderName: () => 'bench',
          connect: async connection => {
            await connection.applyMutation({
              type: 'full',
              entities: Array.from({ length: ENTITIES }, (_, i) => ({
                entity: entity(i),
                locationKey: 'bench',
              })),
            });
          },
        });
      },
    });
  },
});

async function load(
  url: string,
  options: { paths?: string[]; amount?: number } = {},
) {
  const { paths, amount } = options;
  // How late the server's event loop ran timers meanwhile: at 50
  // connections it is busy all the time, and each turn of it serves the
  // requests that arrived during the last one.
  const delay = monitorEventLoopDelay({ resolution: 5 });
  delay.enable();
  // One worker thread sends the load, so that the load generator does not
  // share the server's event loop (the machine's other core runs it).
  if (paths) {
    process.env.BENCH_WALK_PATHS = JSON.stringify(paths);
    process.env.BENCH_WALK_CONNECTIONS = String(CONNECTIONS);
  }
  const result = await autocannon({
    url,
    connections: CONNECTIONS,
    ...(amount ? { amount } : { duration: DURATION_S }),
    workers: 1,
    headers: { Authorization: 'Bearer mock-user-token' },
    // In a worker, setupClient is the path of a module (autocannon's README,
    // "workers"); its types know only the function.
    ...(paths && {
      setupClient: path.join(__dirname, 'walkPaths.js') as never,
    }),
  });
  delay.disable();
  const bad = result.non2xx + result.errors + result.timeouts;
  return {
    loopP99: delay.percentile(99) / 1e6,
    loopMax: delay.max / 1e6,
    rps: result.requests.average,
    p99: result.latency.p99,
    p50: result.latency.p50,
    total: result.requests.total,
    bad,
  };
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-environments-'));
  const sim = await KubeSimulator.start({ tls: true });
  for (const stage of STAGES) {
    sim.apply({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: stage },
    });
    // Every entity has a Deployment in every stage: the informer caches hold 1,000 each.
    for (let i = 0; i < ENTITIES; i++) {
      sim.apply({
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: {
          name: name(i),
          namespace: stage,
          labels: { 'backstage.io/kubernetes-id': name(i) },
        },
        spec: {
          replicas: i === 0 ? 1 : 0,
          selector: { matchLabels: { app: name(i) } },
          template: {
            metadata: { labels: { app: name(i) } },
            spec: {
              containers: [
                { name: 'app', image: `registry.local/${name(i)}:1.98.0` },
              ],
            },
          },
        },
      });
    }
  }
  let seeded = performance.now();
  const promotions = await seedPromotions(dir);
  seeded = performance.now() - seeded;

  const backend = await startTestBackend({
    features: [
      databaseServiceFactory,
      mockServices.rootConfig.factory({
        data: {
          backend: {
            database: {
              client: 'better-sqlite3',
              connection: { directory: dir },
            },
          },
          catalog: { processingInterval: { hours: 1 } },
          progression: {
            clusters: [
              {
                name: 'sim',
                url: sim.url,
                serviceAccountToken: sim.token,
                skipTLSVerify: true,
              },
            ],
            pipelines: {
              standard: {
                stages: STAGES.map(stage => ({
                  name: stage,
                  cluster: 'sim',
                  namespace: stage,
                })),
              },
            },
          },
        },
      }),
      catalogPlugin,
      benchEntities,
      progressionPlugin,
    ],
  });
  const base = `http://127.0.0.1:${backend.server.port()}`;
  const target = name(0);
  const catalogUrl = `${base}/api/catalog/entities/by-name/component/default/${target}`;
  const environmentsUrl = `${base}/api/progression/v1/entities/component/default/${target}/environments`;
  const insightsPath = (i: number) =>
    `/api/progression/v1/entities/component/default/${name(
      i,
    )}/insights?range=90d`;
  const insightsUrl = `${base}${insightsPath(0)}`;
  const headers = { Authorization: 'Bearer mock-user-token' };

  // Wait until the catalog has processed the last entity and the informers are warm.
  let stitched = performance.now();
  for (let i = 0; ; i++) {
    const last = await fetch(
      `${base}/api/catalog/entities/by-name/component/default/${name(
        ENTITIES - 1,
      )}`,
      { headers },
    );
    if (last.ok) break;
    if (i > 1200) throw new Error('the catalog did not process the entities');
    await new Promise(r => setTimeout(r, 250));
  }
  stitched = performance.now() - stitched;
  for (let i = 0; ; i++) {
    const body = await (await fetch(environmentsUrl, { headers })).json();
    const stages = body.pipeline?.stages ?? [];
    if (stages.length === 3 && stages.every((s: any) => s.live)) {
      if (!stages.every((s: any) => s.lastPromotion))
        throw new Error(`no promotions in ${JSON.stringify(body)}`);
      break;
    }
    if (i > 100)
      throw new Error(`environments never complete: ${JSON.stringify(body)}`);
    await new Promise(r => setTimeout(r, 100));
  }

  // The 90 days hold the entity's whole history: 100 deployments a stage,
  // 10 of them rolled back.
  const seen = await (await fetch(insightsUrl, { headers })).json();
  const staging = seen.stages?.find((s: any) => s.stage === 'staging');
  if (
    staging?.deployments.count !== PROMOTIONS_PER_STAGE ||
    staging.changeFailureRate.failed !== Math.floor(PROMOTIONS_PER_STAGE / 10)
  ) {
    throw new Error(`unexpected insights: ${JSON.stringify(staging)}`);
  }

  // Warm the routes, then measure each in turn.
  await load(catalogUrl);
  const catalog = await load(catalogUrl);
  const environments = await load(environmentsUrl);
  await load(insightsUrl);
  const insights = await load(insightsUrl);
  const everyEntity = Array.from({ length: ENTITIES }, (_, i) =>
    insightsPath(i),
  );
  // Each entity once, none read before: the insights statement every time.
  const insightsCold = await load(base, {
    paths: everyEntity,
    amount: ENTITIES,
  });
  // Then again and again: nothing has ended since, so each read checks the
  // store's fingerprint of the range instead.
  const insightsAll = await load(base, { paths: everyEntity });

  // The query alone, on its own connection to the same database file.
  const knex = knexFactory({
    client: 'better-sqlite3',
    connection: { filename: path.join(dir, 'progression.sqlite') },
    useNullAsDefault: true,
  });
  const store = new DatabasePromotionStore(knex);
  const since = new Date(Date.now() - 90 * 86_400_000);
  const queryTimes: number[] = [];
  const fingerprintTimes: number[] = [];
  for (let i = 0; i < 2000; i++) {
    const query = {
      entityRef: `component:default/${name(i % ENTITIES)}`,
      stages: STAGES,
      since,
    };
    let started = performance.now();
    await store.deliveryInsights(query);
    queryTimes.push(performance.now() - started);
    started = performance.now();
    await store.deliveryFingerprint(query);
    fingerprintTimes.push(performance.now() - started);
  }
  await knex.destroy();

  console.log(
    `\nEnvironments read (${ENTITIES} entities × ${
      STAGES.length
    } stages × ${PROMOTIONS_PER_STAGE} promotions = ${promotions} promotions stored in ${(
      seeded / 1000
    ).toFixed(1)} s; catalog ready after ${(stitched / 1000).toFixed(
      1,
    )} s; SQLite; ${CONNECTIONS} connections, ${DURATION_S} s each; node ${
      process.version
    } ${
      [...process.execArgv, process.env.NODE_OPTIONS ?? ''].join(' ').trim() ||
      'with no flags'
    })`,
  );
  const row = (label: string, r: Awaited<ReturnType<typeof load>>) =>
    console.log(
      `  ${label.padEnd(44)} ${r.rps
        .toFixed(0)
        .padStart(6)} req/s  p50 ${String(r.p50).padStart(4)} ms  p99 ${String(
        r.p99,
      ).padStart(4)} ms  (${r.total} requests, ${
        r.bad
      } not 2xx or failed; event loop delay p99 ${r.loopP99.toFixed(
        0,
      )} ms, max ${r.loopMax.toFixed(0)} ms)`,
    );
  row('GET …/progression/v1/…/environments', environments);
  row('GET …/progression/v1/…/insights?range=90d', insights);
  row(`  each of the ${ENTITIES} entities once, first read`, insightsCold);
  row(`  each of the ${ENTITIES} entities in turn, again`, insightsAll);
  row('GET …/catalog/entities/by-name/…', catalog);
  console.log(
    `  ratio environments / catalog (req/s):        ${(
      environments.rps / catalog.rps
    ).toFixed(2)} (target ≥ 1.0; p99 target ≤ 50 ms)`,
  );
  console.log(
    `  ratio insights / catalog (req/s):            ${(
      insights.rps / catalog.rps
    ).toFixed(2)} (p99 target ≤ 50 ms: ${
      insights.p99 <= 50 ? 'met' : 'NOT met'
    } with ${insights.p99} ms; every entity in turn ${
      insightsAll.p99
    } ms, on its first read ${insightsCold.p99} ms)`,
  );
  console.log(
    `  insights query alone (store, ${
      queryTimes.length
    } calls one at a time, 300 promotions each): p50 ${percentile(
      queryTimes,
      50,
    ).toFixed(2)} ms, p99 ${percentile(queryTimes, 99).toFixed(
      2,
    )} ms; its fingerprint p50 ${percentile(fingerprintTimes, 50).toFixed(
      2,
    )} ms, p99 ${percentile(fingerprintTimes, 99).toFixed(2)} ms`,
  );

  await backend.stop();
  await sim.stop();
  fs.rmSync(dir, { recursive: true, force: true });
}

main().then(
  () => process.exit(0),
  e => {
    console.error(e);
    process.exit(1);
  },
);
