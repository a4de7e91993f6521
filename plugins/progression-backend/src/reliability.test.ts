import {
  TestDatabaseId,
  TestDatabases,
  mockCredentials,
  mockServices,
  startTestBackend,
} from '@backstage/backend-test-utils';
import { Entity } from '@backstage/catalog-model';
import { KubeSimulator, installDemo } from '@internal/kube-simulator';
import request from 'supertest';
import { progressionPlugin } from './plugin';
import {
  component,
  mutableCatalog,
  releaseManager,
} from './__testUtils__/entities';

/*
 * The unhappy paths a platform team meets first, from outside: through the
 * REST API of the plugin in a test backend, on SQLite and on the PostgreSQL
 * server of the test run, against the cluster simulator (with its injected
 * faults) and its demo workloads. The catalog is a test double whose
 * entities a test may change or delete.
 */
jest.setTimeout(120_000);

const databases = TestDatabases.create({ ids: ['POSTGRES_15', 'SQLITE_3'] });

let sim: KubeSimulator;
let demo: Awaited<ReturnType<typeof installDemo>>;
const urlOf = (ns: string) =>
  `${demo.servers.find(s => s.namespace === ns)!.url}/{{ kubernetesId }}`;

beforeAll(async () => {
  // Jobs run long enough for a test to cancel one while it runs.
  sim = await KubeSimulator.start({ podReadyDelayMs: 20, jobRunMs: 4000 });
  demo = await installDemo(sim, { anyPorts: true, trafficIntervalMs: 60_000 });
});

afterAll(async () => {
  await demo.stop();
  await sim.stop();
});

afterEach(() => sim.clearFaults());

const smoke = { checks: [{ path: '/healthz', assert: "status = 'ok'" }] };

/** The pipeline of these tests; a test may change its stages. */
function progression(stages?: object[]) {
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
        stages: stages ?? [
          {
            name: 'development',
            cluster: 'sim',
            namespace: 'development',
            url: urlOf('development'),
            autoPromote: true,
            gates: { smoke },
          },
          {
            name: 'staging',
            cluster: 'sim',
            namespace: 'staging',
            url: urlOf('staging'),
            gates: { smoke },
          },
          {
            name: 'production',
            cluster: 'sim',
            namespace: 'production',
            url: urlOf('production'),
            approval: {
              required: true,
              approvers: ['group:default/release-managers'],
            },
            gates: { smoke, isolation: true },
          },
        ],
      },
    },
  };
}

async function startBackend(
  databaseId: TestDatabaseId,
  options: {
    entities?: Entity[];
    stages?: object[];
    knex?: any;
    retry?: object;
  } = {},
) {
  const knex = options.knex ?? (await databases.init(databaseId));
  const config = progression(options.stages);
  // The catalog's own list: a test may delete from it.
  const entities = [
    ...(options.entities ?? [component('payments-api')]),
    releaseManager,
  ];
  const backend = await startTestBackend({
    features: [
      progressionPlugin,
      mutableCatalog(entities),
      mockServices.database.factory({ knex }),
      mockServices.rootConfig.factory({
        data: {
          progression: {
            ...config,
            worker: {
              ...config.worker,
              retry: options.retry ?? config.worker.retry,
            },
          },
        },
      }),
    ],
  });
  return { backend, server: backend.server, knex, entities };
}

const base = (name = 'payments-api') =>
  `/api/progression/v1/entities/component/default/${name}`;

async function details(server: any, id: string) {
  return (await request(server).get(`/api/progression/v1/promotions/${id}`))
    .body;
}

/** Polls a promotion until it is in one of `states`. */
async function waitFor(server: any, id: string, states: string[]) {
  for (let i = 0; i < 1200; i++) {
    const body = await details(server, id);
    if (states.includes(body.promotion?.state)) return body;
    await new Promise(r => setTimeout(r, 25));
  }
  const body = await details(server, id);
  throw new Error(
    `promotion ${id} is ${body.promotion?.state}, not ${states.join(
      ' or ',
    )}: ${JSON.stringify(body.steps?.slice(-5))}`,
  );
}

const ENDED = ['succeeded', 'failed', 'rolled-back', 'cancelled', 'rejected'];

