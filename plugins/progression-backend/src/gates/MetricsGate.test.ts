import {
  mockCredentials,
  mockServices,
  startTestBackend,
} from '@backstage/backend-test-utils';
import { ConfigReader } from '@backstage/config';
import { catalogServiceMock } from '@backstage/plugin-catalog-node/testUtils';
import { AuthorizeResult } from '@backstage/plugin-permission-common';
import { KubeSimulator, installDemo } from '@internal/kube-simulator';
import { StageConfig } from '../config/readProgressionConfig';
import request from 'supertest';
import { readTestConfig } from '../__testUtils__/readTestConfig';
import { progressionPlugin } from '../plugin';
import { PrometheusClient } from '../prometheus/PrometheusClient';
import {
  TestPrometheus,
  prometheusAvailable,
  startPrometheus,
  waitForSamples,
} from '../__testUtils__/startPrometheus';
import { GateContext } from './Gate';
import { MetricCheckEvidence, MetricsGate } from './MetricsGate';
import { SoakGate } from './SoakGate';

/*
 * A real Prometheus (Debian's package; scripts/test.sh installs it and
 * makes these tests fail rather than skip without it) scraping the
 * simulator's demo workloads over HTTP. Nothing is mocked.
 */
jest.setTimeout(120_000);

const selector =
  'namespace="{{ namespace }}",app="{{ app }}",version="{{ version }}"';
const ERROR_RATE = `(sum(rate(http_requests_total{${selector},status=~"5.."}[10s])) or vector(0)) / sum(rate(http_requests_total{${selector}}[10s]))`;
const TRAFFIC = `sum(rate(http_requests_total{${selector}}[10s]))`;

const errorRateCheck = (extra: object = {}) => ({
  name: 'error-rate',
  query: ERROR_RATE,
  condition: '<= 0.05',
  unit: 'ratio',
  interval: '1s',
  count: 3,
  minTraffic: { query: TRAFFIC, min: 0.5 },
  ...extra,
});

/*
 * A backend reads the stage with a Prometheus configured unless
 * `prometheus: false`: without one, checks that are not optional are
 * refused. (The gates under test bring their own client.)
 */
function readWith(metrics: object[], { prometheus = true } = {}) {
  return readTestConfig(
    new ConfigReader({
      progression: {
        clusters: [{ name: 'local', url: 'http://127.0.0.1:1' }],
        ...(prometheus && { prometheus: { url: 'http://127.0.0.1:9' } }),
        pipelines: {
          p: {
            stages: [
              {
                name: 'staging',
                cluster: 'local',
                namespace: 'staging',
                gates: { metrics },
              },
            ],
          },
        },
      },
    }),
  );
}

const stageWith = (metrics: object[], options?: { prometheus?: boolean }) =>
  readWith(metrics, options).pipelines.get('p')!.stages[0];

const context = (
  stage: StageConfig,
  app: string,
  version: string,
  extra: Partial<GateContext> = {},
): GateContext => ({
  stage,
  entity: {
    entityRef: `component:default/${app}`,
    name: app,
    namespace: 'default',
    kubernetesId: app,
  },
  release: { id: 'r', version, image: `registry.local/${app}:${version}` },
  ...extra,
});

const checksOf = (evidence: unknown) =>
  (evidence as { checks: MetricCheckEvidence[] }).checks;

const describeWithPrometheus = prometheusAvailable() ? describe : describe.skip;

