import {
  TestDatabaseId,
  TestDatabases,
  mockCredentials,
  mockServices,
  startTestBackend,
} from '@backstage/backend-test-utils';
import {
  coreServices,
  createServiceFactory,
} from '@backstage/backend-plugin-api';
import { Entity } from '@backstage/catalog-model';
import { catalogServiceMock } from '@backstage/plugin-catalog-node/testUtils';
import {
  NotificationSendOptions,
  notificationService,
} from '@backstage/plugin-notifications-node';
import { KubeSimulator, installDemo } from '@internal/kube-simulator';
import request from 'supertest';
import { progressionPlugin } from './plugin';
import { component, releaseManager } from './__testUtils__/entities';

/*
 * Who is told what, from outside: promotions driven through the REST API
 * of the plugin in a test backend, on SQLite and on the PostgreSQL server
 * of the test run, against the cluster simulator and its demo workloads,
 * with a notifications service that records what it is asked to send.
 */
jest.setTimeout(180_000);

const databases = TestDatabases.create({ ids: ['POSTGRES_15', 'SQLITE_3'] });

let sim: KubeSimulator;
let demo: Awaited<ReturnType<typeof installDemo>>;
const urlOf = (ns: string) =>
  `${demo.servers.find(s => s.namespace === ns)!.url}/{{ kubernetesId }}`;

beforeAll(async () => {
  sim = await KubeSimulator.start({ podReadyDelayMs: 20 });
  demo = await installDemo(sim, { anyPorts: true, trafficIntervalMs: 60_000 });
});

afterAll(async () => {
  await demo.stop();
  await sim.stop();
});

afterEach(() => sim.clearFaults());

const smoke = { checks: [{ path: '/healthz', assert: "status = 'ok'" }] };

function progression(replicaId: string, notifications?: object) {
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
      retry: { initialDelay: '100ms', maxDelay: '200ms', budget: '1m' },
      replicaId,
    },
    notifications,
    pipelines: {
      standard: {
        stages: [
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
            title: 'Production',
            cluster: 'sim',
            namespace: 'production',
            url: urlOf('production'),
            approval: {
              required: true,
              approvers: ['group:default/release-managers'],
            },
            gates: { smoke },
          },
        ],
      },
    },
  };
}

const entities: Entity[] = [
  component('payments-api', { owner: 'team-payments' }),
  releaseManager,
];

/** A notifications service that records each send, with the backend that sent it. */
function recordingNotifications(
  sent: (NotificationSendOptions & { by: string })[],
  by: string,
) {
  return createServiceFactory({
    service: notificationService,
    deps: {},
    factory: () => ({
      send: async (options: NotificationSendOptions) => {
        sent.push({ ...options, by });
      },
    }),
  });
}

async function startBackend(
  databaseId: TestDatabaseId,
  options: {
    knex?: any;
    sent?: (NotificationSendOptions & { by: string })[];
    name?: string;
    notifications?: object;
  } = {},
) {
  const knex = options.knex ?? (await databases.init(databaseId));
  const name = options.name ?? 'backend';
  // Scheduled tasks run when a test triggers them, and then to the end.
  const scheduler = mockServices.scheduler();
  const backend = await startTestBackend({
    features: [
      progressionPlugin,
      catalogServiceMock.factory({ entities }),
      mockServices.database.factory({ knex }),
      mockServices.rootConfig.factory({
        data: { progression: progression(name, options.notifications) },
      }),
      createServiceFactory({
        service: coreServices.scheduler,
        deps: {},
        factory: () => scheduler,
      }),
      // Without it, the notifications service's default: an HTTP call to a
      // notifications backend that is not there.
      ...(options.sent ? [recordingNotifications(options.sent, name)] : []),
    ],
  });
  return { backend, server: backend.server, knex, scheduler };
}

const base = `/api/progression/v1/entities/component/default/payments-api`;

async function details(server: any, id: string) {
  return (await request(server).get(`/api/progression/v1/promotions/${id}`))
    .body;
}

const ENDED = ['succeeded', 'failed', 'rolled-back', 'cancelled', 'rejected'];

