import {
  TestDatabaseId,
  TestDatabases,
  mockServices,
} from '@backstage/backend-test-utils';
import { ConfigReader } from '@backstage/config';
import { KubeSimulator } from '@internal/kube-simulator';
import { ProgressionConfig } from '../config/readProgressionConfig';
import { readTestConfig } from '../__testUtils__/readTestConfig';
import { DatabasePromotionStore } from '../database/DatabasePromotionStore';
import { applyDatabaseMigrations } from '../database/migrations';
import { KubernetesWorkloads } from '../kubernetes/KubernetesWorkloads';
import { PromotionEngine } from './PromotionEngine';
import { PromotionWorker } from './PromotionWorker';
import { isTerminal } from './transitions';

/*
 * Replicas sharing one database: each promotion's deploy patch reaches the
 * cluster exactly once, and a worker that stops heartbeating mid-deploy is
 * taken over by another that finishes the promotion.
 */
jest.setTimeout(120_000);

const databases = TestDatabases.create({ ids: ['POSTGRES_15', 'SQLITE_3'] });
const APPS = 20;

let sim: KubeSimulator;
let config: ProgressionConfig;
/** Image changes per Deployment, counted from the simulator's own events. */
const patches = new Map<string, number>();

beforeAll(async () => {
  sim = await KubeSimulator.start({ podReadyDelayMs: 20 });
  sim.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'dev' } });
  for (let i = 0; i < APPS; i++) {
    sim.apply({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: {
        name: `app-${i}`,
        namespace: 'dev',
        labels: { 'backstage.io/kubernetes-id': `app-${i}` },
      },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: `app-${i}` } },
        template: {
          metadata: { labels: { app: `app-${i}` } },
          spec: { containers: [{ name: 'app', image: 'app:0' }] },
        },
      },
    });
  }
  const images = new Map<string, string>();
  sim.store.subscribe(e => {
    if (e.resource !== 'deployments') return;
    const image = e.object.spec.template.spec.containers[0].image;
    const name = e.object.metadata.name;
    if (images.has(name) && images.get(name) !== image)
      patches.set(name, (patches.get(name) ?? 0) + 1);
    images.set(name, image);
  });
  config = readTestConfig(
    new ConfigReader({
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
          p: { stages: [{ name: 'dev', cluster: 'sim', namespace: 'dev' }] },
        },
      },
    }),
  );
});

afterAll(() => sim.stop());

function replica(
  store: DatabasePromotionStore,
  name: string,
  staleMs = 60_000,
) {
  const engine = new PromotionEngine({
    store,
    workloads: new KubernetesWorkloads(),
    config,
    gates: [],
    resolveEntity: async entityRef => {
      const name2 = entityRef.split('/')[1];
      return {
        entityRef,
        name: name2,
        namespace: 'default',
        kubernetesId: name2,
      };
    },
    logger: mockServices.logger.mock(),
  });
  return new PromotionWorker({
    store,
    engine,
    logger: mockServices.logger.mock(),
    replicaId: name,
    heartbeatMs: 50,
    staleMs,
  });
}

/** Waits for the promotions to end, running `tick` as the scheduler would. */
async function allTerminal(
  store: DatabasePromotionStore,
  ids: string[],
  tick?: () => Promise<void>,
) {
  for (let i = 0; i < 600; i++) {
    const states = await Promise.all(
      ids.map(async id => (await store.getPromotion(id))!.state),
    );
    if (states.every(isTerminal)) return states;
    await tick?.();
    await new Promise(r => setTimeout(r, 50));
  }
  const details = await Promise.all(
    ids.map(async id => [
      (await store.getPromotion(id))?.state,
      (await store.listSteps(id)).slice(-3),
    ]),
  );
  throw new Error(
    `promotions did not end: ${JSON.stringify(details).slice(0, 2000)}`,
  );
}