describeWithPrometheus('MetricsGate against a real Prometheus', () => {
  let sim: KubeSimulator;
  let demo: Awaited<ReturnType<typeof installDemo>>;
  let prometheus: TestPrometheus;
  let gate: MetricsGate;

  beforeAll(async () => {
    sim = await KubeSimulator.start({ podReadyDelayMs: 50 });
    demo = await installDemo(sim, { anyPorts: true, trafficIntervalMs: 100 });
    prometheus = await startPrometheus(
      demo.servers.map(s => new URL(s.url).host),
    );
    gate = new MetricsGate(
      new PrometheusClient({
        url: prometheus.url,
        headers: {},
        timeoutMs: 2000,
      }),
    );
    // An `errors` release of payments-api in staging; web-shop stays healthy.
    const deployment = sim.store.get('deployments', 'staging', 'payments-api')!;
    deployment.spec.template.spec.containers[0].image =
      'registry.local/payments-api:2.0.0-errors';
    sim.apply(deployment);
    await waitForSamples(
      prometheus.url,
      'http_requests_total{namespace="staging",app="payments-api",version="2.0.0-errors"}',
    );
    await waitForSamples(
      prometheus.url,
      'http_requests_total{namespace="staging",app="web-shop",version="2.3.0"}',
    );
    // Enough scrapes for a 10 s rate.
    await new Promise(r => setTimeout(r, 4000));
  });

  afterAll(async () => {
    await prometheus?.close();
    await demo?.stop();
    await sim?.stop();
  });

  it('fails an errors release on its error rate, with the samples and threshold as evidence', async () => {
    const stage = stageWith([errorRateCheck()]);
    const result = await gate.run(
      context(stage, 'payments-api', '2.0.0-errors'),
      'verification',
    );
    expect(result.status).toBe('failed');
    expect(result.reason).toMatch(
      /^error-rate: error-rate \d+\.\d% > 5\.0% in 1 of 1 samples$/,
    );
    const [check] = checksOf(result.evidence);
    expect(check.query).toContain('namespace="staging",app="payments-api"');
    expect(check.threshold).toBe(0.05);
    expect(check.samples[0]).toMatchObject({
      status: 'failed',
      value: expect.any(Number),
      time: expect.any(String),
    });
    expect(check.samples[0].value).toBeGreaterThan(0.05);
  });

  it('passes a healthy release', async () => {
    const stage = stageWith([errorRateCheck()]);
    const result = await gate.run(
      context(stage, 'web-shop', '2.3.0'),
      'verification',
    );
    expect(result.status).toBe('passed');
    expect(result.reason).toBe(
      'error-rate: error-rate 0.0% ≤ 5.0% in 3 of 3 samples',
    );
    const [check] = checksOf(result.evidence);
    expect(check.samples).toHaveLength(3);
    expect(check.value).toBe(0);
  });

  it('compares with the last successful release when the threshold is relative', async () => {
    const p95 = {
      name: 'p95',
      query:
        'histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{namespace="{{ namespace }}",app="{{ app }}"}[10s])))',
      condition: '<= +10%',
      unit: 'seconds',
      interval: '1s',
      count: 2,
    };
    const stage = stageWith([p95]);
    const noBaseline = await gate.run(
      context(stage, 'web-shop', '2.3.0'),
      'verification',
    );
    expect(noBaseline.status).toBe('inconclusive');
    expect(noBaseline.reason).toMatch(/no baseline/);

    const baseline = jest.fn(async () => 0.004);
    const result = await gate.run(
      context(stage, 'web-shop', '2.3.0', { baseline }),
      'verification',
    );
    expect(baseline).toHaveBeenCalledWith('metrics', 'p95');
    const [check] = checksOf(result.evidence);
    expect(check.baseline).toBe(0.004);
    expect(check.threshold).toBeCloseTo(0.0044);
    expect(['passed', 'failed']).toContain(result.status);
  });

  it('is inconclusive, not passed, without enough traffic to judge', async () => {
    const stage = stageWith([errorRateCheck({ count: 1 })]);
    const result = await gate.run(
      context(stage, 'web-shop', '9.9.9'),
      'verification',
    );
    expect(result.status).toBe('inconclusive');
    expect(result.reason).toMatch(/too little traffic to judge: none < 0\.5/);
  });

  it('refuses a crafted label value instead of letting it into the query', async () => {
    const stage = stageWith([
      errorRateCheck({ count: 1, minTraffic: undefined }),
    ]);
    const crafted = 'x"} or vector(1) or up{job="';
    const result = await gate.run(
      context(stage, crafted, '2.3.0'),
      'verification',
    );
    expect(result.status).toBe('error');
    expect(result.reason).toMatch(/refusing app value/);
    // A condition that the injected `vector(1)` would satisfy.
    const forced = stageWith([
      {
        name: 'forced',
        query: 'sum(up{job="{{ app }}"})',
        condition: '>= 1',
        count: 1,
        interval: '1s',
      },
    ]);
    const attempt = await gate.run(
      context(forced, crafted, '2.3.0'),
      'verification',
    );
    expect(attempt.status).not.toBe('passed');
  });

  it('errs, and does not pass, when Prometheus stops in the middle of the gate', async () => {
    const stage = stageWith([
      errorRateCheck({ count: 6, consecutiveErrorLimit: 1 }),
    ]);
    const running = gate.run(
      context(stage, 'web-shop', '2.3.0'),
      'verification',
    );
    await new Promise(r => setTimeout(r, 1500));
    await prometheus.stop();
    const result = await running;
    await prometheus.start();
    expect(result.status).toBe('error');
    expect(result.reason).toMatch(/2 samples in a row could not be measured/);
    const [check] = checksOf(result.evidence);
    expect(check.samples.some(s => s.status === 'successful')).toBe(true);
    expect(check.samples.slice(-1)[0].note).toMatch(/cannot be reached/);
  });

  it('lets a check that cannot measure pass only when its config says so', async () => {
    const unreachable = new MetricsGate(
      new PrometheusClient({
        url: 'http://127.0.0.1:1',
        headers: {},
        timeoutMs: 500,
      }),
    );
    const strict = await unreachable.run(
      context(stageWith([errorRateCheck({ count: 1 })]), 'web-shop', '2.3.0'),
      'verification',
    );
    expect(strict.status).toBe('error');
    const lenient = await unreachable.run(
      context(
        stageWith([errorRateCheck({ count: 1, passIfUnmeasurable: true })]),
        'web-shop',
        '2.3.0',
      ),
      'verification',
    );
    expect(lenient.status).toBe('skipped');
    expect(lenient.reason).toMatch(/passIfUnmeasurable/);
    // `optional` is about having no Prometheus, not about one that fails.
    const optional = await unreachable.run(
      context(
        stageWith([errorRateCheck({ count: 1, optional: true })]),
        'web-shop',
        '2.3.0',
      ),
      'verification',
    );
    expect(optional.status).toBe('error');
  });

  it('measures an optional check like any other when Prometheus is configured', async () => {
    const stage = stageWith([errorRateCheck({ optional: true })]);
    const result = await gate.run(
      context(stage, 'payments-api', '2.0.0-errors'),
      'verification',
    );
    expect(result.status).toBe('failed');
    expect(result.reason).toMatch(/^error-rate: error-rate \d+\.\d% > 5\.0%/);
  });
});

