import { ConfigReader } from '@backstage/config';
import { JsonObject } from '@backstage/types';
import { loadConfig } from '@backstage/config-loader';
import { mockServices, startTestBackend } from '@backstage/backend-test-utils';
import { catalogServiceMock } from '@backstage/plugin-catalog-node/testUtils';
import progressionPlugin from '@progression-io/backstage-plugin-progression-backend';
import argoCdDeployerModule from '@progression-io/backstage-plugin-progression-backend-module-argocd';
import testJobGateModule from '@progression-io/backstage-plugin-progression-backend-module-test-job';
import webhookGateModule from '@progression-io/backstage-plugin-progression-backend-module-webhook';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import request from 'supertest';

/*
 * The demo's configuration, loaded as `yarn start` loads it (environment
 * substitution included), runs in a backend with Progression and the gate
 * modules this backend installs: the configuration is valid for the demo
 * as a whole, modules' gates included. The demo comes in two variants:
 * app-config.yaml alone (no Prometheus, no metric gates), and with the file
 * scripts/start.sh writes when it runs a Prometheus
 * (scripts/demo-prometheus-config.sh) loaded after it.
 */

// Each test starts a backend, and one runs a script in a child Node: on a
// machine busy with the other suites that took longer than Jest's 5 s.
jest.setTimeout(60_000);

const root = path.resolve(__dirname, '../../..');
const entity = (name: string, pipeline: string) => ({
  apiVersion: 'backstage.io/v1alpha1',
  kind: 'Component',
  metadata: {
    name,
    annotations: { 'progression.backstage.io/pipeline': pipeline },
  },
  spec: { type: 'service', owner: 'team' },
});

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'demo-config-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** The file the scripts write for a Prometheus at `url`. */
function prometheusOverlay(url: string): string {
  const file = path.join(tmp, 'app-config.prometheus.yaml');
  execFileSync('bash', [
    path.join(root, 'scripts/demo-prometheus-config.sh'),
    url,
    file,
  ]);
  return file;
}

/** The progression section of these files, merged as the backend merges them. */
async function progressionOf(
  files: string[],
  env: Record<string, string> = {},
): Promise<JsonObject> {
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    const { appConfigs } = await loadConfig({
      configRoot: root,
      configTargets: files.map(f => ({ path: f })),
    });
    return ConfigReader.fromConfigs(appConfigs).get<JsonObject>('progression');
  } finally {
    for (const key of Object.keys(env)) {
      if (saved[key] === undefined) delete process.env[key];
      else process.env[key] = saved[key];
    }
  }
}

/** The demo's Argo CD instances (the GitOps example's), from app-config.yaml. */
async function argocdOf(): Promise<JsonObject> {
  const { appConfigs } = await loadConfig({
    configRoot: root,
    configTargets: [{ path: path.join(root, 'app-config.yaml') }],
  });
  return ConfigReader.fromConfigs(appConfigs).get<JsonObject>('argocd');
}

async function startDemoBackend(progression: JsonObject) {
  return startTestBackend({
    features: [
      progressionPlugin,
      testJobGateModule,
      webhookGateModule,
      argoCdDeployerModule,
      catalogServiceMock.factory({
        entities: [
          entity('payments-api', 'standard'),
          entity('web-shop', 'fast-lane'),
        ],
      }),
      mockServices.rootConfig.factory({
        data: {
          progression,
          argocd: await argocdOf(),
          // A database of the test's own, not the demo's.
          backend: { baseUrl: 'http://localhost:7007' },
        },
      }),
    ],
  });
}

const baseConfig = path.join(root, 'app-config.yaml');

const environments = (server: any, name: string) =>
  request(server).get(
    `/api/progression/v1/entities/component/default/${name}/environments`,
  );

const metrics = (server: any) =>
  request(server).get(
    '/api/progression/v1/entities/component/default/payments-api/metrics',
  );

describe("the demo's app-config.yaml", () => {
  it('is a valid Progression configuration for this backend and its modules', async () => {
    const backend = await startDemoBackend(await progressionOf([baseConfig]));
    const { server } = backend;
    try {
      const payments = (await environments(server, 'payments-api')).body;
      expect(payments.pipeline.name).toBe('standard');
      const [development, staging, production] = payments.pipeline.stages;
      expect(
        [development, staging, production].map((s: any) => s.name),
      ).toEqual(['development', 'staging', 'production']);
      expect(staging.configuredGates).toEqual(
        expect.arrayContaining([
          { gate: 'smoke', phase: 'verification' },
          { gate: 'load', phase: 'verification' },
          { gate: 'testJob', phase: 'verification' },
        ]),
      );
      expect(production.configuredGates).toEqual(
        expect.arrayContaining([
          { gate: 'approval', phase: 'approval' },
          { gate: 'job', phase: 'predeploy' },
          { gate: 'smoke', phase: 'verification' },
        ]),
      );
      const shop = (await environments(server, 'web-shop')).body;
      expect(shop.pipeline.name).toBe('fast-lane');
    } finally {
      await backend.stop();
    }
  });

  it('has no Prometheus and no metric gates of its own, whatever the environment', async () => {
    const progression = await progressionOf([baseConfig], {
      PROGRESSION_PROMETHEUS_URL: 'http://127.0.0.1:9',
    });
    expect(progression.prometheus).toBeUndefined();
    const backend = await startDemoBackend(progression);
    try {
      expect((await metrics(backend.server)).body.available).toBe(false);
      for (const name of ['payments-api', 'web-shop']) {
        const { stages } = (await environments(backend.server, name)).body
          .pipeline;
        for (const stage of stages) {
          expect(stage.configuredGates).not.toContainEqual(
            expect.objectContaining({ gate: 'metrics' }),
          );
        }
      }
    } finally {
      await backend.stop();
    }
  });
});

