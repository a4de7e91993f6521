import {
  TestDatabases,
  mockErrorHandler,
  mockServices,
} from '@backstage/backend-test-utils';
import { ConfigReader } from '@backstage/config';
import { GateResult } from '@progression-io/backstage-plugin-progression-common';
import { KubeSimulator, installDemo } from '@internal/kube-simulator';
import { ProgressionConfig } from '../config/readProgressionConfig';
import { readTestConfig } from '../__testUtils__/readTestConfig';
import { DatabasePromotionStore } from '../database/DatabasePromotionStore';
import { applyDatabaseMigrations } from '../database/migrations';
import { Gate } from '../gates/Gate';
import { IsolationGate } from '../gates/IsolationGate';
import { JobGate } from '../gates/JobGate';
import { ParityGate } from '../gates/ParityGate';
import { MetricCheckEvidence, MetricsGate } from '../gates/MetricsGate';
import { SmokeGate } from '../gates/SmokeGate';
import { KubernetesWorkloads } from '../kubernetes/KubernetesWorkloads';
import { PrometheusClient } from '../prometheus/PrometheusClient';
import {
  TestPrometheus,
  prometheusAvailable,
  startPrometheus,
  waitForSamples,
} from '../__testUtils__/startPrometheus';
import { PromotionEngine } from './PromotionEngine';
import { ProgressionReadModel } from '../service/ProgressionReadModel';
import { createTestRouter } from '../__testUtils__/createTestRouter';
import { wrapServerOnIPv4 } from '../__testUtils__/wrapServerOnIPv4';
import { catalogServiceMock } from '@backstage/plugin-catalog-node/testUtils';
import express from 'express';
import request from 'supertest';

/*
 * Promotions through the gates of the gates issue, against the real parts:
 * the store on SQLite, the cluster simulator through client-node, its demo
 * workloads over HTTP, and a real Prometheus scraping them (Debian's
 * package; scripts/test.sh installs it and makes these tests fail rather
 * than skip without it).
 */
jest.setTimeout(180_000);

const databases = TestDatabases.create({ ids: ['SQLITE_3'] });
const selector =
  'namespace="{{ namespace }}",app="{{ app }}",version="{{ version }}"';
const ERROR_RATE = `(sum(rate(http_requests_total{${selector},status=~"5.."}[10s])) or vector(0)) / sum(rate(http_requests_total{${selector}}[10s]))`;

/**
 * The REST API over `store` (and the cluster and Prometheus when given),
 * for one entity of `pipeline`, every response checked against the
 * OpenAPI document.
 */
async function serve(
  parts: {
    store: DatabasePromotionStore;
    workloads?: KubernetesWorkloads;
    prometheus?: PrometheusClient;
  },
  config: ProgressionConfig,
  name: string,
  pipeline: string,
) {
  const entity = {
    apiVersion: 'backstage.io/v1alpha1',
    kind: 'Component',
    metadata: {
      name,
      namespace: 'default',
      annotations: { 'progression.backstage.io/pipeline': pipeline },
    },
    spec: { type: 'service', owner: 'team' },
  };
  const router = await createTestRouter({
    ...parts,
    catalog: catalogServiceMock({ entities: [entity] }),
    config,
  });
  const server = await wrapServerOnIPv4(
    express().use(router).use(mockErrorHandler()),
  );
  return { entity, server };
}

const describeWithPrometheus = prometheusAvailable() ? describe : describe.skip;