/**
 * Polls a promotion until it is in one of `states`; `tick` runs before
 * each look (a worker's scheduled run, which the test scheduler leaves to
 * the test).
 */
async function waitFor(
  server: any,
  id: string,
  states: string[],
  tick?: () => Promise<void>,
) {
  for (let i = 0; i < 1200; i++) {
    await tick?.();
    const body = await details(server, id);
    if (states.includes(body.promotion?.state)) return body;
    await new Promise(r => setTimeout(r, 25));
  }
  const body = await details(server, id);
  throw new Error(
    `promotion ${id} is ${body.promotion?.state}, not ${states.join(' or ')}`,
  );
}

/** Polls until `check` passes. */
async function eventually(check: () => void) {
  for (let i = 0; ; i++) {
    try {
      check();
      return;
    } catch (e) {
      if (i >= 1200) throw e;
      await new Promise(r => setTimeout(r, 25));
    }
  }
}

const SWEEP = 'promotion-notifications';

/** Registers a release; returns the promotion into development it starts. */
async function register(server: any, version: string) {
  const res = await request(server)
    .post(`${base}/releases`)
    .send({ version, image: `registry.local/payments-api:${version}` });
  expect(res.status).toBe(201);
  const { items } = (
    await request(server).get(`${base}/promotions?stage=development`)
  ).body;
  const promotion = items.find((p: any) => p.release.version === version);
  expect(promotion).toBeDefined();
  return { promotion };
}

const about = (id: string) => (n: NotificationSendOptions) =>
  n.payload.link?.endsWith(`?promotion=${id}`);

