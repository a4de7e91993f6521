import {
  TestDatabaseId,
  TestDatabases,
  mockServices,
} from '@backstage/backend-test-utils';
import { ConfigReader } from '@backstage/config';
import { KubeSimulator, installDemo } from '@internal/kube-simulator';
import { ProgressionConfig } from '../config/readProgressionConfig';
import { readTestConfig } from '../__testUtils__/readTestConfig';
import { DatabasePromotionStore } from '../database/DatabasePromotionStore';
import { applyDatabaseMigrations } from '../database/migrations';
import { SmokeGate } from '../gates/SmokeGate';
import { KubernetesWorkloads } from '../kubernetes/KubernetesWorkloads';
import { PromotionEngine } from './PromotionEngine';

/*
 * The engine against the real parts: the promotion store on SQLite and
 * PostgreSQL, the cluster simulator over HTTP through client-node, and the
 * demo workloads answering the smoke checks over HTTP.
 */
jest.setTimeout(120_000);

const databases = TestDatabases.create({ ids: ['POSTGRES_15', 'SQLITE_3'] });
const entityRef = 'component:default/payments-api';
const image = (v: string) => `registry.local/payments-api:${v}`;

let sim: KubeSimulator;
let demo: Awaited<ReturnType<typeof installDemo>>;
let config: ProgressionConfig;

beforeAll(async () => {
  sim = await KubeSimulator.start({ podReadyDelayMs: 20 });
  demo = await installDemo(sim, {
    anyPorts: true,
    trafficIntervalMs: 60_000,
  });
  const url = (ns: string) =>
    `${demo.servers.find(s => s.namespace === ns)!.url}/{{ kubernetesId }}`;
  const smoke = {
    checks: [
      { path: '/healthz', assert: "status = 'ok'" },
      { path: '/api/version', assert: '$exists(version)' },
    ],
  };
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
          standard: {
            stages: [
              {
                name: 'development',
                cluster: 'sim',
                namespace: 'development',
                url: url('development'),
                rolloutTimeout: '3s',
                gates: { smoke },
              },
              {
                name: 'staging',
                cluster: 'sim',
                namespace: 'staging',
                url: url('staging'),
                autoPromote: true,
                gates: { smoke },
              },
              {
                name: 'production',
                cluster: 'sim',
                namespace: 'production',
                url: url('production'),
                approval: {
                  required: true,
                  approvers: ['group:default/release-managers'],
                },
                gates: { smoke },
              },
            ],
          },
        },
      },
    }),
  );
});

afterAll(async () => {
  await demo.stop();
  await sim.stop();
});

const liveImage = (ns: string) =>
  sim.store.get('deployments', ns, 'payments-api')!.spec.template.spec
    .containers[0].image;

/** Each test gets its own database; the cluster carries on between tests. */
async function setup(databaseId: TestDatabaseId) {
  const transitions: string[] = [];
  const knex = await databases.init(databaseId);
  await applyDatabaseMigrations(knex);
  const store = new DatabasePromotionStore(knex);
  const engine = new PromotionEngine({
    store,
    workloads: new KubernetesWorkloads(),
    config,
    gates: [new SmokeGate()],
    resolveEntity: async ref => ({
      entityRef: ref,
      name: 'payments-api',
      namespace: 'default',
      kubernetesId: 'payments-api',
    }),
    logger: mockServices.logger.mock(),
    onTransition: change => transitions.push(`${change.from}→${change.to}`),
  });
  const release = async (version: string) =>
    (
      await store.registerRelease({
        entityRef,
        version,
        image: image(version),
        createdBy: 'user:default/ci',
      })
    ).release;
  const promote = async (stage: string, releaseId: string) =>
    (
      await store.createPromotion({
        entityRef,
        pipeline: 'standard',
        stage,
        releaseId,
        requestedBy: 'user:default/jane',
      })
    ).promotion;
  return { store, engine, release, promote, transitions };
}

