import { mockServices, startTestBackend } from '@backstage/backend-test-utils';
import { catalogServiceMock } from '@backstage/plugin-catalog-node/testUtils';
import { AuthorizeResult } from '@backstage/plugin-permission-common';
// The modules are tested in the real Progression backend they extend.
// eslint-disable-next-line @backstage/no-mixed-plugin-imports
import progressionBackend from '@progression-io/backstage-plugin-progression-backend';
import progressionModuleWebhook from '@progression-io/backstage-plugin-progression-backend-module-webhook';
import { KubeSimulator, installDemo } from '@internal/kube-simulator';
import http from 'node:http';
import { AddressInfo } from 'node:net';
import request from 'supertest';
import progressionModuleTestJob from './index';
import { JOB_ROLE_LABEL, testJobName } from './TestJobGate';

/*
 * Both gate modules in a real backend next to the Progression plugin,
 * which knows neither: they arrive through its extension point. The
 * cluster is the simulator over HTTP (its k6 image logs a k6 summary, and
 * fails with exit code 99 when its tag says `failing`); the webhook is a
 * real HTTP server this test runs. Everything is driven and read through
 * the REST API.
 */
jest.setTimeout(120_000);

const HOOK_SECRET = 'Bearer hook-secret-4711';
const QUERY_SECRET = 'query-token-0815';
const OLD_IMAGE = 'registry.local/payments-api:1.0.0';
const NEW_IMAGE = 'registry.local/payments-api:1.5.0';
const k6 = {
  command: ['k6', 'run', '/scripts/smoke.js'],
  env: { BASE_URL: '{{ stageUrl }}' },
  timeout: '1m',
};

let sim: KubeSimulator;
let demo: Awaited<ReturnType<typeof installDemo>>;
let hookServer: http.Server;
let hookBase: string;
const hookCalls: {
  path?: string;
  headers: http.IncomingHttpHeaders;
  body: any;
}[] = [];
let stageUrl: (namespace: string) => string;

const entity = {
  apiVersion: 'backstage.io/v1alpha1',
  kind: 'Component',
  metadata: {
    name: 'payments-api',
    annotations: {
      'progression.backstage.io/pipeline': 'standard',
      'backstage.io/kubernetes-id': 'payments-api',
    },
  },
  spec: { type: 'service', owner: 'team-payments' },
};
const base = '/api/progression/v1/entities/component/default/payments-api';
const liveImage = (ns: string) =>
  sim.store.get('deployments', ns, 'payments-api')!.spec.template.spec
    .containers[0].image;

beforeAll(async () => {
  sim = await KubeSimulator.start({ podReadyDelayMs: 20 });
  demo = await installDemo(sim, { anyPorts: true, trafficIntervalMs: 60_000 });
  stageUrl = ns =>
    `${demo.servers.find(s => s.namespace === ns)!.url}/payments-api`;
  hookServer = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', c => chunks.push(c));
    req.on('end', () => {
      hookCalls.push({
        path: req.url,
        headers: req.headers,
        body: JSON.parse(Buffer.concat(chunks).toString('utf8')),
      });
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end('{"confirmed":true}');
    });
  });
  await new Promise<void>(resolve =>
    hookServer.listen(0, '127.0.0.1', () => resolve()),
  );
  hookBase = `http://127.0.0.1:${(hookServer.address() as AddressInfo).port}`;
});

afterAll(async () => {
  hookServer.closeAllConnections();
  await new Promise(resolve => hookServer.close(resolve));
  await demo.stop();
  await sim.stop();
});

async function backend() {
  const url = (ns: string) =>
    `${demo.servers.find(s => s.namespace === ns)!.url}/{{ kubernetesId }}`;
  const progression = {
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
            gates: {
              smoke: { checks: [{ path: '/healthz' }] },
              webhook: [
                {
                  name: 'change-freeze',
                  url: `${hookBase}/confirm-promotion?token=${QUERY_SECRET}`,
                  headers: { Authorization: HOOK_SECRET },
                },
                {
                  name: 'after-deploy',
                  url: `${hookBase}/verified`,
                  phase: 'verification',
                },
              ],
              testJob: { image: 'grafana/k6:0.52.0', ...k6 },
            },
          },
          {
            name: 'staging',
            cluster: 'sim',
            namespace: 'staging',
            url: url('staging'),
            gates: {
              webhook: { name: 'change-freeze', url: `${hookBase}/confirm` },
              // The simulator's k6 crosses its thresholds for this tag.
              testJob: { image: 'grafana/k6:0.52.0-failing', ...k6 },
            },
          },
        ],
      },
    },
  };
  const { server } = await startTestBackend({
    features: [
      progressionBackend,
      progressionModuleWebhook,
      progressionModuleTestJob,
      catalogServiceMock.factory({ entities: [entity] }),
      mockServices.rootConfig.factory({ data: { progression } }),
      mockServices.permissions.factory({ result: AuthorizeResult.ALLOW }),
    ],
  });
  return server;
}

async function settled(server: any, id: string) {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const res = await request(server).get(
      `/api/progression/v1/promotions/${id}`,
    );
    if (
      ['succeeded', 'failed', 'rolled-back', 'cancelled', 'rejected'].includes(
        res.body.promotion?.state,
      )
    ) {
      return res;
    }
    await new Promise(r => setTimeout(r, 50));
  }
  throw new Error(`promotion ${id} did not finish`);
}

const gateSteps = (body: any, gate: string) =>
  body.steps.filter((s: any) => s.kind === 'gate' && s.name === gate);

