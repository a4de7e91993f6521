import {
  mockCredentials,
  mockServices,
  startTestBackend,
} from '@backstage/backend-test-utils';
import {
  createServiceFactory,
  coreServices,
} from '@backstage/backend-plugin-api';
import { AuthorizeResult } from '@backstage/plugin-permission-common';
import { catalogServiceMock } from '@backstage/plugin-catalog-node/testUtils';
import { KubeSimulator, installDemo } from '@internal/kube-simulator';
import request from 'supertest';
import { progressionPlugin } from './plugin';
import { component } from './__testUtils__/entities';

/*
 * The REST API end to end: the plugin in a test backend (SQLite), the
 * cluster simulator over HTTP, the demo workloads answering smoke checks.
 * The catalog and the permission policy are Backstage's test doubles.
 */
jest.setTimeout(120_000);

let sim: KubeSimulator;
let demo: Awaited<ReturnType<typeof installDemo>>;
let progression: object;

const entity = component('payments-api', { owner: 'team-payments' });
const base = '/api/progression/v1/entities/component/default/payments-api';
const liveImage = (ns: string) =>
  sim.store.get('deployments', ns, 'payments-api')!.spec.template.spec
    .containers[0].image;

beforeAll(async () => {
  sim = await KubeSimulator.start({ podReadyDelayMs: 20 });
  demo = await installDemo(sim, {
    anyPorts: true,
    trafficIntervalMs: 60_000,
  });
  const url = (ns: string) =>
    `${demo.servers.find(s => s.namespace === ns)!.url}/{{ kubernetesId }}`;
  const smoke = { checks: [{ path: '/healthz', assert: "status = 'ok'" }] };
  progression = {
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
            autoPromote: true,
            gates: { smoke },
          },
          {
            name: 'staging',
            cluster: 'sim',
            namespace: 'staging',
            url: url('staging'),
            gates: { smoke },
          },
          {
            name: 'production',
            cluster: 'sim',
            namespace: 'production',
            url: url('production'),
            approval: {
              required: true,
              // Without its namespace: read as group:default/release-managers.
              approvers: ['group:release-managers'],
            },
            gates: { smoke },
          },
        ],
      },
    },
  };
});

afterAll(async () => {
  await demo.stop();
  await sim.stop();
});

async function backend(
  options: { permission?: AuthorizeResult.ALLOW | AuthorizeResult.DENY } = {},
) {
  const auditEvents: Array<{
    eventId: string;
    outcome: string;
    meta?: unknown;
  }> = [];
  const auditor = createServiceFactory({
    service: coreServices.auditor,
    deps: {},
    factory: () => ({
      createEvent: async ({ eventId, meta }) => ({
        success: async () => {
          auditEvents.push({ eventId, outcome: 'success', meta });
        },
        fail: async () => {
          auditEvents.push({ eventId, outcome: 'failure', meta });
        },
      }),
    }),
  });
  const { server } = await startTestBackend({
    features: [
      progressionPlugin,
      // Olivia and Omar are release managers: approvers' groups are read
      // from the catalog when they decide.
      // Nina is in the SRE team, a child group of the release managers: as
      // the notifications backend asks her, she may decide.
      catalogServiceMock.factory({
        entities: [
          entity,
          releaseManager('olivia'),
          releaseManager('omar'),
          {
            apiVersion: 'backstage.io/v1alpha1',
            kind: 'User',
            metadata: { name: 'nina', namespace: 'default' },
            spec: { memberOf: ['sre'] },
            relations: [{ type: 'memberOf', targetRef: 'group:default/sre' }],
          },
          {
            apiVersion: 'backstage.io/v1alpha1',
            kind: 'Group',
            metadata: { name: 'sre', namespace: 'default' },
            spec: { type: 'team', parent: 'release-managers', children: [] },
            relations: [
              { type: 'childOf', targetRef: 'group:default/release-managers' },
            ],
          },
        ],
      }),
      mockServices.rootConfig.factory({ data: { progression } }),
      mockServices.permissions.factory({
        result: options.permission ?? AuthorizeResult.ALLOW,
      }),
      auditor,
    ],
  });
  return { server, auditEvents };
}

function releaseManager(name: string) {
  return {
    apiVersion: 'backstage.io/v1alpha1',
    kind: 'User',
    metadata: { name, namespace: 'default' },
    spec: { memberOf: ['release-managers'] },
    relations: [
      { type: 'memberOf', targetRef: 'group:default/release-managers' },
    ],
  };
}

