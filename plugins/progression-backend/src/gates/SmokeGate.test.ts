import { KubeSimulator, installDemo } from '@internal/kube-simulator';
import { ConfigReader } from '@backstage/config';
import http from 'node:http';
import { AddressInfo } from 'node:net';
import { StageConfig } from '../config/readProgressionConfig';
import { readTestConfig } from '../__testUtils__/readTestConfig';
import { SmokeGate } from './SmokeGate';

/*
 * Real HTTP against the simulator's demo workloads (and a local server for
 * the timeout case).
 */
jest.setTimeout(60_000);

let sim: KubeSimulator;
let demo: Awaited<ReturnType<typeof installDemo>>;
let stagingUrl: string;
const gate = new SmokeGate();

function stageWith(checks: object[]): StageConfig {
  return readTestConfig(
    new ConfigReader({
      progression: {
        clusters: [{ name: 'local', url: 'http://127.0.0.1:1' }],
        pipelines: {
          p: {
            stages: [
              {
                name: 'staging',
                cluster: 'local',
                namespace: 'staging',
                url: 'http://x/{{ kubernetesId }}',
                gates: { smoke: { checks } },
              },
            ],
          },
        },
      },
    }),
  ).pipelines.get('p')!.stages[0];
}

const demoChecks = [
  { path: '/healthz', assert: "status = 'ok'" },
  {
    path: '/api/version',
    assert: ['$exists(version)', "namespace = 'staging'"],
  },
  { path: '/api/db-status', assert: 'connected = true' },
  {
    name: 'test action',
    method: 'POST',
    path: '/api/test-action',
    body: { amount: 1 },
    expectStatus: 201,
    assert: 'ok = true',
  },
];

beforeAll(async () => {
  sim = await KubeSimulator.start({ podReadyDelayMs: 20 });
  demo = await installDemo(sim, {
    stages: [{ namespace: 'staging', environment: 'staging', port: 0 }],
    trafficIntervalMs: 60_000,
  });
  stagingUrl = demo.servers[0].url;
  // Wait for the demo pods to be ready.
  for (let i = 0; i < 200; i++) {
    const r = await fetch(`${stagingUrl}/payments-api/healthz`);
    if (r.status === 200) break;
    await new Promise(res => setTimeout(res, 25));
  }
});

afterAll(async () => {
  await demo.stop();
  await sim.stop();
});

it('passes when every check answers as configured, with the evidence of each', async () => {
  const result = await gate.run(
    { stage: stageWith(demoChecks), stageUrl: `${stagingUrl}/payments-api` },
    'verification',
  );
  expect(result).toMatchObject({
    gate: 'smoke',
    phase: 'verification',
    status: 'passed',
    reason: '4 of 4 checks passed',
  });
  const checks = (result.evidence as any).checks;
  expect(checks.map((c: any) => [c.name, c.status, c.passed])).toEqual([
    ['GET /healthz', 200, true],
    ['GET /api/version', 200, true],
    ['GET /api/db-status', 200, true],
    ['test action', 201, true],
  ]);
  expect(checks[3].request).toEqual({
    method: 'POST',
    url: `${stagingUrl}/payments-api/api/test-action`,
  });
  expect(checks[1].bodyExcerpt).toContain('"version":"1.0.0"');
});

it('fails with the status and then the false assertion as the reason', async () => {
  const unhealthy = await gate.run(
    {
      stage: stageWith([{ path: '/healthz' }]),
      stageUrl: `${stagingUrl}/nobody`,
    },
    'verification',
  );
  expect(unhealthy.status).toBe('failed');
  expect(unhealthy.reason).toBe(
    'GET /healthz failed: answered 503, expected 200',
  );

  const wrongVersion = await gate.run(
    {
      stage: stageWith([{ path: '/api/version', assert: "version = '2.0.0'" }]),
      stageUrl: `${stagingUrl}/payments-api`,
    },
    'verification',
  );
  expect(wrongVersion.reason).toBe(
    `GET /api/version failed: assertion 'version = '2.0.0'' is false, expected true`,
  );
});

it('retries a failing check and reports the attempts', async () => {
  const result = await gate.run(
    {
      stage: stageWith([{ path: '/healthz', retries: 2, retryDelay: '10ms' }]),
      stageUrl: `${stagingUrl}/nobody`,
    },
    'verification',
  );
  expect((result.evidence as any).checks[0]).toMatchObject({
    attempts: 3,
    passed: false,
  });
});

it('stops a runaway assertion by its time and depth limits', async () => {
  const result = await gate.run(
    {
      stage: stageWith([
        {
          path: '/api/version',
          assert: '($f := function($x) { $f($x) }; $f(1))',
        },
      ]),
      stageUrl: `${stagingUrl}/payments-api`,
    },
    'verification',
  );
  expect(result.status).toBe('failed');
  expect(result.reason).toMatch(/could not be evaluated/);
});

it('fails closed when nothing answers, or too late', async () => {
  const closed = http.createServer();
  await new Promise<void>(r => closed.listen(0, '127.0.0.1', () => r()));
  const closedPort = (closed.address() as AddressInfo).port;
  await new Promise(r => closed.close(r));
  const refused = await gate.run(
    {
      stage: stageWith([{ path: '/healthz' }]),
      stageUrl: `http://127.0.0.1:${closedPort}/x`,
    },
    'verification',
  );
  expect(refused.status).toBe('failed');
  expect(refused.reason).toMatch(
    /GET \/healthz failed: request failed: .*ECONNREFUSED/,
  );

  const slow = http.createServer((_req, res) =>
    setTimeout(() => res.end('{}'), 2000),
  );
  await new Promise<void>(r => slow.listen(0, '127.0.0.1', () => r()));
  try {
    const url = `http://127.0.0.1:${(slow.address() as AddressInfo).port}`;
    const late = await gate.run(
      {
        stage: stageWith([{ path: '/healthz', timeout: '100ms' }]),
        stageUrl: url,
      },
      'verification',
    );
    expect(late.reason).toBe('GET /healthz failed: no answer within 100 ms');
  } finally {
    slow.closeAllConnections();
    slow.close();
  }
});

it('is an error, not a pass, for a stage without a URL', async () => {
  const result = await gate.run(
    { stage: stageWith([{ path: '/healthz' }]) },
    'verification',
  );
  expect(result.status).toBe('error');
});
