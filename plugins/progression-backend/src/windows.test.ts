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
import { databaseServiceFactory } from '@backstage/backend-defaults/database';
import { schedulerServiceFactory } from '@backstage/backend-defaults/scheduler';
import { KubeSimulator, installDemo } from '@internal/kube-simulator';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { AddressInfo } from 'node:net';
import request from 'supertest';
import { progressionPlugin } from './plugin';
import {
  TestPrometheus,
  prometheusAvailable,
  startPrometheus,
  waitForSamples,
} from './__testUtils__/startPrometheus';
import { component } from './__testUtils__/entities';

/*
 * Promotion windows and freezes through the REST API: the plugin in a test
 * backend, the cluster simulator, and for alert freezes a real Prometheus
 * evaluating a real alerting rule. Windows are made from the clock at the
 * start of a test (a deny window that opened a moment ago and lasts a few
 * seconds), so nothing here waits for a minute to turn.
 */
jest.setTimeout(180_000);

let sim: KubeSimulator;
let demo: Awaited<ReturnType<typeof installDemo>>;

const entity = component('payments-api', { owner: 'team-payments' });
const base = '/api/progression/v1/entities/component/default/payments-api';
const liveImage = (ns: string) =>
  sim.store.get('deployments', ns, 'payments-api')!.spec.template.spec
    .containers[0].image;

/** A six-field cron schedule that fires at `at` (UTC), once a year. */
const cronAt = (at: Date) =>
  `${at.getUTCSeconds()} ${at.getUTCMinutes()} ${at.getUTCHours()} ${at.getUTCDate()} ${
    at.getUTCMonth() + 1
  } *`;
/** A deny window that opened a second ago and stays for `seconds`. */
const denyFor = (seconds: number, name = 'release freeze') => ({
  kind: 'deny',
  name,
  schedule: cronAt(new Date(Date.now() - 1000)),
  duration: `${seconds}s`,
});
/** A deny window that never ends: it opens again every second for an hour. */
const alwaysDenied = {
  kind: 'deny',
  name: 'change freeze',
  schedule: '* * * * * *',
  duration: '1h',
};

beforeAll(async () => {
  sim = await KubeSimulator.start({ podReadyDelayMs: 20 });
  demo = await installDemo(sim, { anyPorts: true, trafficIntervalMs: 60_000 });
});

afterAll(async () => {
  await demo.stop();
  await sim.stop();
});

function stages(overrides: Record<string, object>) {
  const url = (ns: string) =>
    `${demo.servers.find(s => s.namespace === ns)!.url}/{{ kubernetesId }}`;
  const smoke = { checks: [{ path: '/healthz', assert: "status = 'ok'" }] };
  return ['development', 'staging', 'production'].map(name => ({
    name,
    cluster: 'sim',
    namespace: name,
    url: url(name),
    gates: { smoke },
    ...(name === 'development' && { autoPromote: true }),
    ...overrides[name],
  }));
}

