import { KubeSimulator, installDemo } from '@internal/kube-simulator';
import { ConfigReader } from '@backstage/config';
import http from 'node:http';
import { AddressInfo } from 'node:net';
import {
  ProgressionConfigError,
  StageConfig,
} from '../config/readProgressionConfig';
import { readTestConfig } from '../__testUtils__/readTestConfig';
import {
  LatencyHistogram,
  LoadGate,
  LoadGateEvidence,
  percentile,
} from './LoadGate';

/*
 * Real HTTP against the simulator's demo workloads: staging runs the first
 * versions; in production payments-api runs a `slow` image (600 ms more per
 * answer) and web-shop an `errors` image (30% 500s).
 */
jest.setTimeout(60_000);

let sim: KubeSimulator;
let demo: Awaited<ReturnType<typeof installDemo>>;
let stagingUrl: string;
let productionUrl: string;
const gate = new LoadGate();

function readStage(load: any): StageConfig {
  return readTestConfig(
    new ConfigReader({
      progression: {
        clusters: [{ name: 'local', url: 'http://127.0.0.1:1' }],
        pipelines: {
          standard: {
            stages: [
              { name: 'dev', cluster: 'local', namespace: 'dev' },
              {
                name: 'staging',
                cluster: 'local',
                namespace: 'staging',
                url: 'http://x/{{ kubernetesId }}',
                gates: { load },
              },
            ],
          },
        },
      },
    }),
  ).pipelines.get('standard')!.stages[1];
}

/** Sets the image of a demo Deployment and waits until only its pods answer. */
async function setImage(namespace: string, name: string, image: string) {
  const deployment = structuredClone(
    sim.store.get('deployments', namespace, name)!,
  );
  deployment.spec.template.spec.containers[0].image = image;
  sim.apply(deployment);
  for (let i = 0; i < 400; i++) {
    const ready = sim.store.list(
      'pods',
      namespace,
      p =>
        p.metadata.labels?.app === name &&
        (p.status?.conditions ?? []).some(
          (c: any) => c.type === 'Ready' && c.status === 'True',
        ),
    );
    if (
      ready.length > 0 &&
      ready.every(p => p.spec.containers[0].image === image)
    ) {
      return;
    }
    await new Promise(r => setTimeout(r, 25));
  }
  throw new Error(`${namespace}/${name} did not roll out ${image}`);
}

beforeAll(async () => {
  sim = await KubeSimulator.start({ podReadyDelayMs: 20 });
  demo = await installDemo(sim, {
    anyPorts: true,
    stages: [
      { namespace: 'staging', environment: 'staging', port: 0 },
      { namespace: 'production', environment: 'prod', port: 0 },
    ],
    trafficIntervalMs: 60_000,
  });
  stagingUrl = demo.servers.find(s => s.namespace === 'staging')!.url;
  productionUrl = demo.servers.find(s => s.namespace === 'production')!.url;
  await setImage(
    'staging',
    'payments-api',
    'registry.local/payments-api:1.0.0',
  );
  await setImage(
    'production',
    'payments-api',
    'registry.local/payments-api:2.0.0-slow',
  );
  await setImage(
    'production',
    'web-shop',
    'registry.local/web-shop:2.4.0-errors',
  );
});

afterAll(async () => {
  await demo?.stop();
  await sim?.stop();
});

