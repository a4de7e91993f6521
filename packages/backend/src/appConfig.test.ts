import { JsonObject } from '@backstage/types';
import { loadConfig } from '@backstage/config-loader';
import { mockServices, startTestBackend } from '@backstage/backend-test-utils';
import { catalogServiceMock } from '@backstage/plugin-catalog-node/testUtils';
import progressionPlugin from '@internal/backstage-plugin-progression-backend';
import testJobGateModule from '@internal/backstage-plugin-progression-backend-module-test-job';
import webhookGateModule from '@internal/backstage-plugin-progression-backend-module-webhook';
import path from 'node:path';
import request from 'supertest';

/*
 * The demo's app-config.yaml, loaded as `yarn start` loads it (environment
 * substitution included), runs in a backend with Progression and the gate
 * modules this backend installs: the configuration is valid for the demo
 * as a whole, modules' gates included.
 */

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

async function startDemoBackend(env: Record<string, string>) {
  const saved = { ...process.env };
  Object.assign(process.env, env);
  let data: JsonObject;
  try {
    const { appConfigs } = await loadConfig({
      configRoot: root,
      configTargets: [{ path: path.join(root, 'app-config.yaml') }],
    });
    data = Object.assign({}, ...appConfigs.map(c => c.data));
  } finally {
    for (const key of Object.keys(env)) {
      if (saved[key] === undefined) delete process.env[key];
      else process.env[key] = saved[key];
    }
  }
  return startTestBackend({
    features: [
      progressionPlugin,
      testJobGateModule,
      webhookGateModule,
      catalogServiceMock.factory({
        entities: [
          entity('payments-api', 'standard'),
          entity('web-shop', 'fast-lane'),
        ],
      }),
      mockServices.rootConfig.factory({
        data: {
          progression: data.progression,
          // A database of the test's own, not the demo's.
          backend: { baseUrl: 'http://localhost:7007' },
        },
      }),
    ],
  });
}

const environments = (server: any, name: string) =>
  request(server).get(
    `/api/progression/v1/entities/component/default/${name}/environments`,
  );

describe("the demo's app-config.yaml", () => {
  it('is a valid Progression configuration for this backend and its modules', async () => {
    delete process.env.PROGRESSION_PROMETHEUS_URL;
    const backend = await startDemoBackend({});
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

  it('reads Prometheus from PROGRESSION_PROMETHEUS_URL, and goes without it', async () => {
    const metrics = (server: any) =>
      request(server).get(
        '/api/progression/v1/entities/component/default/payments-api/metrics',
      );
    const without = await startDemoBackend({});
    try {
      expect((await metrics(without.server)).body.available).toBe(false);
    } finally {
      await without.stop();
    }
    const withUrl = await startDemoBackend({
      PROGRESSION_PROMETHEUS_URL: 'http://127.0.0.1:9',
    });
    try {
      expect((await metrics(withUrl.server)).body.available).toBe(true);
    } finally {
      await withUrl.stop();
    }
  });
});