async function backend(
  pipeline: object,
  extra: { prometheus?: object } = {},
  databaseDirectory?: string,
) {
  const auditEvents: Array<{ eventId: string; outcome: string; meta?: any }> =
    [];
  const auditor = createServiceFactory({
    service: coreServices.auditor,
    deps: {},
    factory: () => ({
      createEvent: async ({ eventId, meta, severityLevel }) => ({
        success: async () => {
          auditEvents.push({
            eventId,
            outcome: 'success',
            meta: { ...meta, severityLevel },
          });
        },
        fail: async () => {
          auditEvents.push({ eventId, outcome: 'failure', meta });
        },
      }),
    }),
  });
  // Everyone may do everything, except that Sam may not override windows.
  const permissions = createServiceFactory({
    service: coreServices.permissions,
    deps: {},
    factory: () => ({
      authorize: async (requests: any[], options: any) =>
        requests.map(r => ({
          result:
            r.permission.name === 'progression.window.override' &&
            options?.credentials?.principal?.userEntityRef ===
              'user:default/sam'
              ? AuthorizeResult.DENY
              : AuthorizeResult.ALLOW,
        })),
      authorizeConditional: async (requests: any[]) =>
        requests.map(() => ({ result: AuthorizeResult.ALLOW })),
    }),
  });
  const testBackend = await startTestBackend({
    features: [
      progressionPlugin,
      catalogServiceMock.factory({ entities: [entity] }),
      // A SQLite file that outlives the backend, for a restart, and
      // Backstage's own scheduler, which runs the worker every 5 s as in
      // production (the test backend's mock scheduler runs it once, at
      // start-up); else the test backend's in-memory database.
      ...(databaseDirectory
        ? [databaseServiceFactory, schedulerServiceFactory]
        : []),
      mockServices.rootConfig.factory({
        data: {
          ...(databaseDirectory && {
            backend: {
              database: {
                client: 'better-sqlite3',
                connection: { directory: databaseDirectory },
              },
            },
          }),
          progression: {
            clusters: [
              {
                name: 'sim',
                url: sim.url,
                serviceAccountToken: sim.token,
                skipTLSVerify: true,
              },
            ],
            pipelines: { standard: pipeline },
            notifications: { enabled: false },
            ...extra,
          },
        },
      }),
      permissions as any,
      auditor,
    ],
  });
  return {
    server: testBackend.server,
    auditEvents,
    stop: () => testBackend.stop(),
  };
}

async function waitForState(
  server: any,
  id: string,
  states: string[],
  timeoutMs = 60_000,
) {
  const deadline = Date.now() + timeoutMs;
  let last: any;
  while (Date.now() < deadline) {
    const res = await request(server).get(
      `/api/progression/v1/promotions/${id}`,
    );
    last = res.body;
    if (states.includes(res.body.promotion?.state)) return res.body;
    await new Promise(r => setTimeout(r, 100));
  }
  throw new Error(
    `promotion ${id} did not reach ${states.join(' or ')}: ${JSON.stringify(
      last?.promotion,
    )}`,
  );
}

async function register(server: any, version: string) {
  const res = await request(server)
    .post(`${base}/releases`)
    .send({ version, image: `registry.local/payments-api:${version}` });
  expect(res.status).toBe(201);
  const dev = (
    await request(server).get(`${base}/promotions?stage=development`)
  ).body.items.find((p: any) => p.release.version === version);
  await waitForState(server, dev.id, ['succeeded']);
}

async function promote(server: any, stage: string, version: string) {
  const res = await request(server)
    .post(`${base}/promotions`)
    .send({ stage, version });
  expect(res.status).toBe(202);
  return res.body.id as string;
}

const windowOf = async (server: any, stage: string) =>
  (await request(server).get(`${base}/environments`)).body.pipeline.stages.find(
    (s: any) => s.name === stage,
  ).window;