async function waitForState(server: any, id: string, states: string[]) {
  for (let i = 0; i < 400; i++) {
    const res = await request(server).get(
      `/api/progression/v1/promotions/${id}`,
    );
    if (states.includes(res.body.promotion?.state)) return res.body;
    await new Promise(r => setTimeout(r, 25));
  }
  throw new Error(`promotion ${id} did not reach ${states.join(' or ')}`);
}

it('registers a release that flows into development, promotes it to staging, and stops before production for approval', async () => {
  const { server, auditEvents } = await backend();
  const ci = mockCredentials.service('external:ci');
  const registered = await request(server)
    .post(`${base}/releases`)
    .set(
      'Authorization',
      mockCredentials.service.header({
        onBehalfOf: ci,
        targetPluginId: 'progression',
      }),
    )
    .send({
      version: '1.5.0',
      image: 'registry.local/payments-api:1.5.0',
      commit: 'abc1234',
    });
  expect(registered.status).toBe(201);
  expect(registered.body).toMatchObject({
    version: '1.5.0',
    createdBy: 'service:external:ci',
  });

  // autoPromote on development: its promotion started with the registration.
  const list = await request(server).get(
    `${base}/promotions?stage=development`,
  );
  expect(list.body.items).toHaveLength(1);
  const dev = await waitForState(server, list.body.items[0].id, [
    'succeeded',
    'failed',
    'rolled-back',
  ]);
  expect(dev.promotion.state).toBe('succeeded');
  expect(liveImage('development')).toBe('registry.local/payments-api:1.5.0');
  expect(dev.steps.map((s: any) => s.name)).toContain('smoke');

  const staging = await request(server)
    .post(`${base}/promotions`)
    .set('Idempotency-Key', 'pipeline-run-7')
    .send({ stage: 'staging', version: '1.5.0', reason: 'ready' });
  expect(staging.status).toBe(202);
  const again = await request(server)
    .post(`${base}/promotions`)
    .set('Idempotency-Key', 'pipeline-run-7')
    .send({ stage: 'staging', version: '1.5.0' });
  expect(again.body.id).toBe(staging.body.id);
  expect(
    (await waitForState(server, staging.body.id, ['succeeded'])).promotion
      .release.version,
  ).toBe('1.5.0');
  expect(liveImage('staging')).toBe('registry.local/payments-api:1.5.0');

  const prod = await request(server)
    .post(`${base}/promotions`)
    .set('Authorization', mockCredentials.user.header('user:default/olivia'))
    .send({ stage: 'production' });
  expect(prod.status).toBe(202);
  const waiting = await waitForState(server, prod.body.id, [
    'awaiting-approval',
  ]);
  expect(waiting.approvals).toEqual([]);
  expect(waiting.evidenceHash).toMatch(/^sha256:/);
  const production = (
    await request(server).get(`${base}/environments`)
  ).body.pipeline.stages.find((st: any) => st.name === 'production');
  expect(production.activePromotion).toMatchObject({
    state: 'awaiting-approval',
    approvals: { approvedBy: [], needed: 1 },
  });
  expect(production.configuredGates).toEqual([
    { gate: 'approval', phase: 'approval' },
    { gate: 'smoke', phase: 'verification' },
  ]);
  expect(liveImage('production')).not.toBe('registry.local/payments-api:1.5.0');

  // A second promotion to a busy stage is a conflict, never a second deploy.
  const busy = await request(server)
    .post(`${base}/promotions`)
    .send({ stage: 'production' });
  expect(busy.status).toBe(409);
  expect(busy.body.error.message).toContain(
    'already has an active promotion to production',
  );

  const decide = (user: string, decision: string) =>
    request(server)
      .post(`/api/progression/v1/promotions/${prod.body.id}/approvals`)
      .set('Authorization', mockCredentials.user.header(user))
      .send({ decision, comment: `${decision} from ${user}` });
  const outsider = await decide('user:default/sam', 'approve');
  expect(outsider.status).toBe(403);
  expect(outsider.body.error.message).toContain(
    'may not approve promotions to production',
  );
  const self = await decide('user:default/olivia', 'approve');
  expect(self.status).toBe(403);
  expect(self.body.error.message).toBe(
    'user:default/olivia requested this promotion and may not approve it too',
  );
  const approved = await decide('user:default/omar', 'approve');
  expect(approved.status).toBe(201);
  const done = await waitForState(server, prod.body.id, [
    'succeeded',
    'failed',
    'rolled-back',
  ]);
  expect(done.promotion.state).toBe('succeeded');
  expect(done.approvals).toEqual([
    expect.objectContaining({
      approver: 'user:default/omar',
      decision: 'approved',
      valid: true,
    }),
  ]);
  expect(liveImage('production')).toBe('registry.local/payments-api:1.5.0');
  expect((await decide('user:default/omar', 'approve')).status).toBe(409);

  // Another round, rejected; and one cancelled while it waits.
  const again2 = await request(server)
    .post(`${base}/promotions`)
    .send({ stage: 'production' });
  await waitForState(server, again2.body.id, ['awaiting-approval']);
  const rejected = await request(server)
    .post(`/api/progression/v1/promotions/${again2.body.id}/approvals`)
    .set('Authorization', mockCredentials.user.header('user:default/nina'))
    .send({ decision: 'reject', comment: 'not on a Friday' });
  expect(rejected.body).toMatchObject({
    state: 'rejected',
    error: 'rejected by user:default/nina: not on a Friday',
  });

  const third = await request(server)
    .post(`${base}/promotions`)
    .send({ stage: 'production' });
  await waitForState(server, third.body.id, ['awaiting-approval']);
  const cancelled = await request(server).post(
    `/api/progression/v1/promotions/${third.body.id}/cancel`,
  );
  expect(cancelled.status).toBe(202);
  expect(cancelled.body.state).toBe('cancelled');
  expect(
    (
      await request(server).post(
        `/api/progression/v1/promotions/${third.body.id}/cancel`,
      )
    ).status,
  ).toBe(409);

  expect(auditEvents.map(e => `${e.eventId}:${e.outcome}`)).toEqual([
    'release-register:success',
    'promotion-request:success',
    'promotion-request:success',
    'promotion-request:success',
    'promotion-request:failure',
    'promotion-approval:failure',
    'promotion-approval:failure',
    'promotion-approval:success',
    'promotion-approval:failure',
    'promotion-request:success',
    'promotion-approval:success',
    'promotion-request:success',
    'promotion-cancel:success',
    'promotion-cancel:failure',
  ]);
});