function register(server: any, version: string, name = 'payments-api') {
  return request(server)
    .post(`${base(name)}/releases`)
    .send({ version, image: `registry.local/payments-api:${version}` });
}

/** The promotions of a stage, oldest first. */
async function promotionsOf(server: any, stage: string, name = 'payments-api') {
  const res = await request(server).get(
    `${base(name)}/promotions?stage=${stage}`,
  );
  return [...res.body.items].reverse();
}

const liveImage = (ns: string, name = 'payments-api') =>
  sim.store.get('deployments', ns, name)!.spec.template.spec.containers[0]
    .image;

describe.each(databases.eachSupportedId())('on %p', databaseId => {
  it('refuses a rollback to a release that never ran in the stage, naming why', async () => {
    const { backend, server } = await startBackend(databaseId);
    try {
      expect((await register(server, '7.0.0')).status).toBe(201);
      const res = await request(server)
        .post(`${base()}/rollbacks`)
        .send({ stage: 'production', toVersion: '7.0.0' });
      expect(res.status).toBe(409);
      expect(res.body.error.message).toContain('7.0.0 never ran in production');
      // Nothing was started that could retry forever.
      expect(await promotionsOf(server, 'production')).toEqual([]);
    } finally {
      await backend.stop();
    }
  });

  it('ends a step that fails forever within its retry budget, with a bounded number of attempts', async () => {
    const { backend, server } = await startBackend(databaseId);
    try {
      // Every read of the cluster answers 503 from now on.
      sim.injectFaults({
        failNext: 1_000_000,
        failStatus: 503,
        methods: ['GET'],
      });
      expect((await register(server, '7.1.0')).status).toBe(201);
      const [dev] = await promotionsOf(server, 'development');
      const ended = await waitFor(server, dev.id, ENDED);
      expect(ended.promotion.state).toBe('failed');
      expect(ended.promotion.error).toMatch(/still failing after \d+ attempts/);
      const attempts = ended.steps.filter((s: any) => s.kind === 'error');
      // 1.5 s of budget at 50 ms doubling to 200 ms is about ten attempts.
      expect(attempts.length).toBeGreaterThan(1);
      expect(attempts.length).toBeLessThanOrEqual(20);
      // Nothing reached the cluster: it ended before the deploy.
      expect(ended.steps.some((s: any) => s.name === 'patch')).toBe(false);
    } finally {
      await backend.stop();
    }
  });

  it('fails at once, saying why, when no Deployment carries the entity label', async () => {
    const { backend, server } = await startBackend(databaseId, {
      entities: [component('ghost-api', { kubernetesId: 'ghost-api' })],
    });
    try {
      expect((await register(server, '1.0.0', 'ghost-api')).status).toBe(201);
      const [dev] = await promotionsOf(server, 'development', 'ghost-api');
      const ended = await waitFor(server, dev.id, ENDED);
      expect(ended.promotion.state).toBe('failed');
      expect(ended.promotion.error).toContain(
        'No Deployment labelled backstage.io/kubernetes-id=ghost-api',
      );
      // An error that cannot heal is not retried.
      expect(ended.steps.filter((s: any) => s.kind === 'error')).toHaveLength(
        1,
      );
    } finally {
      await backend.stop();
    }
  });

  it('fails a promotion whose entity was deleted from the catalog, without retrying', async () => {
    const { backend, server, entities, knex } = await startBackend(
      databaseId,
      // A quiet while between attempts, so no attempt straddles the deletion.
      { retry: { initialDelay: '3s', maxDelay: '3s', budget: '1m' } },
    );
    try {
      // The cluster does not answer for a while: the promotion waits to
      // try its deploy again, and meanwhile the entity goes away.
      sim.injectFaults({
        failNext: 1_000_000,
        failStatus: 503,
        methods: ['GET'],
      });
      expect((await register(server, '7.2.0')).status).toBe(201);
      const [dev] = await promotionsOf(server, 'development');
      for (let i = 0; i < 1200; i++) {
        const { steps } = await details(server, dev.id);
        if (steps.some((st: any) => st.kind === 'error')) break;
        await new Promise(r => setTimeout(r, 25));
      }
      entities.splice(0, 1);
      sim.clearFaults();
      // Its promotions are not visible through the API without the entity:
      // read the store's row.
      let row: any;
      for (let i = 0; i < 1200; i++) {
        row = await knex('progression_promotions')
          .where({ id: dev.id })
          .first();
        if (ENDED.includes(row.state)) break;
        await new Promise(r => setTimeout(r, 25));
      }
      expect(row.state).toBe('failed');
      expect(row.error).toContain('no longer in the catalog');
      const steps = await knex('progression_promotion_steps').where({
        promotion_id: dev.id,
      });
      expect(steps.some((st: any) => st.name === 'patch')).toBe(false);
    } finally {
      await backend.stop();
    }
  });

  it('answers 201 to two releases registered 10 ms apart; the newer reaches development', async () => {
    const { backend, server } = await startBackend(databaseId);
    try {
      const first = register(server, '8.0.0');
      await new Promise(r => setTimeout(r, 10));
      const second = register(server, '8.1.0');
      await new Promise(r => setTimeout(r, 10));
      const third = register(server, '8.2.0');
      expect((await first).status).toBe(201);
      expect((await second).status).toBe(201);
      expect((await third).status).toBe(201);
      let all: any[] = [];
      for (let i = 0; i < 1200; i++) {
        all = await promotionsOf(server, 'development');
        const newest = all.find(p => p.release.version === '8.2.0');
        if (newest && ENDED.includes(newest.state)) break;
        await new Promise(r => setTimeout(r, 25));
      }
      const byVersion = Object.fromEntries(
        all.map(p => [p.release.version, p.state]),
      );
      expect(byVersion['8.2.0']).toBe('succeeded');
      expect(liveImage('development')).toBe(
        'registry.local/payments-api:8.2.0',
      );
      // Each release ended in a state that says what happened to it: run,
      // or superseded by a newer one while the stage was busy.
      for (const version of ['8.0.0', '8.1.0']) {
        expect(['succeeded', 'skipped']).toContain(byVersion[version]);
      }
    } finally {
      await backend.stop();
    }
  });

  it('scopes Idempotency-Key per route and refuses the same key for another request with 422', async () => {
    const { backend, server } = await startBackend(databaseId);
    try {
      expect((await register(server, '9.0.0')).status).toBe(201);
      const [dev] = await promotionsOf(server, 'development');
      expect((await waitFor(server, dev.id, ENDED)).promotion.state).toBe(
        'succeeded',
      );
      expect((await register(server, '9.1.0')).status).toBe(201);
      const [, dev2] = await promotionsOf(server, 'development');
      await waitFor(server, dev2.id, ENDED);

      const rollback = await request(server)
        .post(`${base()}/rollbacks`)
        .set('Idempotency-Key', 'ci-run-1')
        .send({ stage: 'development', toVersion: '9.0.0' });
      expect(rollback.status).toBe(202);
      expect(rollback.body.kind).toBe('rollback');
      await waitFor(server, rollback.body.id, ENDED);

      // The same key on another route is another key.
      const promotion = await request(server)
        .post(`${base()}/promotions`)
        .set('Idempotency-Key', 'ci-run-1')
        .send({ stage: 'development', version: '9.1.0' });
      expect(promotion.status).toBe(202);
      expect(promotion.body.kind).toBe('promotion');
      expect(promotion.body.id).not.toBe(rollback.body.id);

      // The same key and request again: the same promotion.
      const again = await request(server)
        .post(`${base()}/promotions`)
        .set('Idempotency-Key', 'ci-run-1')
        .send({ stage: 'development', version: '9.1.0' });
      expect(again.body.id).toBe(promotion.body.id);

      // The same key asking for something else: 422.
      const other = await request(server)
        .post(`${base()}/promotions`)
        .set('Idempotency-Key', 'ci-run-1')
        .send({ stage: 'development', version: '9.0.0' });
      expect(other.status).toBe(422);
      expect(other.body.error.message).toContain('different request');

      expect(
        (await waitFor(server, promotion.body.id, ENDED)).promotion.state,
      ).toBe('succeeded');
      // Progression's own keys are in a space of their own: a caller's key
      // that looks like one does not return the automatic promotion.
      const lookalike = await request(server)
        .post(`${base()}/promotions`)
        .set('Idempotency-Key', `release:${dev.release.id}`)
        .send({ stage: 'staging', version: '9.1.0' });
      expect(lookalike.status).toBe(202);
      expect(lookalike.body.id).not.toBe(dev.id);
      expect(lookalike.body.stage).toBe('staging');
      await waitFor(server, lookalike.body.id, ENDED);
    } finally {
      await backend.stop();
    }
  });

  it('answers an out-of-range cursor with 400, without SQL or a stack trace', async () => {
    const { backend, server } = await startBackend(databaseId);
    try {
      const cursor = Buffer.from('100000000000000000000').toString('base64url');
      const res = await request(server).get(
        `${base()}/promotions?cursor=${cursor}`,
      );
      expect(res.status).toBe(400);
      expect(res.body.error.message).toContain('Invalid cursor');
      expect(JSON.stringify(res.body)).not.toMatch(/select|offset|\n\s+at /i);
      expect(res.body.error.stack).toBeUndefined();
    } finally {
      await backend.stop();
    }
  });

  it('refuses to promote a release onward that was rolled back out of the previous stage', async () => {
    const { backend, server } = await startBackend(databaseId);
    try {
      for (const version of ['10.0.0', '10.1.0']) {
        expect((await register(server, version)).status).toBe(201);
        const all = await promotionsOf(server, 'development');
        await waitFor(server, all[all.length - 1].id, ENDED);
      }
      // Development goes back from 10.1.0 to 10.0.0 on demand.
      const rollback = await request(server)
        .post(`${base()}/rollbacks`)
        .send({ stage: 'development', toVersion: '10.0.0' });
      expect(
        (await waitFor(server, rollback.body.id, ENDED)).promotion.state,
      ).toBe('succeeded');
      const onward = await request(server)
        .post(`${base()}/promotions`)
        .send({ stage: 'staging', version: '10.1.0' });
      expect(onward.status).toBe(409);
      expect(onward.body.error.message).toContain(
        'development was rolled back from 10.1.0',
      );
      // The release development runs now may move on.
      const current = await request(server)
        .post(`${base()}/promotions`)
        .send({ stage: 'staging', version: '10.0.0' });
      expect(current.status).toBe(202);
      await waitFor(server, current.body.id, ENDED);
    } finally {
      await backend.stop();
    }
  });

  it('refuses to promote onward a release whose latest promotion in the previous stage was rolled back', async () => {
    const { backend, server } = await startBackend(databaseId);
    try {
      expect((await register(server, '11.0.0-unhealthy')).status).toBe(201);
      const [dev] = await promotionsOf(server, 'development');
      expect((await waitFor(server, dev.id, ENDED)).promotion.state).toBe(
        'rolled-back',
      );
      const onward = await request(server)
        .post(`${base()}/promotions`)
        .send({ stage: 'staging', version: '11.0.0-unhealthy' });
      expect(onward.status).toBe(409);
      expect(onward.body.error.message).toContain(
        'development has not passed 11.0.0-unhealthy yet',
      );
    } finally {
      await backend.stop();
    }
  });

  it('sends an approved promotion back for approval when isolation says something else just before the deploy', async () => {
    const { backend, server } = await startBackend(databaseId, {
      stages: progression().pipelines.standard.stages.map((s: any) => ({
        ...s,
        autoPromote: false,
        gates: s.name === 'production' ? { isolation: true } : {},
        approval: s.approval && { ...s.approval, allowSelfApproval: true },
      })),
    });
    try {
      expect((await register(server, '12.0.0')).status).toBe(201);
      const promote = async (stage: string) => {
        const res = await request(server)
          .post(`${base()}/promotions`)
          .send({ stage, version: '12.0.0' });
        expect(res.status).toBe(202);
        return (
          await waitFor(server, res.body.id, [...ENDED, 'awaiting-approval'])
        ).promotion;
      };
      expect((await promote('development')).state).toBe('succeeded');
      expect((await promote('staging')).state).toBe('succeeded');
      const waiting = await promote('production');
      expect(waiting.state).toBe('awaiting-approval');
      const shown = await details(server, waiting.id);
      // A decision on other evidence than what is there now is refused.
      const stale = await request(server)
        .post(`/api/progression/v1/promotions/${waiting.id}/approvals`)
        .set(
          'Authorization',
          mockCredentials.user.header('user:default/olivia'),
        )
        .send({
          decision: 'approve',
          evidenceHash: `sha256:${'0'.repeat(64)}`,
        });
      expect(stale.status).toBe(409);
      expect(stale.body.error.message).toContain('changed since');

      // Staging may now reach production: isolation would fail.
      sim.apply({
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: { name: 'allow-from-staging', namespace: 'production' },
        spec: {
          podSelector: {},
          policyTypes: ['Ingress'],
          ingress: [
            {
              from: [
                {
                  namespaceSelector: {
                    matchLabels: { environment: 'staging' },
                  },
                },
              ],
            },
          ],
        },
      });
      try {
        const before = liveImage('production');
        const approved = await request(server)
          .post(`/api/progression/v1/promotions/${waiting.id}/approvals`)
          .set(
            'Authorization',
            mockCredentials.user.header('user:default/olivia'),
          )
          .send({ decision: 'approve', evidenceHash: shown.evidenceHash });
        expect(approved.status).toBe(201);
        let back: any;
        for (let i = 0; i < 1200; i++) {
          back = await details(server, waiting.id);
          if (back.steps.some((s: any) => s.name === 'recheck')) break;
          await new Promise(r => setTimeout(r, 25));
        }
        expect(back.promotion.state).toBe('awaiting-approval');
        const recheck = back.steps.find((s: any) => s.name === 'recheck');
        expect(recheck.reason).toMatch(/isolation now says/);
        expect(back.evidenceHash).not.toBe(shown.evidenceHash);
        expect(back.approvals.every((a: any) => !a.valid)).toBe(true);
        // Nothing was deployed.
        expect(liveImage('production')).toBe(before);
      } finally {
        sim.store.delete('networkpolicies', 'production', 'allow-from-staging');
      }
      const cancel = await request(server).post(
        `/api/progression/v1/promotions/${waiting.id}/cancel`,
      );
      expect(cancel.status).toBe(202);
    } finally {
      await backend.stop();
    }
  });

  it('stops a load test within seconds of a cancel and rolls back, recording no load result', async () => {
    const { backend, server } = await startBackend(databaseId, {
      stages: progression().pipelines.standard.stages.map((st: any) =>
        st.name === 'development'
          ? {
              ...st,
              gates: {
                smoke,
                load: {
                  path: '/api/version',
                  connections: 2,
                  duration: '60s',
                  thresholds: { errorRate: 0.5 },
                },
              },
            }
          : st,
      ),
    });
    try {
      expect((await register(server, '13.0.0')).status).toBe(201);
      const [dev] = await promotionsOf(server, 'development');
      // Cancel once the smoke checks passed: the load test runs then.
      for (let i = 0; i < 1200; i++) {
        const { steps } = await details(server, dev.id);
        if (steps.some((st: any) => st.name === 'smoke')) break;
        await new Promise(r => setTimeout(r, 25));
      }
      await new Promise(r => setTimeout(r, 500));
      const cancel = await request(server).post(
        `/api/progression/v1/promotions/${dev.id}/cancel`,
      );
      expect(cancel.status).toBe(202);
      expect(cancel.body.state).toBe('rolling-back');
      // Far sooner than the 60 s the load test would run.
      const ended = await waitFor(server, dev.id, ENDED);
      expect(ended.promotion.state).toBe('rolled-back');
      expect(ended.steps.some((st: any) => st.name === 'load')).toBe(false);
      expect(ended.steps.find((st: any) => st.name === 'cancel')).toBeTruthy();
    } finally {
      await backend.stop();
    }
  });

  it('ends the wait for a rollout that cannot become ready when cancelled, and rolls back at once', async () => {
    const { backend, server } = await startBackend(databaseId);
    try {
      const before = liveImage('development');
      expect((await register(server, '14.0.0-unready')).status).toBe(201);
      const [dev] = await promotionsOf(server, 'development');
      for (let i = 0; i < 1200; i++) {
        const { steps } = await details(server, dev.id);
        if (steps.some((st: any) => st.name === 'patch')) break;
        await new Promise(r => setTimeout(r, 25));
      }
      const cancel = await request(server).post(
        `/api/progression/v1/promotions/${dev.id}/cancel`,
      );
      expect(cancel.status).toBe(202);
      const ended = await waitFor(server, dev.id, ENDED);
      expect(ended.promotion.state).toBe('rolled-back');
      // The interrupted wait is not a failed deploy.
      expect(ended.steps.some((st: any) => st.name === 'rollout')).toBe(false);
      expect(liveImage('development')).toBe(before);
    } finally {
      await backend.stop();
    }
  });

  it('lets a migration Job finish when cancelled during it, and never sends the image patch after the cancel', async () => {
    const { backend, server } = await startBackend(databaseId, {
      stages: progression().pipelines.standard.stages.map((st: any) =>
        st.name === 'development'
          ? {
              ...st,
              gates: {
                smoke,
                job: { migration: { command: ['./migrate', 'up'] } },
              },
            }
          : st,
      ),
    });
    try {
      const before = liveImage('development');
      expect((await register(server, '15.0.0')).status).toBe(201);
      const [dev] = await promotionsOf(server, 'development');
      const jobOf = () =>
        sim.store
          .list('jobs', 'development')
          .find(
            (j: any) =>
              j.metadata.labels?.['progression.backstage.io/promotion-id'] ===
              dev.id,
          );
      for (let i = 0; i < 1200 && !jobOf(); i++) {
        await new Promise(r => setTimeout(r, 10));
      }
      expect(jobOf()).toBeDefined();
      const cancel = await request(server).post(
        `/api/progression/v1/promotions/${dev.id}/cancel`,
      );
      expect(cancel.status).toBe(202);
      const ended = await waitFor(server, dev.id, ENDED);
      expect(ended.promotion.state).toBe('rolled-back');
      expect(ended.steps.find((st: any) => st.name === 'rollback').reason).toBe(
        'nothing was deployed',
      );
      // The Job is left to finish: a half-run migration is worse.
      for (let i = 0; i < 1200; i++) {
        const conditions = jobOf()?.status?.conditions ?? [];
        if (conditions.some((c: any) => c.type === 'Complete')) break;
        await new Promise(r => setTimeout(r, 25));
      }
      expect(
        jobOf()!.status.conditions.some((c: any) => c.type === 'Complete'),
      ).toBe(true);
      // And after it ended, nothing patched the workload.
      await new Promise(r => setTimeout(r, 500));
      expect(liveImage('development')).toBe(before);
      expect(ended.steps.some((st: any) => st.name === 'patch')).toBe(false);
    } finally {
      await backend.stop();
    }
  });

  it('fails, without retrying, a promotion whose stage was removed from the configuration while it waited', async () => {
    const knex = await databases.init(databaseId);
    const first = await startBackend(databaseId, { knex });
    let id: string;
    try {
      // The cluster does not answer: the promotion waits for its retry.
      sim.injectFaults({ failNext: 1_000_000, failStatus: 503 });
      expect((await register(first.server, '16.0.0')).status).toBe(201);
      [{ id }] = await promotionsOf(first.server, 'development');
      for (let i = 0; i < 1200; i++) {
        const { steps } = await details(first.server, id);
        if (steps.some((st: any) => st.kind === 'error')) break;
        await new Promise(r => setTimeout(r, 25));
      }
    } finally {
      await first.backend.stop();
      sim.clearFaults();
    }
    // The platform team drops development from the pipeline.
    const second = await startBackend(databaseId, {
      knex,
      stages: progression().pipelines.standard.stages.filter(
        (st: any) => st.name !== 'development',
      ),
    });
    try {
      const ended = await waitFor(second.server, id, ENDED);
      expect(ended.promotion.state).toBe('failed');
      expect(ended.promotion.error).toContain('no longer configured');
    } finally {
      await second.backend.stop();
    }
  });

  it('ends a rollback whose undo the cluster keeps refusing with 5xx within the budget, as failed', async () => {
    const { backend, server } = await startBackend(databaseId, {
      // Smoke checks that take a few seconds to give up: time enough to
      // break the cluster's writes after the deploy, before the undo.
      stages: progression().pipelines.standard.stages.map((st: any) =>
        st.name === 'development'
          ? {
              ...st,
              gates: {
                smoke: {
                  checks: [
                    { ...smoke.checks[0], retries: 6, retryDelay: '500ms' },
                  ],
                },
              },
            }
          : st,
      ),
    });
    try {
      expect((await register(server, '17.0.0-unhealthy')).status).toBe(201);
      const [dev] = await promotionsOf(server, 'development');
      // Once the deploy is done, every write of the cluster fails.
      for (let i = 0; i < 1200; i++) {
        const { promotion } = await details(server, dev.id);
        if (promotion.state === 'verifying') break;
        await new Promise(r => setTimeout(r, 5));
      }
      sim.injectFaults({
        failNext: 1_000_000,
        failStatus: 500,
        methods: ['PATCH', 'PUT'],
      });
      const ended = await waitFor(server, dev.id, ENDED);
      // The verification failed, then the undo kept failing.
      expect(
        ended.steps.find((st: any) => st.name === 'verification')?.status,
      ).toBe('failed');
      expect(ended.promotion.state).toBe('failed');
      expect(ended.promotion.error).toMatch(/still failing after \d+ attempts/);
      expect(
        ended.steps.filter((st: any) => st.kind === 'error').length,
      ).toBeLessThanOrEqual(20);
    } finally {
      await backend.stop();
    }
  });

  it('pages the steps of a promotion', async () => {
    const { backend, server } = await startBackend(databaseId);
    try {
      expect((await register(server, '18.0.0')).status).toBe(201);
      const [dev] = await promotionsOf(server, 'development');
      const all = (await waitFor(server, dev.id, ENDED)).steps;
      const first = await request(server).get(
        `/api/progression/v1/promotions/${dev.id}?stepLimit=2`,
      );
      expect(first.body.steps).toEqual(all.slice(0, 2));
      const rest = await request(server).get(
        `/api/progression/v1/promotions/${dev.id}?stepLimit=1000&stepCursor=${first.body.nextStepCursor}`,
      );
      expect(rest.body.steps).toEqual(all.slice(2));
      expect(rest.body.nextStepCursor).toBeUndefined();
    } finally {
      await backend.stop();
    }
  });

  it.each([
    ['19.0.0-unready', /has not been ready for .* since it started/],
    ['19.1.0-crashloop', /is in CrashLoopBackOff after \d+ restarts/],
    ['19.2.0-badimage', /cannot pull image/],
  ])(
    'rolls back %s as soon as its pod says it cannot come up, naming pod and reason',
    async (version, reason) => {
      const { backend, server } = await startBackend(databaseId, {
        stages: progression().pipelines.standard.stages.map((st: any) =>
          st.name === 'development' ? { ...st, readyTimeout: '2s' } : st,
        ),
      });
      try {
        const before = liveImage('development');
        expect((await register(server, version)).status).toBe(201);
        const [dev] = await promotionsOf(server, 'development');
        const ended = await waitFor(server, dev.id, ENDED);
        expect(ended.promotion.state).toBe('rolled-back');
        const rollout = ended.steps.find((st: any) => st.name === 'rollout');
        expect(rollout.status).toBe('failed');
        expect(rollout.reason).toMatch(reason);
        expect(rollout.evidence.pod).toMatchObject({
          name: expect.stringMatching(/^payments-api-/),
          container: 'payments-api',
        });
        expect(liveImage('development')).toBe(before);
      } finally {
        await backend.stop();
      }
    },
  );

  it('stops a step held up by a cluster that does not answer, and ends the promotion within its budget', async () => {
    const knex = await databases.init(databaseId);
    const config = progression();
    const backend = await startTestBackend({
      features: [
        progressionPlugin,
        mutableCatalog([component('payments-api'), releaseManager]),
        mockServices.database.factory({ knex }),
        mockServices.rootConfig.factory({
          data: {
            progression: {
              ...config,
              worker: { ...config.worker, stepTimeout: '500ms' },
            },
          },
        }),
      ],
    });
    try {
      // Every call to the cluster now takes 20 s to answer.
      sim.injectFaults({ latencyMs: 20_000 });
      expect((await register(backend.server, '20.0.0')).status).toBe(201);
      const [dev] = await promotionsOf(backend.server, 'development');
      const ended = await waitFor(backend.server, dev.id, ENDED);
      expect(ended.promotion.state).toBe('failed');
      const attempts = ended.steps.filter((st: any) => st.kind === 'error');
      expect(attempts[0].reason).toMatch(/ran longer than/);
      expect(ended.promotion.error).toMatch(/still failing after \d+ attempts/);
    } finally {
      sim.clearFaults();
      await backend.stop();
    }
  });
});