describe.each(databases.eachSupportedId())(
  'workers on %p',
  (databaseId: TestDatabaseId) => {
    it('runs 20 promotions on two replicas, each deploy patch sent once', async () => {
      const knex = await databases.init(databaseId);
      await applyDatabaseMigrations(knex);
      // Two replicas: their own store objects over one database.
      const claims = { a: 0, b: 0 };
      const counted = (key: 'a' | 'b') => {
        const s2 = new DatabasePromotionStore(knex);
        const claim = s2.claim.bind(s2);
        s2.claim = async (...args) => {
          const claimed = await claim(...args);
          if (claimed) claims[key]++;
          return claimed;
        };
        return s2;
      };
      const a = replica(counted('a'), 'replica-a');
      const b = replica(counted('b'), 'replica-b');
      const store = new DatabasePromotionStore(knex);
      patches.clear();

      const ids: string[] = [];
      for (let i = 0; i < APPS; i++) {
        const entityRef = `component:default/app-${i}`;
        const { release } = await store.registerRelease({
          entityRef,
          version: `${databaseId}-1`,
          image: `app:${databaseId}-1`,
          createdBy: 'user:default/ci',
        });
        ids.push(
          (
            await store.createPromotion({
              entityRef,
              pipeline: 'p',
              stage: 'dev',
              releaseId: release.id,
              requestedBy: 'user:default/ci',
            })
          ).promotion.id,
        );
      }
      await Promise.all([a.runOnce(), b.runOnce(), a.runOnce(), b.runOnce()]);
      const states = await allTerminal(store, ids);
      await a.stop();
      await b.stop();

      expect(states).toEqual(Array(APPS).fill('succeeded'));
      for (let i = 0; i < APPS; i++) {
        expect(patches.get(`app-${i}`)).toBe(1);
      }
      // Each promotion was claimed once, by one of the replicas.
      expect(claims.a + claims.b).toBe(APPS);
    });

    it('takes over a promotion whose worker died mid-deploy, without a second patch', async () => {
      const knex = await databases.init(databaseId);
      await applyDatabaseMigrations(knex);
      const store = new DatabasePromotionStore(knex);
      patches.clear();
      const entityRef = 'component:default/app-0';
      const { release } = await store.registerRelease({
        entityRef,
        version: `${databaseId}-2`,
        image: `app:${databaseId}-2`,
        createdBy: 'user:default/ci',
      });
      const { promotion } = await store.createPromotion({
        entityRef,
        pipeline: 'p',
        stage: 'dev',
        releaseId: release.id,
        requestedBy: 'user:default/ci',
      });

      // The first worker claims it, patches the cluster and dies: no more
      // heartbeats, the claim stays. (Its engine steps are run by hand here.)
      const dying = replica(store, 'dying');
      const claimed = await store.claim(
        'dying',
        ['pending'],
        new Date(Date.now() - 60_000),
      );
      expect(claimed?.id).toBe(promotion.id);
      const engine = (dying as any).options.engine as PromotionEngine;
      await engine.step((await store.getPromotion(promotion.id))!); // pending → preflight
      await engine.step((await store.getPromotion(promotion.id))!); // preflight → deploying
      await store.addStep(promotion.id, {
        kind: 'deploy',
        name: 'patch',
        status: 'running',
        evidence: {
          deployment: 'app-0',
          container: 'app',
          fromImage: 'app:0',
          fromRevision: 1,
          toImage: release.image,
          cluster: 'sim',
          namespace: 'dev',
        },
      });
      await new KubernetesWorkloads().setImage(
        { cluster: config.clusters.get('sim')!, namespace: 'dev' },
        'app-0',
        'app',
        release.image,
        { changeCause: 'x', promotionId: promotion.id },
      );

      // A live worker ignores the claim until it is stale, then takes over.
      const survivor = replica(store, 'survivor', 300);
      const [state] = await allTerminal(store, [promotion.id], () =>
        survivor.runOnce(),
      );
      await survivor.stop();
      expect(state).toBe('succeeded');
      expect(patches.get('app-0')).toBe(1);
      const final = await store.getPromotion(promotion.id);
      expect(final!.attempt).toBe(2);
    });
  },
);