it('answers bad requests with 400, 404 and 409, never 500', async () => {
  const { server } = await backend();
  const post = (path: string, body: unknown) =>
    request(server)
      .post(`${base}${path}`)
      .send(body as object);

  expect(
    (await post('/releases', { version: '1.0 && rm -rf /', image: 'x:1' }))
      .status,
  ).toBe(400);
  expect(
    (await post('/releases', { version: '1.0.0', image: 'bad image' })).status,
  ).toBe(400);
  expect(
    (await post('/releases', { version: '1.0.0', image: 'r/x:1', extra: true }))
      .status,
  ).toBe(400);
  expect((await post('/releases', { version: 1, image: 'r/x:1' })).status).toBe(
    400,
  );
  const malformed = await request(server)
    .post(`${base}/releases`)
    .set('Content-Type', 'application/json')
    .send('{"version":');
  expect(malformed.status).toBe(400);
  const huge = await post('/releases', {
    version: '1.0.0',
    image: 'r/x:1',
    url: `https://ci.example.com/${'a'.repeat(200_000)}`,
  });
  expect(huge.status).toBe(413);

  expect(
    (
      await post('/releases', {
        version: '1.6.0',
        image: 'registry.local/payments-api:1.6.0',
      })
    ).status,
  ).toBe(201);
  const immutable = await post('/releases', {
    version: '1.6.0',
    image: 'registry.local/payments-api:other',
  });
  expect(immutable.status).toBe(409);

  // CI retrying a registration gets the release back; a registration that
  // says another commit, commit time or build URL of it is refused, naming
  // what differs. A retry that leaves a field out is not a conflict.
  const built = {
    version: '1.7.0',
    image: 'registry.local/payments-api:1.7.0',
    commit: 'a2288eec3ec2',
    committedAt: '2026-11-30T09:00:00+01:00',
    url: 'https://ci.example.com/builds/17',
  };
  expect((await post('/releases', built)).status).toBe(201);
  expect((await post('/releases', built)).status).toBe(200);
  expect(
    (
      await post('/releases', {
        ...built,
        committedAt: '2026-11-30T08:00:00.000Z',
      })
    ).status,
  ).toBe(200);
  expect(
    (await post('/releases', { version: built.version, image: built.image }))
      .status,
  ).toBe(200);
  const rebuilt = await post('/releases', { ...built, commit: 'abcdef123456' });
  expect(rebuilt.status).toBe(409);
  expect(rebuilt.body.error.message).toBe(
    'Release 1.7.0 of component:default/payments-api already exists with commit a2288eec3ec2 (this registration says abcdef123456); releases are immutable',
  );
  const later = await post('/releases', {
    ...built,
    committedAt: '2026-11-30T08:05:00Z',
    url: 'https://ci.example.com/builds/18',
  });
  expect(later.status).toBe(409);
  expect(later.body.error.message).toContain(
    'committedAt 2026-11-30T08:00:00.000Z (this registration says 2026-11-30T08:05:00Z), url https://ci.example.com/builds/17 (this registration says https://ci.example.com/builds/18)',
  );
  const bare = await post('/releases', {
    version: '1.6.0',
    image: 'registry.local/payments-api:1.6.0',
    commit: 'a2288eec3ec2',
  });
  expect(bare.body.error.message).toContain(
    'commit (none) (this registration says a2288eec3ec2)',
  );

  expect((await post('/promotions', { stage: 'qa' })).status).toBe(404);
  expect(
    (await post('/promotions', { stage: 'staging', version: '0.0.1' })).status,
  ).toBe(404);
  const skip = await post('/promotions', {
    stage: 'production',
    version: '1.6.0',
  });
  expect(skip.status).toBe(409);
  expect(skip.body.error.message).toBe('staging has not passed 1.6.0 yet');
  expect(
    (
      await request(server).get(
        '/api/progression/v1/promotions/00000000-0000-4000-8000-000000000000',
      )
    ).status,
  ).toBe(404);
  expect(
    (await request(server).get('/api/progression/v1/promotions/not-a-uuid'))
      .status,
  ).toBe(400);
});