describe('LoadGate', () => {
  it('applies after the deploy of a stage with a load test only', () => {
    const stage = readStage({ duration: '2s', thresholds: { p95: '300ms' } });
    expect(gate.appliesTo(stage, 'verification')).toBe(true);
    expect(gate.appliesTo(stage, 'rollback')).toBe(false);
    expect(gate.appliesTo(stage, 'preflight')).toBe(false);
    const { load: _, ...others } = stage.gates;
    expect(gate.appliesTo({ ...stage, gates: others }, 'verification')).toBe(
      false,
    );
  });

  it('passes a healthy release, with the measured figures as evidence', async () => {
    const result = await gate.run(
      {
        stage: readStage({
          path: '/healthz',
          connections: 4,
          duration: '2s',
          thresholds: { p95: '300ms', p99: '500ms', errorRate: 0.01 },
        }),
        stageUrl: `${stagingUrl}/payments-api`,
      },
      'verification',
    );
    const evidence = result.evidence as LoadGateEvidence;
    expect(result).toMatchObject({ gate: 'load', phase: 'verification' });
    expect(result.status).toBe('passed');
    expect(result.reason).toMatch(
      /^p95 [\d.]+ ms ≤ 300 ms, p99 [\d.]+ ms ≤ 500 ms, error rate 0\.0% ≤ 1\.0% \([\d,]+ requests at [\d.,]+ req\/s\)$/,
    );
    expect(evidence.target).toEqual({
      url: `${stagingUrl}/payments-api/healthz`,
      method: 'GET',
      connections: 4,
      durationMs: 2000,
    });
    expect(evidence.measured!.responses).toBeGreaterThanOrEqual(10);
    expect(evidence.measured).toMatchObject({
      errors: 0,
      non2xx: 0,
      errorRate: 0,
    });
    expect(Object.keys(evidence.measured!.statusCodes)).toEqual(['200']);
    expect(evidence.measured!.latencyMs.p95).toBeLessThanOrEqual(300);
    expect(evidence.thresholds).toEqual({
      p95Ms: 300,
      p99Ms: 500,
      errorRate: 0.01,
    });
    expect(evidence.violations).toEqual([]);
    expect(JSON.parse(JSON.stringify(evidence))).toEqual(evidence);
    expect(Date.parse(result.finishedAt)).toBeGreaterThanOrEqual(
      Date.parse(result.startedAt),
    );
  });

  it('fails a slow release on p95, naming the threshold missed', async () => {
    const result = await gate.run(
      {
        stage: readStage({
          path: '/healthz',
          connections: 10,
          requests: 20,
          duration: '10s',
          thresholds: { p95: '300ms', errorRate: 0.01 },
        }),
        stageUrl: `${productionUrl}/payments-api`,
      },
      'verification',
    );
    const evidence = result.evidence as LoadGateEvidence;
    expect(result.status).toBe('failed');
    expect(result.reason).toMatch(
      /^p95 \d+ ms > 300 ms \(20 requests at [\d.,]+ req\/s\)$/,
    );
    expect(evidence.measured!.latencyMs.p95).toBeGreaterThan(600);
    expect(evidence.measured!.responses).toBe(20);
    expect(evidence.violations).toEqual([
      expect.stringMatching(/^p95 \d+ ms > 300 ms$/),
    ]);
  });

  it('fails on the error rate and the throughput, both named', async () => {
    const result = await gate.run(
      {
        stage: readStage({
          path: '/api/version',
          connections: 2,
          requests: 200,
          thresholds: { errorRate: 0.05, minThroughput: 1_000_000 },
        }),
        stageUrl: `${productionUrl}/web-shop`,
      },
      'verification',
    );
    const evidence = result.evidence as LoadGateEvidence;
    expect(result.status).toBe('failed');
    expect(evidence.violations).toEqual([
      expect.stringMatching(/^error rate [\d.]+% > 5\.0%$/),
      expect.stringMatching(/^throughput [\d,]+ req\/s < 1,000,000 req\/s$/),
    ]);
    expect(evidence.measured!.requests).toBe(200);
    expect(evidence.measured!.non2xx).toBeGreaterThan(10);
    expect(evidence.measured!.statusCodes['500']).toBe(
      evidence.measured!.non2xx,
    );
    expect(evidence.measured!.errorRate).toBeGreaterThan(0.05);
  });

  it('sends the configured method, headers and body at a set rate', async () => {
    const result = await gate.run(
      {
        stage: readStage({
          method: 'post',
          path: '/api/test-action',
          headers: { 'X-Load-Test': 'yes' },
          body: { amount: 1 },
          connections: 2,
          requests: 20,
          rate: 40,
          thresholds: { errorRate: 0 },
        }),
        stageUrl: `${stagingUrl}/payments-api`,
      },
      'verification',
    );
    const evidence = result.evidence as LoadGateEvidence;
    expect(result.status).toBe('passed');
    expect(evidence.target).toMatchObject({ method: 'POST', rate: 40 });
    expect(evidence.measured!.statusCodes).toEqual({ '201': 20 });
  });

  it('answers HEAD requests without waiting for a body', async () => {
    const result = await gate.run(
      {
        stage: readStage({
          method: 'HEAD',
          path: '/healthz',
          connections: 2,
          requests: 20,
          timeout: '2s',
          thresholds: { p95: '1s' },
        }),
        stageUrl: `${stagingUrl}/payments-api`,
      },
      'verification',
    );
    const evidence = result.evidence as LoadGateEvidence;
    expect(evidence.measured!.timeouts).toBe(0);
    expect(evidence.measured!.responses).toBe(20);
  });

  it('is an error, not a pass, when nothing answers', async () => {
    const closed = http.createServer();
    await new Promise<void>(r => closed.listen(0, '127.0.0.1', () => r()));
    const port = (closed.address() as AddressInfo).port;
    await new Promise(r => closed.close(r));
    const result = await gate.run(
      {
        stage: readStage({ duration: '3s', thresholds: { p95: '300ms' } }),
        stageUrl: `http://127.0.0.1:${port}/payments-api`,
      },
      'verification',
    );
    const evidence = result.evidence as LoadGateEvidence;
    expect(result.status).toBe('error');
    expect(result.reason).toMatch(
      new RegExp(
        `^no responses from http://127\\.0\\.0\\.1:${port}/payments-api/: .*ECONNREFUSED.* \\([\\d,]+ requests failed\\)$`,
      ),
    );
    expect(evidence.measured).toMatchObject({ responses: 0 });
    expect(evidence.measured!.errors).toBeGreaterThan(0);
  });

  it('is an error for a stage without a URL', async () => {
    const result = await gate.run(
      {
        stage: readStage({ duration: '2s', thresholds: { p95: '300ms' } }),
      },
      'verification',
    );
    expect(result.status).toBe('error');
    expect(result.reason).toBe('stage staging has no URL to load-test');
  });

  it('is inconclusive with fewer than 10 responses', async () => {
    const result = await gate.run(
      {
        stage: readStage({
          path: '/healthz',
          connections: 2,
          requests: 5,
          thresholds: { p95: '300ms' },
        }),
        stageUrl: `${stagingUrl}/payments-api`,
      },
      'verification',
    );
    expect(result.status).toBe('inconclusive');
    expect(result.reason).toMatch(/^only 5 responses in [\d.]+ s, too few/);
  });

  it('stops when the signal aborts, and does not pass', async () => {
    const controller = new AbortController();
    const stopping = setTimeout(() => controller.abort(), 500);
    const result = await gate.run(
      {
        stage: readStage({
          path: '/healthz',
          connections: 2,
          duration: '5m',
          thresholds: { p95: '300ms' },
        }),
        stageUrl: `${stagingUrl}/payments-api`,
        signal: controller.signal,
      },
      'verification',
    );
    clearTimeout(stopping);
    expect(result.status).toBe('inconclusive');
    expect(result.reason).toMatch(/^the load test was cancelled after/);
    expect((result.evidence as LoadGateEvidence).cancelled).toBe(true);
  });
});