describe('the demo with the Prometheus file the scripts write', () => {
  it("reads Prometheus from it, and staging's metric gate", async () => {
    const progression = await progressionOf([
      baseConfig,
      prometheusOverlay('http://127.0.0.1:9'),
    ]);
    const backend = await startDemoBackend(progression);
    try {
      expect((await metrics(backend.server)).body.available).toBe(true);
      const payments = (await environments(backend.server, 'payments-api'))
        .body;
      const [development, staging, production] = payments.pipeline.stages;
      expect(staging.configuredGates).toEqual(
        expect.arrayContaining([
          { gate: 'smoke', phase: 'verification' },
          { gate: 'metrics', phase: 'verification' },
          { gate: 'load', phase: 'verification' },
          { gate: 'testJob', phase: 'verification' },
        ]),
      );
      // The rest of the pipeline is app-config.yaml's, untouched.
      const base = await progressionOf([baseConfig]);
      const stages = (base as any).pipelines.standard.stages;
      expect((progression as any).pipelines.standard.stages).toEqual([
        stages[0],
        {
          ...stages[1],
          gates: { ...stages[1].gates, metrics: expect.any(Array) },
          // Closed while the demo rule's alert fires for staging.
          freezeOn: {
            alerts: ['{alertname="DemoHighErrorRatio",namespace="staging"}'],
          },
        },
        stages[2],
      ]);
      expect((progression as any).pipelines['fast-lane']).toEqual(
        (base as any).pipelines['fast-lane'],
      );
      expect(development.configuredGates).not.toContainEqual(
        expect.objectContaining({ gate: 'metrics' }),
      );
      expect(production.configuredGates).not.toContainEqual(
        expect.objectContaining({ gate: 'metrics' }),
      );
    } finally {
      await backend.stop();
    }
  });

  it('is refused, naming the staging metric gate, without its Prometheus URL', async () => {
    const { prometheus, ...withoutUrl } = await progressionOf([
      baseConfig,
      prometheusOverlay('http://127.0.0.1:9'),
    ]);
    expect(prometheus).toEqual({ url: 'http://127.0.0.1:9' });
    await expect(startDemoBackend(withoutUrl)).rejects.toThrow(
      "Invalid Progression configuration at 'progression.pipelines.standard.stages[1].gates.metrics[0]': stage 'staging' has metric check 'error-rate' but no Prometheus is configured",
    );
  });
});

describe('the demo with the deny window scripts/demo-window-config.sh writes', () => {
  it("closes web-shop's production only", async () => {
    const file = path.join(tmp, 'app-config.window.yaml');
    execFileSync('bash', [
      path.join(root, 'scripts/demo-window-config.sh'),
      file,
      '* * * * *',
      '60s',
      'UTC',
    ]);
    const base = await progressionOf([baseConfig]);
    const progression = await progressionOf([baseConfig, file]);
    const [staging, production] = (progression as any).pipelines['fast-lane']
      .stages;
    const baseStages = (base as any).pipelines['fast-lane'].stages;
    expect(staging).toEqual(baseStages[0]);
    expect(production).toEqual({
      ...baseStages[1],
      windows: [
        {
          kind: 'deny',
          name: 'demo freeze',
          schedule: '* * * * *',
          duration: '60s',
          timezone: 'UTC',
        },
      ],
    });
    expect((progression as any).pipelines.standard).toEqual(
      (base as any).pipelines.standard,
    );
    const backend = await startDemoBackend(progression);
    try {
      const { stages } = (await environments(backend.server, 'web-shop')).body
        .pipeline;
      // Back-to-back minute-long windows: closed whenever the test runs.
      expect(stages[1].window).toMatchObject({
        open: false,
        source: 'deny-window',
        rollbacksWhenClosed: 'allow',
      });
      expect(stages[1].window.reason).toContain("deny window 'demo freeze'");
      expect(stages[0].window).toBeUndefined();
    } finally {
      await backend.stop();
    }
  });
});