it('answers 401 without credentials and 403 without permission on every mutating route', async () => {
  const { server, auditEvents } = await backend({
    permission: AuthorizeResult.DENY,
  });
  const routes: Array<[string, object]> = [
    [
      `${base}/releases`,
      { version: '1.7.0', image: 'registry.local/payments-api:1.7.0' },
    ],
    [`${base}/promotions`, { stage: 'development' }],
    [`${base}/rollbacks`, { stage: 'development' }],
    [
      '/api/progression/v1/promotions/00000000-0000-4000-8000-000000000000/cancel',
      {},
    ],
    [
      '/api/progression/v1/promotions/00000000-0000-4000-8000-000000000000/approvals',
      { decision: 'approve' },
    ],
  ];
  for (const [path, body] of routes) {
    const anonymous = await request(server)
      .post(path)
      .set('Authorization', mockCredentials.none.header())
      .send(body);
    expect(anonymous.status).toBe(401);
  }
  for (const [path, body] of routes.slice(0, 3)) {
    const denied = await request(server).post(path).send(body);
    expect(denied.status).toBe(403);
  }
  expect(
    auditEvents.filter(e => e.outcome === 'failure').map(e => e.eventId),
  ).toEqual(['release-register', 'promotion-request', 'rollback-request']);
});

it('shows what runs in each stage, the last promotion and drift; an unreachable cluster spoils only its stage', async () => {
  const { server } = await backend();
  await request(server)
    .post(`${base}/releases`)
    .send({ version: '1.8.0', image: 'registry.local/payments-api:1.8.0' });
  const dev = (
    await request(server).get(`${base}/promotions?stage=development`)
  ).body.items[0];
  await waitForState(server, dev.id, ['succeeded']);

  const envs = await request(server).get(`${base}/environments`);
  expect(envs.status).toBe(200);
  const [development, staging] = envs.body.pipeline.stages;
  expect(development.live).toMatchObject({
    deployment: 'payments-api',
    image: 'registry.local/payments-api:1.8.0',
    version: '1.8.0',
    health: 'healthy',
    readyReplicas: 1,
  });
  expect(development.lastPromotion).toMatchObject({
    id: dev.id,
    state: 'succeeded',
    version: '1.8.0',
  });
  expect(development.activePromotion).toBeUndefined();
  expect(development.drift).toBeUndefined();
  expect(development.gates).toEqual([
    expect.objectContaining({
      gate: 'progression',
      status: 'passed',
      reason: 'development is the first stage',
    }),
    {
      gate: 'smoke',
      status: 'passed',
      reason: expect.stringMatching(/checks passed$/),
      promotionId: dev.id,
      at: expect.any(String),
    },
  ]);
  expect(staging.live.version).toBeDefined();

  // Someone changes the workload behind Progression's back: drift.
  sim.apply({
    ...sim.store.get('deployments', 'development', 'payments-api')!,
    spec: {
      ...sim.store.get('deployments', 'development', 'payments-api')!.spec,
      template: {
        ...sim.store.get('deployments', 'development', 'payments-api')!.spec
          .template,
        spec: {
          containers: [
            {
              name: 'payments-api',
              image: 'registry.local/payments-api:hotfix',
            },
          ],
        },
      },
    },
  });
  let drifted: any;
  for (let i = 0; i < 100 && !drifted; i++) {
    const stage = (await request(server).get(`${base}/environments`)).body
      .pipeline.stages[0];
    if (stage.drift) drifted = stage;
    else await new Promise(r => setTimeout(r, 25));
  }
  expect(drifted.drift).toEqual({
    expectedImage: 'registry.local/payments-api:1.8.0',
    liveImage: 'registry.local/payments-api:hotfix',
  });
  expect(drifted.live.version).toBe('hotfix');
});