describeWithPrometheus('promotions through metric gates', () => {
  let sim: KubeSimulator;
  let demo: Awaited<ReturnType<typeof installDemo>>;
  let prometheus: TestPrometheus;
  let config: ProgressionConfig;

  beforeAll(async () => {
    sim = await KubeSimulator.start({ podReadyDelayMs: 20 });
    demo = await installDemo(sim, { anyPorts: true, trafficIntervalMs: 100 });
    prometheus = await startPrometheus(
      demo.servers.map(s => new URL(s.url).host),
    );
    const url = (ns: string) =>
      `${demo.servers.find(s => s.namespace === ns)!.url}/{{ kubernetesId }}`;
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
          prometheus: { url: prometheus.url, timeout: '2s' },
          pipelines: {
            standard: {
              stages: [
                {
                  name: 'development',
                  cluster: 'sim',
                  namespace: 'development',
                  url: url('development'),
                },
                {
                  name: 'staging',
                  cluster: 'sim',
                  namespace: 'staging',
                  url: url('staging'),
                  gates: {
                    smoke: { checks: [{ path: '/healthz' }] },
                    metrics: [
                      {
                        name: 'error-rate',
                        query: ERROR_RATE,
                        condition: '<= 0.05',
                        unit: 'ratio',
                        initialDelay: '4s',
                        interval: '1s',
                        count: 3,
                      },
                    ],
                  },
                },
              ],
            },
          },
        },
      }),
    );
    await waitForSamples(
      prometheus.url,
      'http_requests_total{namespace="staging",app="payments-api"}',
    );
  });

  afterAll(async () => {
    await prometheus?.close();
    await demo?.stop();
    await sim?.stop();
  });

  const liveImage = (ns: string) =>
    sim.store.get('deployments', ns, 'payments-api')!.spec.template.spec
      .containers[0].image;

  async function setup(gates: Gate[]) {
    const knex = await databases.init('SQLITE_3');
    await applyDatabaseMigrations(knex);
    const store = new DatabasePromotionStore(knex);
    const engine = new PromotionEngine({
      store,
      workloads: new KubernetesWorkloads(),
      config,
      gates,
      resolveEntity: async ref => ({
        entityRef: ref,
        name: 'payments-api',
        namespace: 'default',
        kubernetesId: 'payments-api',
      }),
      logger: mockServices.logger.mock(),
    });
    /** Takes a release through development into staging. */
    const toStaging = async (version: string) => {
      const { release } = await store.registerRelease({
        entityRef: 'component:default/payments-api',
        version,
        image: `registry.local/payments-api:${version}`,
        createdBy: 'user:default/ci',
      });
      for (const stage of ['development', 'staging']) {
        const { promotion } = await store.createPromotion({
          entityRef: 'component:default/payments-api',
          pipeline: 'standard',
          stage,
          releaseId: release.id,
          requestedBy: 'user:default/jane',
        });
        const state = await engine.run(promotion.id);
        if (stage === 'staging') {
          return {
            promotion,
            state,
            steps: await store.listSteps(promotion.id),
          };
        }
        expect(state).toBe('succeeded');
      }
      throw new Error('unreachable');
    };
    return { store, engine, toStaging };
  }

  const metricsGate = () =>
    new MetricsGate(
      new PrometheusClient({
        url: prometheus.url,
        headers: {},
        timeoutMs: 2000,
      }),
    );

  it('rolls back an errors release that fails the error-rate gate in staging, with the measured rate as evidence', async () => {
    const { toStaging } = await setup([new SmokeGate(), metricsGate()]);
    const before = liveImage('staging');
    const { state, steps } = await toStaging('3.0.0-errors');
    expect(state).toBe('rolled-back');
    const gate = steps.find(s => s.kind === 'gate' && s.name === 'metrics')!;
    expect(gate.status).toBe('failed');
    expect(gate.reason).toMatch(/^error-rate: error-rate \d+\.\d% > 5\.0% in/);
    const [check] = (
      gate.evidence as GateResult & {
        evidence: { checks: MetricCheckEvidence[] };
      }
    ).evidence.checks;
    expect(check.threshold).toBe(0.05);
    expect(check.query).toContain('version="3.0.0-errors"');
    expect(
      check.samples.find(s => s.status === 'failed')!.value,
    ).toBeGreaterThan(0.05);
    // The cluster runs the previous image again.
    expect(liveImage('staging')).toBe(before);
  });

  it('lets a healthy release through the same gate', async () => {
    const { toStaging } = await setup([new SmokeGate(), metricsGate()]);
    const { state, steps } = await toStaging('3.1.0');
    expect(state).toBe('succeeded');
    const gate = steps.find(s => s.kind === 'gate' && s.name === 'metrics')!;
    expect(gate.status).toBe('passed');
    expect(gate.reason).toBe(
      'error-rate: error-rate 0.0% ≤ 5.0% in 3 of 3 samples',
    );
    expect(liveImage('staging')).toBe('registry.local/payments-api:3.1.0');
  });

  it('serves the charts: request rate, error rate and p95 per stage from Prometheus, checked against the OpenAPI document', async () => {
    const { store } = await setup([]);
    const { entity, server } = await serve(
      {
        store,
        prometheus: new PrometheusClient({
          url: prometheus.url,
          headers: {},
          timeoutMs: 2000,
        }),
      },
      config,
      'payments-api',
      'standard',
    );
    // A fresh Prometheus has a few seconds of samples: wait for a rate.
    let res = await request(server).get(
      '/v1/entities/component/default/payments-api/metrics?range=15m',
    );
    for (
      let i = 0;
      i < 60 &&
      !res.body.stages?.[1]?.requestRate?.some((p: any) => p.v !== null);
      i++
    ) {
      await new Promise(r => setTimeout(r, 500));
      res = await request(server).get(
        '/v1/entities/component/default/payments-api/metrics?range=15m',
      );
    }
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      entityRef: 'component:default/payments-api',
      available: true,
      range: '15m',
      stepSeconds: 15,
    });
    const staging = res.body.stages.find((s: any) => s.stage === 'staging');
    expect(staging.error).toBeUndefined();
    const latest = (points: { v: number | null }[]) =>
      points.filter(p => p.v !== null).pop()?.v;
    expect(latest(staging.requestRate)).toBeGreaterThan(0);
    expect(latest(staging.p95)).toBeGreaterThan(0);
    expect(latest(staging.errorRate)).toBeGreaterThanOrEqual(0);

    const bad = await request(server).get(
      '/v1/entities/component/default/payments-api/metrics?range=2y',
    );
    expect(bad.status).toBe(400);
    const unknown = await request(server).get(
      '/v1/entities/component/default/payments-api/metrics?stage=qa',
    );
    expect(unknown.status).toBe(404);

    const without = await new ProgressionReadModel({
      store,
      config,
      gates: [],
    }).metrics(entity);
    expect(without.available).toBe(false);
    expect(without.reason).toMatch(/No Prometheus is configured/);
  });

  it('does not pass a release while Prometheus is down: the gate errs and the release is rolled back', async () => {
    const { toStaging } = await setup([new SmokeGate(), metricsGate()]);
    await prometheus.stop();
    try {
      const { state, steps } = await toStaging('3.2.0');
      expect(state).toBe('rolled-back');
      const gate = steps.find(s => s.kind === 'gate' && s.name === 'metrics')!;
      expect(gate.status).toBe('error');
      expect(gate.reason).toMatch(/cannot be reached/);
    } finally {
      await prometheus.start();
    }
  });
});