describe('readLoadGateConfig', () => {
  const base = 'progression.pipelines.standard.stages[1].gates.load';
  const problem = (load: unknown) => {
    try {
      readStage(load);
    } catch (e) {
      expect(e).toBeInstanceOf(ProgressionConfigError);
      return (e as ProgressionConfigError).key;
    }
    throw new Error('no error');
  };

  it('reads the defaults', () => {
    expect(
      readStage({ requests: 100, thresholds: { p95: '300ms' } }).gates.load,
    ).toEqual({
      path: '/',
      method: 'GET',
      body: undefined,
      headers: {},
      connections: 10,
      durationMs: undefined,
      requests: 100,
      rate: undefined,
      timeoutMs: 10_000,
      thresholds: { p95Ms: 300 },
    });
    expect(readStage(undefined).gates.load).toBeUndefined();
  });

  it('reads every key', () => {
    expect(
      readStage({
        path: '/api/test-action?x=1',
        method: 'put',
        body: { a: 1 },
        headers: { Authorization: 'Bearer t', 'X-N': 5 },
        connections: 200,
        duration: { minutes: 5 },
        requests: 1_000_000,
        rate: 250,
        timeout: '2s',
        thresholds: {
          p95: '300ms',
          p99: 'PT1S',
          errorRate: 0,
          minThroughput: 12.5,
        },
      }).gates.load,
    ).toEqual({
      path: '/api/test-action?x=1',
      method: 'PUT',
      body: '{"a":1}',
      headers: { Authorization: 'Bearer t', 'X-N': '5' },
      connections: 200,
      durationMs: 300_000,
      requests: 1_000_000,
      rate: 250,
      timeoutMs: 2000,
      thresholds: {
        p95Ms: 300,
        p99Ms: 1000,
        errorRate: 0,
        minThroughput: 12.5,
      },
    });
  });

  it.each([
    [{ path: 'healthz' }, 'path'],
    [{ path: '/a b' }, 'path'],
    [{ method: 'OPTIONS' }, 'method'],
    [{ body: 5 }, 'body'],
    [{ headers: { 'bad name': 'x' } }, 'headers.bad name'],
    [{ connections: 0 }, 'connections'],
    [{ connections: 201 }, 'connections'],
    [{ connections: 2.5 }, 'connections'],
    [{ duration: '6m' }, 'duration'],
    [{ duration: 'soon' }, 'duration'],
    [{ duration: '0s' }, 'duration'],
    [{ requests: 0 }, 'requests'],
    [{ requests: 1_000_001 }, 'requests'],
    [{ rate: 0 }, 'rate'],
    [{ rate: 'fast' }, 'rate'],
    [{ timeout: 'never' }, 'timeout'],
    [{ thresholds: { p95: 'quick' } }, 'thresholds.p95'],
    [{ thresholds: { p99: '0ms' } }, 'thresholds.p99'],
    [{ thresholds: { errorRate: 1.5 } }, 'thresholds.errorRate'],
    [{ thresholds: { errorRate: '1%' } }, 'thresholds.errorRate'],
    [{ thresholds: { minThroughput: 0 } }, 'thresholds.minThroughput'],
    [{ thresholds: {} }, 'thresholds'],
    [{ thresholds: undefined }, 'thresholds'],
  ])('names the bad key for %j', (change, key) => {
    expect(
      problem({ duration: '2s', thresholds: { p95: '300ms' }, ...change }),
    ).toBe(`${base}.${key}`);
  });

  it('needs a duration or a number of requests', () => {
    expect(problem({ thresholds: { p95: '300ms' } })).toBe(`${base}.duration`);
  });

  it('says what is wrong in the message', () => {
    expect(() =>
      readStage({ duration: '2s', thresholds: { p95: 'quick' } }),
    ).toThrow(
      `Invalid Progression configuration at '${base}.thresholds.p95': not a duration`,
    );
    expect(() => readStage({ duration: '2s', thresholds: {} })).toThrow(
      /at least one threshold: p95, p99, errorRate or minThroughput/,
    );
  });
});