describe('MetricsGate without Prometheus configured', () => {
  const errorOf = (fn: () => unknown) => {
    try {
      fn();
    } catch (e) {
      return e as Error & { key?: string };
    }
    throw new Error('expected an error');
  };

  it('refuses a stage with a check that is not optional, naming the check and the stage', () => {
    const error = errorOf(() =>
      stageWith(
        [errorRateCheck({ optional: true }), errorRateCheck({ name: 'p95' })],
        {
          prometheus: false,
        },
      ),
    );
    expect(error.key).toBe(
      'progression.pipelines.p.stages[0].gates.metrics[1]',
    );
    expect(error.message).toMatch(
      /stage 'staging' has metric check 'p95' but no Prometheus is configured \(progression\.prometheus\.url\); .*'optional: true'/,
    );
  });

  it('names a bad key of a check before the missing Prometheus', () => {
    const error = errorOf(() =>
      stageWith([errorRateCheck({ condition: 'below 5' })], {
        prometheus: false,
      }),
    );
    expect(error.key).toBe(
      'progression.pipelines.p.stages[0].gates.metrics[0].condition',
    );
  });

  it('records an optional check as not measured: skipped, optional in the evidence', async () => {
    const stage = stageWith([errorRateCheck({ optional: true })], {
      prometheus: false,
    });
    const result = await new MetricsGate().run(
      context(stage, 'web-shop', '2.3.0'),
      'verification',
    );
    expect(result.status).toBe('skipped');
    expect(result.reason).toBe(
      'optional, not measured: no Prometheus is configured (progression.prometheus.url) for error-rate',
    );
    expect(result.evidence).toEqual({
      optional: true,
      checks: [{ name: 'error-rate', query: ERROR_RATE }],
    });
  });

  it('errs, rather than skips, for a check that is not optional', async () => {
    // A stage read by a backend with Prometheus, run by a gate without one.
    const stage = stageWith([errorRateCheck()]);
    const result = await new MetricsGate().run(
      context(stage, 'web-shop', '2.3.0'),
      'verification',
    );
    expect(result.status).toBe('error');
    expect(result.reason).toMatch(
      /no Prometheus is configured .* to measure error-rate, which is not optional/,
    );
  });

  it('leaves soak not measured, not healthy, when the soaked stage has only optional checks', async () => {
    const config = readWith([errorRateCheck({ optional: true })], {
      prometheus: false,
    });
    const source = config.pipelines.get('p')!.stages[0];
    const location = {
      cluster: config.clusters.get('local')!,
      namespace: source.namespace,
    };
    const result = await new SoakGate(new MetricsGate()).run(
      context(source, 'web-shop', '2.3.0', {
        source: { stage: source, location },
      }),
      'preflight',
    );
    expect(result).toMatchObject({ gate: 'soak', status: 'skipped' });
    expect(result.reason).toBe(
      "optional, not measured: no Prometheus is configured (progression.prometheus.url) for error-rate, so staging's health after its soak is not known",
    );
    expect(result.evidence).toMatchObject({ optional: true });
  });

  it('applies only in the phase its checks name', () => {
    const stage = stageWith([errorRateCheck({ when: 'preflight' })]);
    const gate = new MetricsGate();
    expect(gate.appliesTo(stage, 'preflight')).toBe(true);
    expect(gate.appliesTo(stage, 'verification')).toBe(false);
  });
});