it('renders the other stages when a stage cluster is unreachable', async () => {
  const { server } = await startTestBackend({
    features: [
      progressionPlugin,
      catalogServiceMock.factory({
        entities: [
          {
            ...entity,
            metadata: {
              ...entity.metadata,
              annotations: {
                ...entity.metadata.annotations,
                'progression.backstage.io/pipeline': 'split',
              },
            },
          },
        ],
      }),
      mockServices.rootConfig.factory({
        data: {
          progression: {
            clusters: [
              ...(progression as any).clusters,
              {
                name: 'down',
                url: 'http://127.0.0.1:9',
                serviceAccountToken: 'x',
                skipTLSVerify: true,
              },
            ],
            pipelines: {
              split: {
                stages: [
                  {
                    name: 'development',
                    cluster: 'sim',
                    namespace: 'development',
                  },
                  {
                    name: 'production',
                    cluster: 'down',
                    namespace: 'production',
                  },
                ],
              },
            },
          },
        },
      }),
    ],
  });
  const res = await request(server).get(`${base}/environments`);
  expect(res.status).toBe(200);
  const [development, production] = res.body.pipeline.stages;
  expect(development.live.deployment).toBe('payments-api');
  expect(production.live).toBeUndefined();
  expect(production.error).toMatch(/^could not read cluster down: /);
});

it('rolls a stage back on demand to the release that ran before, or a named one', async () => {
  const { server, auditEvents } = await backend();
  const register = async (version: string) => {
    await request(server)
      .post(`${base}/releases`)
      .send({ version, image: `registry.local/payments-api:${version}` });
    const promotion = (
      await request(server).get(`${base}/promotions?stage=development`)
    ).body.items.find((p: any) => p.release.version === version);
    await waitForState(server, promotion.id, ['succeeded']);
  };
  expect(
    (
      await request(server)
        .post(`${base}/rollbacks`)
        .send({ stage: 'development' })
    ).status,
  ).toBe(404);
  await register('3.0.0');
  await register('3.1.0');
  expect(liveImage('development')).toBe('registry.local/payments-api:3.1.0');

  const rollback = await request(server)
    .post(`${base}/rollbacks`)
    .send({ stage: 'development', reason: 'errors up' });
  expect(rollback.status).toBe(202);
  expect(rollback.body).toMatchObject({
    kind: 'rollback',
    stage: 'development',
    release: { version: '3.0.0' },
    reason: 'errors up',
  });
  const done = await waitForState(server, rollback.body.id, [
    'succeeded',
    'failed',
  ]);
  expect(done.promotion.state).toBe('succeeded');
  expect(liveImage('development')).toBe('registry.local/payments-api:3.0.0');
  expect(done.steps.map((s: any) => s.name)).toContain('smoke');

  const named = await request(server)
    .post(`${base}/rollbacks`)
    .send({ stage: 'development', toVersion: '3.1.0' });
  expect(
    (await waitForState(server, named.body.id, ['succeeded', 'failed']))
      .promotion.state,
  ).toBe('succeeded');
  expect(liveImage('development')).toBe('registry.local/payments-api:3.1.0');
  expect(
    (
      await request(server)
        .post(`${base}/rollbacks`)
        .send({ stage: 'development', toVersion: '0.0.9' })
    ).status,
  ).toBe(404);
  expect(
    auditEvents
      .filter(e => e.eventId === 'rollback-request')
      .map(e => e.outcome),
  ).toEqual(['failure', 'success', 'success', 'failure']);
});