it('runs a module webhook and a module test job in a promotion, and rolls back when the test job fails', async () => {
  const server = await backend();
  expect(
    (
      await request(server)
        .post(`${base}/releases`)
        .send({ version: '1.5.0', image: NEW_IMAGE })
    ).status,
  ).toBe(201);

  // Development: the webhooks confirm, k6 passes.
  const promoted = await request(server)
    .post(`${base}/promotions`)
    .send({ stage: 'development', version: '1.5.0' });
  expect(promoted.status).toBe(202);
  const id = promoted.body.id;
  const dev = await settled(server, id);
  expect(dev.body.promotion.state).toBe('succeeded');
  expect(liveImage('development')).toBe(NEW_IMAGE);

  const webhooks = gateSteps(dev.body, 'webhook');
  expect(webhooks.map((s: any) => [s.evidence.phase, s.status])).toEqual([
    ['preflight', 'passed'],
    ['verification', 'passed'],
  ]);
  expect(webhooks[0].evidence.evidence.hooks).toEqual([
    {
      name: 'change-freeze',
      url: `${hookBase}/confirm-promotion`,
      outcome: 'passed',
      status: 200,
      durationMs: expect.any(Number),
      responseExcerpt: '{"confirmed":true}',
    },
  ]);
  const [testJob] = gateSteps(dev.body, 'testJob');
  expect(testJob).toMatchObject({
    status: 'passed',
    reason: expect.stringMatching(
      new RegExp(`^test job ${testJobName(id)} completed`),
    ),
  });
  expect(testJob.evidence.evidence.job).toMatchObject({
    name: testJobName(id),
    namespace: 'development',
    image: 'grafana/k6:0.52.0',
    command: ['k6', 'run', '/scripts/smoke.js'],
    envNames: ['BASE_URL'],
    status: 'complete',
    exitCode: 0,
  });
  expect(testJob.evidence.evidence.job.logTail).toContain(
    'checks.........................: 100.00% ✓ 600 ✗ 0',
  );
  expect(testJob.evidence.evidence.job.logTail).toContain(
    'http_req_duration..............: avg=12ms p(95)=25ms',
  );
  expect(JSON.stringify(dev.body)).not.toContain('hook-secret-4711');
  expect(JSON.stringify(dev.body)).not.toContain(QUERY_SECRET);

  // The Job ran in the stage's namespace, labelled and given the stage URL.
  const job = sim.store.get('jobs', 'development', testJobName(id))!;
  expect(job.metadata.labels).toMatchObject({
    [JOB_ROLE_LABEL]: 'test',
    'progression.backstage.io/promotion-id': id,
  });
  expect(job.spec.template.spec.containers[0].env).toEqual([
    { name: 'BASE_URL', value: stageUrl('development') },
  ]);

  // What the webhooks were sent.
  expect(hookCalls.map(c => c.path)).toEqual([
    `/confirm-promotion?token=${QUERY_SECRET}`,
    '/verified',
  ]);
  expect(hookCalls[0].headers).toMatchObject({
    'content-type': 'application/json',
    authorization: HOOK_SECRET,
  });
  expect(hookCalls[1].headers.authorization).toBeUndefined();
  expect(hookCalls[0].body).toEqual({
    entity: {
      entityRef: 'component:default/payments-api',
      name: 'payments-api',
      namespace: 'default',
      kubernetesId: 'payments-api',
    },
    stage: {
      name: 'development',
      namespace: 'development',
      cluster: 'sim',
      url: stageUrl('development'),
    },
    phase: 'preflight',
    release: {
      id: dev.body.promotion.release.id,
      version: '1.5.0',
      image: NEW_IMAGE,
    },
    promotionId: id,
    results: [],
  });
  const after = hookCalls[1].body;
  expect(after.phase).toBe('verification');
  expect(after.results).toEqual(
    expect.arrayContaining([
      {
        gate: 'webhook',
        phase: 'preflight',
        status: 'passed',
        reason: 'change-freeze answered 200',
      },
      {
        gate: 'smoke',
        phase: 'verification',
        status: 'passed',
        reason: expect.any(String),
      },
    ]),
  );
  for (const r of after.results) {
    expect(Object.keys(r).sort()).toEqual([
      'gate',
      'phase',
      'reason',
      'status',
    ]);
  }

  // Staging: k6 crosses its thresholds, the deploy is rolled back.
  const toStaging = await request(server)
    .post(`${base}/promotions`)
    .send({ stage: 'staging', version: '1.5.0' });
  expect(toStaging.status).toBe(202);
  const staging = await settled(server, toStaging.body.id);
  expect(staging.body.promotion.state).toBe('rolled-back');
  expect(liveImage('staging')).toBe(OLD_IMAGE);
  expect(gateSteps(staging.body, 'webhook').map((s: any) => s.status)).toEqual([
    'passed',
  ]);
  const [failed] = gateSteps(staging.body, 'testJob');
  const reason = `test job ${testJobName(
    toStaging.body.id,
  )} failed with exit code 99: ERRO[0031] thresholds on metrics 'http_req_duration' have been crossed`;
  expect(failed).toMatchObject({ status: 'failed', reason });
  expect(failed.evidence.evidence.job).toMatchObject({
    namespace: 'staging',
    image: 'grafana/k6:0.52.0-failing',
    status: 'failed',
    exitCode: 99,
  });
  expect(failed.evidence.evidence.job.logTail).toContain(
    'http_req_failed................: 3.50%',
  );
  expect(staging.body.promotion.error).toContain(`testJob: ${reason}`);
});