describe.each(databases.eachSupportedId())(
  'PromotionEngine on %p',
  databaseId => {
    it('takes a release through development, on into staging by itself, and stops for approval before production', async () => {
      const { store, engine, release, promote, transitions } = await setup(
        databaseId,
      );
      const r = await release(`1.1.${databaseId === 'SQLITE_3' ? 1 : 2}`);

      const dev = await promote('development', r.id);
      expect(await engine.run(dev.id)).toBe('succeeded');
      expect(liveImage('development')).toBe(r.image);
      // Each change was announced, for live progress.
      expect(transitions).toEqual([
        'pending→preflight',
        'preflight→deploying',
        'deploying→verifying',
        'verifying→succeeded',
      ]);
      const steps = await store.listSteps(dev.id);
      expect(steps.map(s => `${s.kind}:${s.name}:${s.status}`)).toEqual([
        'transition:requested:passed',
        'transition:start:passed',
        'gate:progression:passed',
        'deploy:patch:started',
        'deploy:rollout:passed',
        'gate:smoke:passed',
        'transition:verification:passed',
      ]);
      expect(steps[3].evidence).toMatchObject({
        deployment: 'payments-api',
        container: 'payments-api',
        toImage: r.image,
      });

      // staging has autoPromote: the success in development queued it.
      const queued = (
        await store.listPromotions(entityRef, { stage: 'staging' })
      ).items;
      expect(queued).toHaveLength(1);
      expect(await engine.run(queued[0].id)).toBe('succeeded');
      expect(liveImage('staging')).toBe(r.image);

      const prod = await promote('production', r.id);
      expect(await engine.run(prod.id)).toBe('awaiting-approval');
      expect(liveImage('production')).not.toBe(r.image);
    });

    it('rejects a promotion whose approval did not come in time', async () => {
      const { store, engine, release, promote } = await setup(databaseId);
      const r = await release('5.0.0');
      // Pretend it passed staging; production needs an approval.
      const staging = await promote('staging', r.id);
      await store.transition(staging.id, 'pending', 'succeeded', {
        kind: 'transition',
        name: 'test',
        status: 'passed',
      });
      const prod = await promote('production', r.id);
      expect(await engine.run(prod.id)).toBe('awaiting-approval');
      const expiresAfter = config.pipelines.get('standard')!.stages[2].approval;
      expiresAfter.expiresAfterMs = 60_000;
      try {
        expect(await engine.expireApprovals()).toBe(0);
        expect(await engine.expireApprovals(Date.now() + 61_000)).toBe(1);
      } finally {
        delete expiresAfter.expiresAfterMs;
      }
      expect(await store.getPromotion(prod.id)).toMatchObject({
        state: 'rejected',
        error: 'no approval within 1 min',
      });
    });

    it('refuses to skip a stage', async () => {
      const { engine, release, promote, store } = await setup(databaseId);
      const r = await release('9.9.9');
      const prod = await promote('production', r.id);
      expect(await engine.run(prod.id)).toBe('failed');
      expect((await store.getPromotion(prod.id))!.error).toBe(
        'staging has not passed 9.9.9 yet',
      );
      expect(liveImage('production')).not.toBe(r.image);
    });

    it('rolls back automatically when the smoke checks fail after the deploy', async () => {
      const { engine, release, promote, store } = await setup(databaseId);
      const before = liveImage('development');
      const r = await release(`2.0.0-unhealthy-${databaseId.toLowerCase()}`);
      const p = await promote('development', r.id);
      expect(await engine.run(p.id)).toBe('rolled-back');
      expect(liveImage('development')).toBe(before);

      const steps = await store.listSteps(p.id);
      const smoke = steps.find(s => s.kind === 'gate' && s.name === 'smoke')!;
      expect(smoke.status).toBe('failed');
      expect(smoke.reason).toBe(
        'GET /healthz failed: answered 503, expected 200',
      );
      const rollback = steps.find(s => s.kind === 'rollback')!;
      expect(rollback).toMatchObject({
        status: 'passed',
        toState: 'rolled-back',
      });
      expect(rollback.evidence).toMatchObject({
        from: r.image,
        to: before,
        checks: [expect.objectContaining({ status: 'passed' })],
      });
      expect((await store.getPromotion(p.id))!.error).toBe(
        'smoke: GET /healthz failed: answered 503, expected 200',
      );
    });

    it('fails and rolls back a release whose pods never become ready', async () => {
      const { engine, release, promote, store } = await setup(databaseId);
      const before = liveImage('development');
      const r = await release(`2.1.0-unready-${databaseId.toLowerCase()}`);
      const p = await promote('development', r.id);
      expect(await engine.run(p.id)).toBe('rolled-back');
      expect(liveImage('development')).toBe(before);
      const rollout = (await store.listSteps(p.id)).find(
        s => s.kind === 'deploy' && s.name === 'rollout',
      )!;
      expect(rollout).toMatchObject({
        status: 'failed',
        toState: 'rolling-back',
      });
      expect(rollout.reason).toContain('did not finish rolling out in 3 s');
    });

    it('sends the deploy patch once when the work is repeated after a crash', async () => {
      const { engine, release, promote, store } = await setup(databaseId);
      const r = await release(`3.0.${databaseId === 'SQLITE_3' ? 1 : 2}`);
      const p = await promote('development', r.id);
      // Up to deploying, then "crash" right after the patch reached the cluster.
      await engine.step((await store.getPromotion(p.id))!);
      await engine.step((await store.getPromotion(p.id))!);
      expect((await store.getPromotion(p.id))!.state).toBe('deploying');

      let patches = 0;
      let seen = liveImage('development');
      const unsubscribe = sim.store.subscribe(e => {
        if (
          e.resource !== 'deployments' ||
          e.object.metadata.name !== 'payments-api' ||
          e.object.metadata.namespace !== 'development'
        )
          return;
        const now = e.object.spec.template.spec.containers[0].image;
        if (now !== seen) {
          patches++;
          seen = now;
        }
      });
      const workloads = new KubernetesWorkloads();
      const location = {
        cluster: config.clusters.get('sim')!,
        namespace: 'development',
      };
      await store.addStep(p.id, {
        kind: 'deploy',
        name: 'patch',
        status: 'running',
        evidence: {
          deployment: 'payments-api',
          container: 'payments-api',
          fromImage: liveImage('development'),
          fromRevision: 0,
          toImage: r.image,
          cluster: 'sim',
          namespace: 'development',
        },
      });
      await workloads.setImage(
        location,
        'payments-api',
        'payments-api',
        r.image,
        { changeCause: 'x', promotionId: p.id },
      );

      // The restarted engine finishes the promotion without patching again.
      expect(await engine.run(p.id)).toBe('succeeded');
      unsubscribe();
      expect(patches).toBe(1);
    });
  },
);