describe('a backend without Prometheus', () => {
  let sim: KubeSimulator;
  let demo: Awaited<ReturnType<typeof installDemo>>;

  beforeAll(async () => {
    sim = await KubeSimulator.start({ podReadyDelayMs: 20 });
    demo = await installDemo(sim, {
      anyPorts: true,
      trafficIntervalMs: 60_000,
    });
  });

  afterAll(async () => {
    await demo?.stop();
    await sim?.stop();
  });

  const entity = {
    apiVersion: 'backstage.io/v1alpha1',
    kind: 'Component',
    metadata: {
      name: 'web-shop',
      annotations: {
        'progression.backstage.io/pipeline': 'standard',
        'backstage.io/kubernetes-id': 'web-shop',
      },
    },
    spec: { type: 'website', owner: 'team-web' },
  };

  const start = (check: object) =>
    startTestBackend({
      features: [
        progressionPlugin,
        catalogServiceMock.factory({ entities: [entity] }),
        mockServices.permissions.factory({ result: AuthorizeResult.ALLOW }),
        mockServices.rootConfig.factory({
          data: {
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
                      url: `${
                        demo.servers.find(x => x.namespace === 'development')!
                          .url
                      }/{{ kubernetesId }}`,
                      autoPromote: true,
                      gates: { metrics: [check] },
                    },
                  ],
                },
              },
            },
          },
        }),
      ],
    });

  it('refuses to start with a metric check that is not optional, naming the stage key', async () => {
    await expect(start(errorRateCheck())).rejects.toThrow(
      "Invalid Progression configuration at 'progression.pipelines.standard.stages[0].gates.metrics[0]': stage 'development' has metric check 'error-rate' but no Prometheus is configured (progression.prometheus.url)",
    );
  });

  it('starts with an optional one, and the promotion records it as not measured', async () => {
    const { server } = await start(errorRateCheck({ optional: true }));
    const base = '/api/progression/v1/entities/component/default/web-shop';
    const registered = await request(server)
      .post(`${base}/releases`)
      .set(
        'Authorization',
        mockCredentials.service.header({
          onBehalfOf: mockCredentials.service('external:ci'),
          targetPluginId: 'progression',
        }),
      )
      .send({ version: '2.4.0', image: 'registry.local/web-shop:2.4.0' });
    expect(registered.status).toBe(201);
    // autoPromote: the registration started the promotion.
    const list = await request(server).get(`${base}/promotions`);
    expect(list.body.items).toHaveLength(1);
    let details: any;
    // Polled until it ends, within the test's own timeout (a busy machine
    // runs the worker late).
    for (let i = 0; i < 1000; i++) {
      details = (
        await request(server).get(
          `/api/progression/v1/promotions/${list.body.items[0].id}`,
        )
      ).body;
      if (
        ['succeeded', 'failed', 'rolled-back'].includes(details.promotion.state)
      )
        break;
      await new Promise(r => setTimeout(r, 100));
    }
    expect(details.promotion.state).toBe('succeeded');
    const step = details.steps.find(
      (x: any) => x.kind === 'gate' && x.name === 'metrics',
    );
    expect(step).toMatchObject({
      status: 'skipped',
      reason:
        'optional, not measured: no Prometheus is configured (progression.prometheus.url) for error-rate',
    });
    expect(step.evidence.evidence).toMatchObject({ optional: true });

    const environments = await request(server).get(`${base}/environments`);
    const [development] = environments.body.pipeline.stages;
    expect(development.gates).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          gate: 'metrics',
          status: 'skipped',
          reason: expect.stringMatching(/^optional, not measured: /),
        }),
      ]),
    );
  });
});

describe('readMetricsGateConfig', () => {
  const keyOf = (metrics: object[]) => {
    try {
      stageWith(metrics);
    } catch (e) {
      return (e as { key?: string }).key;
    }
    return undefined;
  };

  it.each([
    [{ condition: 'below 5' }, 'condition'],
    [{ query: 'up{job={{ app }}}' }, 'query'],
    [{ query: 'up{job="{{ secret }}"}' }, 'query'],
    [{ unit: 'parsecs' }, 'unit'],
    [{ noData: 'maybe' }, 'noData'],
    [{ count: 0 }, 'count'],
    [{ when: 'later' }, 'when'],
    [{ interval: '1ms' }, 'interval'],
  ])('names the key of %p', (extra, key) => {
    expect(keyOf([errorRateCheck(extra)])).toBe(
      `progression.pipelines.p.stages[0].gates.metrics[0].${key}`,
    );
  });

  it('reads a relative condition', () => {
    const [check] = stageWith([errorRateCheck({ condition: '<= +10%' })]).gates
      .metrics!;
    expect(check).toMatchObject({
      comparison: '<=',
      threshold: 10,
      relative: true,
    });
  });
});
