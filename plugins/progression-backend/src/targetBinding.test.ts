import {
  TestDatabaseId,
  TestDatabases,
  mockServices,
  startTestBackend,
} from '@backstage/backend-test-utils';
import { Entity } from '@backstage/catalog-model';
import { KubeSimulator, installDemo } from '@internal/kube-simulator';
import request from 'supertest';
import { progressionPlugin } from './plugin';
import { component, mutableCatalog } from './__testUtils__/entities';

/*
 * The Deployment a promotion changes is chosen by the entity's own
 * `backstage.io/kubernetes-id`, which the entity's owners may set to
 * anything. From outside, through the REST API of the plugin in a test
 * backend on SQLite and PostgreSQL, against the cluster simulator: the
 * first promotion binds the Deployment to its entity, and another entity
 * pointed at it is refused at once, before anything changes.
 */
jest.setTimeout(120_000);

const databases = TestDatabases.create({ ids: ['POSTGRES_15', 'SQLITE_3'] });

const ENTITY_REF = 'progression.backstage.io/entity-ref';
const REFUSAL =
  'Deployment payments-api in namespace development belongs to component:default/payments-api (annotation progression.backstage.io/entity-ref); component:default/evil-api may not deploy to it — give evil-api a backstage.io/kubernetes-id of its own';

let sim: KubeSimulator;
let demo: Awaited<ReturnType<typeof installDemo>>;

beforeAll(async () => {
  sim = await KubeSimulator.start({ podReadyDelayMs: 20 });
  demo = await installDemo(sim, { anyPorts: true, trafficIntervalMs: 60_000 });
  // evil-api's own workload, before its owners point it elsewhere.
  sim.apply({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name: 'evil-api',
      namespace: 'development',
      labels: { 'backstage.io/kubernetes-id': 'evil-api' },
    },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: 'evil-api' } },
      template: {
        metadata: { labels: { app: 'evil-api' } },
        spec: {
          containers: [
            { name: 'evil-api', image: 'registry.local/evil-api:0.9.0' },
          ],
        },
      },
    },
  });
});

afterAll(async () => {
  await demo.stop();
  await sim.stop();
});

// The simulator outlives each test's database: every test starts from
// Deployments that no promotion has bound yet.
beforeEach(() => {
  for (const d of sim.store.list('deployments', 'development')) {
    if (!d.metadata.annotations?.[ENTITY_REF]) continue;
    const annotations = { ...d.metadata.annotations };
    delete annotations[ENTITY_REF];
    sim.apply({ ...d, metadata: { ...d.metadata, annotations } });
  }
});

function progression() {
  return {
    clusters: [
      {
        name: 'sim',
        url: sim.url,
        serviceAccountToken: sim.token,
        skipTLSVerify: true,
      },
    ],
    worker: {
      heartbeatInterval: '100ms',
      staleAfter: '2s',
      retry: { initialDelay: '50ms', maxDelay: '200ms', budget: '1500ms' },
    },
    pipelines: {
      standard: {
        stages: [
          {
            name: 'development',
            cluster: 'sim',
            namespace: 'development',
            autoPromote: true,
          },
          { name: 'staging', cluster: 'sim', namespace: 'staging' },
        ],
      },
    },
  };
}

async function startBackend(databaseId: TestDatabaseId, entities: Entity[]) {
  const knex = await databases.init(databaseId);
  const backend = await startTestBackend({
    features: [
      progressionPlugin,
      mutableCatalog(entities),
      mockServices.database.factory({ knex }),
      mockServices.rootConfig.factory({
        data: { progression: progression() },
      }),
    ],
  });
  return { backend, server: backend.server };
}

const base = (name: string) =>
  `/api/progression/v1/entities/component/default/${name}`;

async function details(server: any, id: string) {
  return (await request(server).get(`/api/progression/v1/promotions/${id}`))
    .body;
}

const ENDED = ['succeeded', 'failed', 'rolled-back', 'cancelled', 'rejected'];

/** Polls a promotion until it has ended. */
async function ended(server: any, id: string) {
  for (let i = 0; i < 1200; i++) {
    const body = await details(server, id);
    if (ENDED.includes(body.promotion?.state)) return body;
    await new Promise(r => setTimeout(r, 25));
  }
  const body = await details(server, id);
  throw new Error(
    `promotion ${id} is ${body.promotion?.state}, not ended: ${JSON.stringify(
      body.steps?.slice(-5),
    )}`,
  );
}