it('holds a promotion in a deny window, says why and until when, and lets it go when the window ends; break-glass overrides are audited', async () => {
  const { server, auditEvents } = await backend({
    stages: stages({
      staging: { windows: [denyFor(20)] },
      production: { windows: [alwaysDenied] },
    }),
  });
  await register(server, '3.0.0');

  // The card and the promote dialog know before the click.
  const staging = await windowOf(server, 'staging');
  expect(staging).toMatchObject({
    open: false,
    source: 'deny-window',
    rollbacksWhenClosed: 'allow',
  });
  expect(staging.reason).toContain("deny window 'release freeze' until");
  expect(Date.parse(staging.nextOpening)).toBeGreaterThan(Date.now());
  // The same reason in pieces, for a reader to show the times in their zone.
  expect(staging.reasonParts).toContainEqual({ at: staging.nextOpening });
  expect(
    staging.reasonParts
      .map((p: { text?: string; at?: string }) => p.text ?? p.at)
      .join(''),
  ).toBe(staging.reason);
  expect(await windowOf(server, 'development')).toBeUndefined();

  const id = await promote(server, 'staging', '3.0.0');
  const waiting = await waitForState(server, id, ['waiting']);
  const closed = waiting.steps.find((s: any) => s.name === 'closed');
  expect(closed).toMatchObject({
    kind: 'window',
    toState: 'waiting',
    evidence: {
      open: false,
      source: 'deny-window',
      nextOpening: staging.nextOpening,
    },
  });
  expect(closed.reason).toContain('staging is closed');
  // One at a time: the waiting promotion holds the stage.
  const busy = await request(server)
    .post(`${base}/promotions`)
    .send({ stage: 'staging', version: '3.0.0' });
  expect(busy.status).toBe(409);
  // The window ends: it goes on by itself, nobody clicks.
  const done = await waitForState(server, id, ['succeeded', 'failed']);
  expect(done.promotion.state).toBe('succeeded');
  expect(done.steps.map((s: any) => s.name)).toEqual(
    expect.arrayContaining(['closed', 'opened', 'smoke']),
  );
  expect(liveImage('staging')).toBe('registry.local/payments-api:3.0.0');

  // Production never opens: a waiting promotion can be cancelled.
  const prod = await promote(server, 'production', '3.0.0');
  const held = await waitForState(server, prod, ['waiting']);
  expect((await windowOf(server, 'production')).nextOpening).toBeUndefined();
  expect(held.promotion.state).toBe('waiting');
  const cancelled = await request(server).post(
    `/api/progression/v1/promotions/${prod}/cancel`,
  );
  expect(cancelled.status).toBe(202);
  expect(cancelled.body.state).toBe('cancelled');

  // Break-glass: a reason and its own permission.
  const again = await promote(server, 'production', '3.0.0');
  await waitForState(server, again, ['waiting']);
  const override = (user: string, body: object) =>
    request(server)
      .post(`/api/progression/v1/promotions/${again}/override-window`)
      .set('Authorization', mockCredentials.user.header(user))
      .send(body);
  expect((await override('user:default/olivia', {})).status).toBe(400);
  expect(
    (await override('user:default/olivia', { reason: '   ' })).status,
  ).toBe(400);
  const denied = await override('user:default/sam', { reason: 'hotfix' });
  expect(denied.status).toBe(403);
  expect(denied.body.error.message).toContain('progression.window.override');
  expect(liveImage('production')).not.toBe('registry.local/payments-api:3.0.0');
  const ok = await override('user:default/olivia', {
    reason: 'INC-42: the fix for the outage',
  });
  expect(ok.status).toBe(202);
  expect(ok.body.state).toBe('preflight');
  const overridden = await waitForState(server, again, ['succeeded', 'failed']);
  expect(overridden.promotion.state).toBe('succeeded');
  expect(liveImage('production')).toBe('registry.local/payments-api:3.0.0');
  expect(
    overridden.steps.find((s: any) => s.name === 'override'),
  ).toMatchObject({
    kind: 'window',
    actor: 'user:default/olivia',
    fromState: 'waiting',
    toState: 'preflight',
    evidence: {
      by: 'user:default/olivia',
      reason: 'INC-42: the fix for the outage',
      window: { open: false, source: 'deny-window' },
    },
  });
  expect(
    auditEvents.filter(e => e.eventId === 'promotion-window-override'),
  ).toEqual([
    expect.objectContaining({ outcome: 'failure' }),
    expect.objectContaining({
      outcome: 'success',
      meta: expect.objectContaining({
        promotionId: again,
        stage: 'production',
        reason: 'INC-42: the fix for the outage',
        severityLevel: 'high',
      }),
    }),
  ]);
  // Nothing waits any more: nothing to override.
  const nothing = await override('user:default/olivia', { reason: 'again' });
  expect(nothing.status).toBe(409);
  expect(nothing.body.error.message).toContain('not waiting');

  // A rollback enters the closed stage (rollbacksWhenClosed: allow).
  await register(server, '3.1.0');
  await waitForState(server, await promote(server, 'staging', '3.1.0'), [
    'succeeded',
  ]);
  const next = await promote(server, 'production', '3.1.0');
  await waitForState(server, next, ['waiting']);
  await request(server)
    .post(`/api/progression/v1/promotions/${next}/override-window`)
    .set('Authorization', mockCredentials.user.header('user:default/olivia'))
    .send({ reason: 'INC-43' })
    .expect(202);
  await waitForState(server, next, ['succeeded']);
  expect(liveImage('production')).toBe('registry.local/payments-api:3.1.0');
  const rollback = await request(server)
    .post(`${base}/rollbacks`)
    .send({ stage: 'production', toVersion: '3.0.0' });
  expect(rollback.status).toBe(202);
  const back = await waitForState(server, rollback.body.id, [
    'succeeded',
    'failed',
    'waiting',
  ]);
  expect(back.promotion.state).toBe('succeeded');
  expect(liveImage('production')).toBe('registry.local/payments-api:3.0.0');
});