describe.each(databases.eachSupportedId())('on %p', databaseId => {
  it('asks the approvers of production once, linking to the promotion, and tells the owners when it is live', async () => {
    const sent: (NotificationSendOptions & { by: string })[] = [];
    const { backend, server, scheduler } = await startBackend(databaseId, {
      sent,
    });
    try {
      const { promotion: dev } = await register(server, '21.0.0');
      expect((await waitFor(server, dev.id, ENDED)).promotion.state).toBe(
        'succeeded',
      );
      const staging = await request(server)
        .post(`${base}/promotions`)
        .send({ stage: 'staging', version: '21.0.0' });
      expect(
        (await waitFor(server, staging.body.id, ENDED)).promotion.state,
      ).toBe('succeeded');
      const production = await request(server)
        .post(`${base}/promotions`)
        .send({ stage: 'production', version: '21.0.0', reason: 'CI run 7' });
      expect(production.status).toBe(202);
      const id = production.body.id;
      const waiting = await waitFor(server, id, [
        'awaiting-approval',
        ...ENDED,
      ]);
      expect(waiting.promotion.state).toBe('awaiting-approval');

      await eventually(() => expect(sent).toHaveLength(1));
      // Successes before the last stage are nobody's news.
      expect(sent[0]).toMatchObject({
        recipients: {
          type: 'entity',
          entityRef: ['group:default/release-managers'],
          // The mock user asked, and may not approve their own request.
          excludeEntityRef: 'user:default/mock',
        },
        payload: {
          title:
            'The promotion of payments-api 21.0.0 to Production awaits approval',
          description:
            'user:default/mock asked for it (CI run 7). Approve or reject it in the Environments tab.',
          link: `/catalog/default/component/payments-api/environments?promotion=${id}`,
          severity: 'high',
          topic: 'progression:component:default/payments-api',
        },
      });

      const approved = await request(server)
        .post(`/api/progression/v1/promotions/${id}/approvals`)
        .set(
          'Authorization',
          mockCredentials.user.header('user:default/olivia'),
        )
        .send({ decision: 'approve', evidenceHash: waiting.evidenceHash });
      expect(approved.status).toBe(201);
      expect((await waitFor(server, id, ENDED)).promotion.state).toBe(
        'succeeded',
      );
      await eventually(() => expect(sent).toHaveLength(2));
      expect(sent[1]).toMatchObject({
        recipients: {
          type: 'entity',
          entityRef: 'component:default/payments-api',
        },
        payload: {
          title: 'The promotion of payments-api 21.0.0 to Production succeeded',
          link: `/catalog/default/component/payments-api/environments?promotion=${id}`,
          severity: 'normal',
          topic: 'progression:component:default/payments-api',
        },
      });
      // The sweep finds nothing left to send.
      await scheduler.triggerTask(SWEEP);
      expect(sent).toHaveLength(2);
    } finally {
      await backend.stop();
    }
  });

  it('tells the owners once of a rollback whose deploy was retried and which another backend finished, whoever sweeps after a restart', async () => {
    const knex = await databases.init(databaseId);
    const sent: (NotificationSendOptions & { by: string })[] = [];
    const a = await startBackend(databaseId, { knex, sent, name: 'a' });
    const b = await startBackend(databaseId, { knex, sent, name: 'b' });
    let c: Awaited<ReturnType<typeof startBackend>> | undefined;
    try {
      // The deploy's patches answer 503 until the first backend is gone:
      // its step is retried, and it cannot finish the promotion.
      sim.injectFaults({
        failNext: 1_000_000,
        failStatus: 503,
        methods: ['PATCH'],
      });
      const { promotion: dev } = await register(a.server, '22.0.0-unhealthy');
      for (let i = 0; ; i++) {
        const { steps } = await details(a.server, dev.id);
        if (steps.some((st: any) => st.kind === 'error')) break;
        if (i >= 1200) throw new Error('the deploy was never retried');
        await new Promise(r => setTimeout(r, 25));
      }
      await a.backend.stop();
      sim.clearFaults();
      // The second backend's worker runs as its schedule would run it.
      const ended = await waitFor(b.server, dev.id, ENDED, () =>
        b.scheduler.triggerTask('promotion-worker'),
      );
      expect(ended.promotion.state).toBe('rolled-back');
      expect(ended.steps.some((s: any) => s.kind === 'error')).toBe(true);

      await eventually(() =>
        expect(sent.filter(about(dev.id))).toHaveLength(1),
      );
      // The first backend restarts: its sweep and the other's, at once,
      // send nothing more.
      c = await startBackend(databaseId, { knex, sent, name: 'c' });
      await Promise.all([
        b.scheduler.triggerTask(SWEEP),
        c.scheduler.triggerTask(SWEEP),
      ]);
      const told = sent.filter(about(dev.id));
      expect(told).toHaveLength(1);
      expect(told[0]).toMatchObject({
        by: 'b',
        recipients: {
          type: 'entity',
          entityRef: 'component:default/payments-api',
        },
        payload: {
          title:
            'The promotion of payments-api 22.0.0-unhealthy to development failed and was rolled back',
          description: expect.stringContaining('smoke: GET /healthz failed'),
          severity: 'high',
          topic: 'progression:component:default/payments-api',
        },
      });
    } finally {
      await Promise.all([
        a.backend.stop(),
        b.backend.stop(),
        c?.backend.stop(),
      ]);
    }
  });

  it('runs promotions as before where no notifications backend answers, and sends nothing when turned off', async () => {
    // The default notifications service: an HTTP call that fails.
    const { backend, server, scheduler } = await startBackend(databaseId);
    try {
      const { promotion: dev } = await register(server, '23.0.0-unhealthy');
      expect((await waitFor(server, dev.id, ENDED)).promotion.state).toBe(
        'rolled-back',
      );
      await scheduler.triggerTask(SWEEP);
    } finally {
      await backend.stop();
    }

    const sent: (NotificationSendOptions & { by: string })[] = [];
    const off = await startBackend(databaseId, {
      sent,
      notifications: { enabled: false },
    });
    try {
      const { promotion: dev } = await register(off.server, '23.1.0-unhealthy');
      expect((await waitFor(off.server, dev.id, ENDED)).promotion.state).toBe(
        'rolled-back',
      );
      const scheduled = await off.scheduler.getScheduledTasks();
      expect(scheduled.map(t => t.id)).toContain('promotion-worker');
      expect(scheduled.map(t => t.id)).not.toContain(SWEEP);
      expect(sent).toEqual([]);
    } finally {
      await off.backend.stop();
    }
  });
});