/** Registers a release, which flows into development, and waits for that promotion to end. */
async function release(server: any, name: string, version: string) {
  const res = await request(server)
    .post(`${base(name)}/releases`)
    .send({ version, image: `registry.local/${name}:${version}` });
  expect(res.status).toBe(201);
  const list = await request(server).get(
    `${base(name)}/promotions?stage=development`,
  );
  const promotion = list.body.items.find(
    (p: any) => p.release.version === version,
  );
  return ended(server, promotion.id);
}

const deployment = (name: string) =>
  sim.store.get('deployments', 'development', name)!;
const liveImage = (name: string) =>
  deployment(name).spec.template.spec.containers[0].image;

/** The promotion failed at once with the refusal, and nothing was deployed. */
function expectRefused(body: any) {
  expect(body.promotion.state).toBe('failed');
  expect(body.promotion.error).toBe(REFUSAL);
  // An error that cannot heal is not tried again.
  expect(body.steps.filter((s: any) => s.kind === 'error')).toHaveLength(1);
  expect(body.steps.some((s: any) => s.name === 'patch')).toBe(false);
}

describe.each(databases.eachSupportedId())('on %p', databaseId => {
  it("binds the Deployment to the entity with the entity's first promotion", async () => {
    const { backend, server } = await startBackend(databaseId, [
      component('payments-api'),
    ]);
    try {
      expect(
        deployment('payments-api').metadata.annotations?.[ENTITY_REF],
      ).toBe(undefined);
      const done = await release(server, 'payments-api', '1.0.0');
      expect(done.promotion.state).toBe('succeeded');
      expect(liveImage('payments-api')).toBe(
        'registry.local/payments-api:1.0.0',
      );
      expect(deployment('payments-api').metadata.annotations).toMatchObject({
        [ENTITY_REF]: 'component:default/payments-api',
        'progression.backstage.io/promotion-id': done.promotion.id,
      });
    } finally {
      await backend.stop();
    }
  });

  it("fails another entity's promotion to that Deployment at once, changing nothing", async () => {
    const { backend, server } = await startBackend(databaseId, [
      component('payments-api'),
      // Its owners pointed its workload label at payments-api's Deployment.
      component('evil-api', { kubernetesId: 'payments-api' }),
    ]);
    try {
      expect(
        (await release(server, 'payments-api', '2.0.0')).promotion.state,
      ).toBe('succeeded');
      const before = deployment('payments-api');

      expectRefused(await release(server, 'evil-api', '6.6.6'));
      const after = deployment('payments-api');
      expect(liveImage('payments-api')).toBe(
        'registry.local/payments-api:2.0.0',
      );
      expect(after.metadata.generation).toBe(before.metadata.generation);
      expect(after.metadata.annotations?.[ENTITY_REF]).toBe(
        'component:default/payments-api',
      );
    } finally {
      await backend.stop();
    }
  });

  it('refuses an on-demand rollback by another entity the same way', async () => {
    const entities = [component('payments-api'), component('evil-api')];
    const { backend, server } = await startBackend(databaseId, entities);
    try {
      expect(
        (await release(server, 'payments-api', '3.0.0')).promotion.state,
      ).toBe('succeeded');
      // evil-api deploys to its own Deployment first.
      for (const version of ['1.0.0', '1.1.0']) {
        expect(
          (await release(server, 'evil-api', version)).promotion.state,
        ).toBe('succeeded');
      }
      expect(deployment('evil-api').metadata.annotations?.[ENTITY_REF]).toBe(
        'component:default/evil-api',
      );

      // Then its owners point it at payments-api and ask to go back.
      entities[1] = component('evil-api', { kubernetesId: 'payments-api' });
      const before = deployment('payments-api');
      const rollback = await request(server)
        .post(`${base('evil-api')}/rollbacks`)
        .send({ stage: 'development', toVersion: '1.0.0' });
      expect(rollback.status).toBe(202);
      expect(rollback.body.kind).toBe('rollback');
      expectRefused(await ended(server, rollback.body.id));
      expect(liveImage('payments-api')).toBe(
        'registry.local/payments-api:3.0.0',
      );
      expect(deployment('payments-api').metadata.generation).toBe(
        before.metadata.generation,
      );
      expect(liveImage('evil-api')).toBe('registry.local/evil-api:1.1.0');
    } finally {
      await backend.stop();
    }
  });
});