it('a shutdown while a promotion waits is not an outcome: after the restart it still waits, then goes on when the window ends', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'progression-windows-'));
  try {
    const pipeline = {
      stages: stages({ staging: { windows: [denyFor(30)] } }),
    };
    const first = await backend(pipeline, {}, dir);
    await register(first.server, '4.0.0');
    const before = liveImage('staging');
    const id = await promote(first.server, 'staging', '4.0.0');
    await waitForState(first.server, id, ['waiting']);
    // The backend's shutdown, as on SIGTERM, while the promotion waits.
    await first.stop();

    const second = await backend(pipeline, {}, dir);
    const after = (
      await request(second.server).get(`/api/progression/v1/promotions/${id}`)
    ).body;
    expect(after.promotion.state).toBe('waiting');
    expect(after.steps.map((s: any) => s.toState)).not.toContain('failed');
    expect(liveImage('staging')).toBe(before);
    // The window ends: the restarted backend lets it go, nobody clicks.
    const done = await waitForState(second.server, id, ['succeeded', 'failed']);
    expect(done.promotion.state).toBe('succeeded');
    expect(
      done.steps.filter((s: any) => s.name === 'closed').length,
    ).toBeGreaterThanOrEqual(1);
    expect(done.steps.map((s: any) => s.name)).toContain('opened');
    expect(liveImage('staging')).toBe('registry.local/payments-api:4.0.0');
    await second.stop();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

it('refuses an on-demand rollback into a closed stage where rollbacksWhenClosed is deny', async () => {
  const { server } = await backend({
    stages: stages({
      production: { windows: [alwaysDenied], rollbacksWhenClosed: 'deny' },
    }),
  });
  expect((await windowOf(server, 'production')).rollbacksWhenClosed).toBe(
    'deny',
  );
  const res = await request(server)
    .post(`${base}/rollbacks`)
    .send({ stage: 'production', toVersion: '1.0.0' });
  expect(res.status).toBe(409);
  expect(res.body.error.message).toContain(
    'takes no rollbacks while closed (rollbacksWhenClosed: deny)',
  );
});

const describeWithPrometheus = prometheusAvailable() ? describe : describe.skip;

describeWithPrometheus('alert freezes', () => {
  let prometheus: TestPrometheus;
  let firing = 0;
  let metrics: http.Server;

  beforeAll(async () => {
    // A gauge the test sets, and an alerting rule on it.
    metrics = http.createServer((_req, res) => {
      res.setHeader('Content-Type', 'text/plain; version=0.0.4');
      res.end(`# TYPE test_trouble gauge\ntest_trouble ${firing}\n`);
    });
    await new Promise<void>(r => metrics.listen(0, '127.0.0.1', r));
    const { port } = metrics.address() as AddressInfo;
    prometheus = await startPrometheus([`127.0.0.1:${port}`], {
      rules: [
        'groups:',
        '  - name: test',
        '    rules:',
        '      - alert: TestTrouble',
        '        expr: test_trouble > 0',
        '        labels:',
        '          namespace: staging',
      ].join('\n'),
    });
  });

  afterAll(async () => {
    await prometheus?.close();
    await new Promise(r => metrics?.close(r));
  });

  it('keeps a stage closed whose freeze names an alert Prometheus has no rule for: a misspelt name would never freeze it', async () => {
    firing = 0;
    const config = (alerts: string[]) => ({
      stages: stages({ staging: { freezeOn: { alerts } } }),
    });
    const prometheusConfig = {
      prometheus: { url: prometheus.url, timeout: '2s' },
    };
    const misspelt = await backend(config(['TestTroubel']), prometheusConfig);
    const closed = await windowOf(misspelt.server, 'staging');
    expect(closed).toMatchObject({
      open: false,
      source: 'prometheus-unavailable',
    });
    expect(closed.reason).toBe(
      'closed: cannot tell whether TestTroubel fire: Prometheus has no alerting rule named TestTroubel',
    );
    await register(misspelt.server, '2.5.0');
    const id = await promote(misspelt.server, 'staging', '2.5.0');
    const waiting = await waitForState(misspelt.server, id, ['waiting']);
    expect(waiting.steps.at(-1).reason).toContain(
      'no alerting rule named TestTroubel',
    );
    await request(misspelt.server)
      .post(`/api/progression/v1/promotions/${id}/cancel`)
      .expect(202);

    // Spelt right and not firing: open.
    const right = await backend(config(['TestTrouble']), prometheusConfig);
    expect(await windowOf(right.server, 'staging')).toMatchObject({
      open: true,
    });
  });

  it('freezes staging while the alert fires and lets the promotion go when it resolves; an unreachable Prometheus keeps it closed', async () => {
    const { server } = await backend(
      {
        stages: stages({
          staging: {
            freezeOn: {
              alerts: ['{alertname="TestTrouble",namespace="staging"}'],
            },
          },
        }),
      },
      { prometheus: { url: prometheus.url, timeout: '2s' } },
    );
    await register(server, '2.0.0');
    firing = 1;
    await waitForSamples(prometheus.url, 'ALERTS{alertstate="firing"}');
    const closed = await windowOf(server, 'staging');
    expect(closed).toMatchObject({ open: false, source: 'alert' });
    expect(closed.reason).toMatch(
      /^frozen while TestTrouble \(.*namespace=staging.*\) fires/,
    );
    expect(closed.nextOpening).toBeUndefined();

    const id = await promote(server, 'staging', '2.0.0');
    const waiting = await waitForState(server, id, ['waiting']);
    expect(waiting.steps.at(-1).reason).toContain('TestTrouble');
    expect(liveImage('staging')).not.toBe('registry.local/payments-api:2.0.0');

    firing = 0;
    const done = await waitForState(server, id, ['succeeded', 'failed']);
    expect(done.promotion.state).toBe('succeeded');
    expect(liveImage('staging')).toBe('registry.local/payments-api:2.0.0');
    expect((await windowOf(server, 'staging')).open).toBe(true);

    // Whether the alert fires cannot be told: closed, never deployed.
    await register(server, '2.1.0');
    await prometheus.stop();
    try {
      const blind = await promote(server, 'staging', '2.1.0');
      const held = await waitForState(server, blind, ['waiting']);
      expect(held.steps.at(-1)).toMatchObject({
        kind: 'window',
        evidence: { source: 'prometheus-unavailable' },
      });
      expect(held.steps.at(-1).reason).toContain('cannot tell whether');
      expect((await windowOf(server, 'staging')).source).toBe(
        'prometheus-unavailable',
      );
      // Still waiting a while later, nothing deployed.
      await new Promise(r => setTimeout(r, 6000));
      expect(
        (await request(server).get(`/api/progression/v1/promotions/${blind}`))
          .body.promotion.state,
      ).toBe('waiting');
      expect(liveImage('staging')).toBe('registry.local/payments-api:2.0.0');
      await request(server)
        .post(`/api/progression/v1/promotions/${blind}/cancel`)
        .expect(202);
    } finally {
      await prometheus.start();
    }
  });
});