describe('promotions through the cluster gates (job, isolation, parity) and the flag matrix', () => {
  let sim: KubeSimulator;
  let demo: Awaited<ReturnType<typeof installDemo>>;
  let config: ProgressionConfig;
  const entityRef = 'component:default/web-shop';

  beforeAll(async () => {
    sim = await KubeSimulator.start({ podReadyDelayMs: 20 });
    demo = await installDemo(sim, {
      anyPorts: true,
      trafficIntervalMs: 60_000,
    });
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
            guarded: {
              stages: [
                { name: 'staging', cluster: 'sim', namespace: 'staging' },
                {
                  name: 'production',
                  cluster: 'sim',
                  namespace: 'production',
                  gates: {
                    isolation: true,
                    parity: true,
                    job: {
                      migration: {
                        command: ['./migrate', '--up'],
                        timeout: '20s',
                      },
                    },
                  },
                },
              ],
            },
          },
        },
      }),
    );
  });

  afterAll(async () => {
    await demo?.stop();
    await sim?.stop();
  });

  const liveImage = (ns: string) =>
    sim.store.get('deployments', ns, 'web-shop')!.spec.template.spec
      .containers[0].image;

  async function toProduction(version: string) {
    const knex = await databases.init('SQLITE_3');
    await applyDatabaseMigrations(knex);
    const store = new DatabasePromotionStore(knex);
    const engine = new PromotionEngine({
      store,
      workloads: new KubernetesWorkloads(),
      config,
      gates: [new IsolationGate(), new ParityGate(), new JobGate()],
      resolveEntity: async ref => ({
        entityRef: ref,
        name: 'web-shop',
        namespace: 'default',
        kubernetesId: 'web-shop',
      }),
      logger: mockServices.logger.mock(),
    });
    const { release } = await store.registerRelease({
      entityRef,
      version,
      image: `registry.local/web-shop:${version}`,
      createdBy: 'user:default/ci',
    });
    let result;
    for (const stage of ['staging', 'production']) {
      const { promotion } = await store.createPromotion({
        entityRef,
        pipeline: 'guarded',
        stage,
        releaseId: release.id,
        requestedBy: 'user:default/jane',
      });
      const state = await engine.run(promotion.id);
      result = {
        state,
        promotion: (await store.getPromotion(promotion.id))!,
        steps: await store.listSteps(promotion.id),
      };
      if (stage === 'staging') expect(state).toBe('succeeded');
    }
    return result!;
  }

  it('stops a failing migration before the deploy: production keeps running what it ran', async () => {
    const before = liveImage('production');
    const { state, promotion, steps } = await toProduction(
      '5.0.0-failing-migration',
    );
    expect(state).toBe('failed');
    expect(promotion.error).toMatch(/^job: .*failed.*; nothing was deployed$/);
    const job = steps.find(s => s.kind === 'gate' && s.name === 'job')!;
    expect(job.status).toBe('failed');
    expect(JSON.stringify(job.evidence)).toContain(
      'registry.local/web-shop:5.0.0-failing-migration',
    );
    expect(steps.some(s => s.kind === 'deploy')).toBe(false);
    expect(liveImage('production')).toBe(before);
  });

  it('runs the migration, then deploys, for a healthy release', async () => {
    const { state, steps } = await toProduction('5.1.0');
    expect(state).toBe('succeeded');
    const names = steps
      .filter(s => s.kind === 'gate')
      .map(s => `${s.name}:${s.status}`);
    expect(names).toEqual(
      expect.arrayContaining([
        'isolation:passed',
        'parity:passed',
        'job:passed',
      ]),
    );
    expect(liveImage('production')).toBe('registry.local/web-shop:5.1.0');
  });

  it('fails the parity gate before anything is deployed when production lacks a Secret the workload references', async () => {
    const staging = sim.store.get('deployments', 'staging', 'web-shop')!;
    const original = JSON.parse(JSON.stringify(staging));
    sim.apply({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'payments-provider-key', namespace: 'staging' },
      stringData: { key: 'staging-only' },
    });
    staging.spec.template.spec.containers[0].env = [
      ...(staging.spec.template.spec.containers[0].env ?? []),
      {
        name: 'PROVIDER_KEY',
        valueFrom: {
          secretKeyRef: { name: 'payments-provider-key', key: 'key' },
        },
      },
    ];
    sim.apply(staging);
    const before = liveImage('production');
    try {
      const { state, promotion, steps } = await toProduction('5.2.0');
      expect(state).toBe('failed');
      expect(promotion.error).toMatch(
        /references secret `payments-provider-key`, which does not exist in `production`/,
      );
      expect(steps.some(s => s.kind === 'deploy')).toBe(false);
      expect(steps.some(s => s.kind === 'gate' && s.name === 'job')).toBe(
        false,
      );
      expect(liveImage('production')).toBe(before);
    } finally {
      sim.apply({
        ...original,
        metadata: { ...original.metadata, resourceVersion: undefined },
      });
    }
  });

  it('fails the isolation gate, naming the rule, when a production policy admits the staging namespace', async () => {
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
                namespaceSelector: { matchLabels: { environment: 'staging' } },
              },
            ],
          },
        ],
      },
    });
    const before = liveImage('production');
    try {
      const { state, promotion } = await toProduction('5.3.0');
      expect(state).toBe('failed');
      expect(promotion.error).toMatch(
        /^isolation: .*allow-from-staging.*staging/,
      );
      expect(liveImage('production')).toBe(before);
    } finally {
      sim.store.delete('networkpolicies', 'production', 'allow-from-staging');
    }
  });

  it('previews the read-only preflight gates of a promotion without starting one', async () => {
    const knex = await databases.init('SQLITE_3');
    await applyDatabaseMigrations(knex);
    const store = new DatabasePromotionStore(knex);
    const { server } = await serve(
      { store, workloads: new KubernetesWorkloads() },
      config,
      'web-shop',
      'guarded',
    );
    const res = await request(server).get(
      '/v1/entities/component/default/web-shop/stages/production/preview',
    );
    expect(res.status).toBe(200);
    expect(res.body.stage).toBe('production');
    expect(
      res.body.results.map((r: { gate: string; status: string }) => [
        r.gate,
        r.status,
      ]),
    ).toEqual([
      ['isolation', 'passed'],
      ['parity', 'passed'],
    ]);
    const parity = res.body.results[1];
    expect(
      parity.evidence.warnings
        .map((w: { message: string }) => w.message)
        .join('\n'),
    ).toMatch(/new-checkout/);
    // Nothing was started.
    expect(
      (await store.listPromotions('component:default/web-shop')).items,
    ).toEqual([]);
    const unknown = await request(server).get(
      '/v1/entities/component/default/web-shop/stages/qa/preview',
    );
    expect(unknown.status).toBe(404);
  });

  it('serves the flag matrix with a flag on in staging and off in production marked as a difference', async () => {
    const knex = await databases.init('SQLITE_3');
    await applyDatabaseMigrations(knex);
    const { server } = await serve(
      {
        store: new DatabasePromotionStore(knex),
        workloads: new KubernetesWorkloads(),
      },
      config,
      'web-shop',
      'guarded',
    );
    const res = await request(server).get(
      '/v1/entities/component/default/web-shop/flags',
    );
    expect(res.status).toBe(200);
    expect(res.body.stages).toEqual(['staging', 'production']);
    const row = (key: string) =>
      res.body.flags.find((f: { key: string }) => f.key === key);
    expect(row('new-checkout')).toMatchObject({
      differs: true,
      values: {
        staging: { state: 'ENABLED', variant: 'on', value: true },
        production: { state: 'ENABLED', variant: 'off', value: false },
      },
    });
    expect(row('dark-mode').differs).toBe(false);
    expect(res.body.errors).toEqual({});
  });
});