describe('percentile', () => {
  it('takes the nearest rank', () => {
    const values = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(values, 50)).toBe(50);
    expect(percentile(values, 95)).toBe(95);
    expect(percentile(values, 99)).toBe(99);
    expect(percentile([7], 95)).toBe(7);
    expect(percentile([], 95)).toBeNaN();
  });
});

describe('LatencyHistogram', () => {
  // A seeded generator, so that a failure can be reproduced.
  const random = (seed: number) => {
    let state = seed;
    return () => {
      state = (state + 0x6d2b79f5) | 0;
      let t = Math.imul(state ^ (state >>> 15), 1 | state);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  };
  const PERCENTILES = [0, 1, 25, 50, 75, 90, 95, 99, 99.9, 99.99, 100];

  it.each([
    // Latencies from 10 µs to 5 minutes, evenly spread over the magnitudes.
    ['log-uniform', (r: () => number) => 0.01 * 3e7 ** r()],
    // A fast service with a slow tail.
    [
      'bimodal',
      (r: () => number) => (r() < 0.97 ? 0.2 + r() * 2 : 600 + r() * 400),
    ],
    // Close values, where a coarse bucket would show.
    ['narrow', (r: () => number) => 100 + r()],
  ])('matches an exact sort within 1%, never below it (%s)', (_name, draw) => {
    const r = random(42);
    const values = Array.from({ length: 100_000 }, () => draw(r));
    const histogram = new LatencyHistogram();
    values.forEach(v => histogram.record(v));
    const sorted = Float64Array.from(values).sort();
    expect(histogram.count).toBe(values.length);
    expect(histogram.min).toBe(sorted[0]);
    expect(histogram.max).toBe(sorted[sorted.length - 1]);
    for (const p of PERCENTILES) {
      const exact = percentile(sorted, p);
      const estimate = histogram.valueAt(p);
      expect(estimate).toBeGreaterThanOrEqual(exact);
      expect(estimate).toBeLessThanOrEqual(exact * 1.01);
    }
  });

  it('keeps the same counters however many values it records', () => {
    const histogram = new LatencyHistogram();
    const buckets = histogram.buckets;
    expect(buckets).toBeLessThan(5000);
    for (let i = 0; i < 200_000; i++) histogram.record(i * 1.5);
    expect(histogram.buckets).toBe(buckets);
  });

  it('puts values above its range in the top bucket, with the exact maximum', () => {
    const histogram = new LatencyHistogram({ highestMs: 1000 });
    histogram.record(10);
    histogram.record(5000);
    expect(histogram.max).toBe(5000);
    expect(histogram.valueAt(100)).toBe(5000);
    expect(histogram.valueAt(50)).toBeGreaterThanOrEqual(10);
    expect(histogram.valueAt(50)).toBeLessThanOrEqual(10.1);
  });

  it('has no percentiles when empty', () => {
    expect(new LatencyHistogram().valueAt(95)).toBeNaN();
  });
});
