import { mockServices, startTestBackend } from '@backstage/backend-test-utils';
import { catalogServiceMock } from '@backstage/plugin-catalog-node/testUtils';
import { AuthorizeResult } from '@backstage/plugin-permission-common';
// The module is tested in the real Progression backend it extends.
// eslint-disable-next-line @backstage/no-mixed-plugin-imports
import progressionBackend from '@progression-io/backstage-plugin-progression-backend';
import { KubeSimulator, installDemo } from '@internal/kube-simulator';
import fs from 'node:fs';
import path from 'node:path';
import request from 'supertest';
import { parseAllDocuments } from 'yaml';
import progressionModuleTestJob from './index';
import { testJobName } from './TestJobGate';

/*
 * A test nobody waits for any more stops with its promotion: cancelled
 * while its test Job runs, the Job is deleted with its pods — under the
 * rules of docs/rbac.yaml, which the simulator enforces (the backend calls
 * it with the token of the ServiceAccount the file binds). A shutdown, by
 * contrast, leaves a Job running for the next holder to adopt (the
 * engine's durability tests). Through the REST API.
 */
jest.setTimeout(120_000);

const RBAC_FILE = path.resolve(__dirname, '../../../docs/rbac.yaml');

let sim: KubeSimulator;
let demo: Awaited<ReturnType<typeof installDemo>>;

beforeAll(async () => {
  // Test Jobs that run a minute: long enough to be cancelled while running.
  sim = await KubeSimulator.start({
    podReadyDelayMs: 20,
    jobRunMs: 60_000,
    rbac: true,
  });
  demo = await installDemo(sim, { anyPorts: true, trafficIntervalMs: 60_000 });
  sim.apply({
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: 'backstage' },
  });
  for (const doc of parseAllDocuments(fs.readFileSync(RBAC_FILE, 'utf8'))) {
    sim.apply(doc.toJS());
  }
});

afterAll(async () => {
  await demo?.stop();
  await sim?.stop();
});

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

it('deletes the running test Job and its pods when the promotion is cancelled, under the documented RBAC', async () => {
  const token = sim.serviceAccountToken('backstage', 'progression');
  const { server } = await startTestBackend({
    features: [
      progressionBackend,
      progressionModuleTestJob,
      catalogServiceMock.factory({ entities: [entity] }),
      mockServices.rootConfig.factory({
        data: {
          progression: {
            clusters: [
              {
                name: 'sim',
                url: sim.url,
                serviceAccountToken: token,
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
                    gates: {
                      testJob: {
                        image: 'grafana/k6:0.52.0',
                        command: ['k6', 'run', '/scripts/smoke.js'],
                        timeout: '5m',
                      },
                    },
                  },
                ],
              },
            },
          },
        },
      }),
      mockServices.permissions.factory({ result: AuthorizeResult.ALLOW }),
    ],
  });
  await request(server)
    .post(`${base}/releases`)
    .send({ version: '1.9.0', image: 'registry.local/payments-api:1.9.0' });
  const promoted = await request(server)
    .post(`${base}/promotions`)
    .send({ stage: 'development', version: '1.9.0' });
  expect(promoted.status).toBe(202);
  const id = promoted.body.id;
  const job = () => sim.store.get('jobs', 'development', testJobName(id));
  const pods = () =>
    sim.store
      .list('pods', 'development')
      .filter(p => p.metadata.labels?.['job-name'] === testJobName(id));
  for (let i = 0; i < 2000 && pods().length === 0; i++) {
    await new Promise(r => setTimeout(r, 20));
  }
  expect(job()).toBeDefined();
  expect(pods()).not.toHaveLength(0);

  const cancel = await request(server).post(
    `/api/progression/v1/promotions/${id}/cancel`,
  );
  expect(cancel.status).toBe(202);
  let ended: any;
  for (let i = 0; i < 2000; i++) {
    ended = (await request(server).get(`/api/progression/v1/promotions/${id}`))
      .body;
    if (
      ['rolled-back', 'cancelled', 'failed'].includes(ended.promotion.state)
    ) {
      break;
    }
    await new Promise(r => setTimeout(r, 25));
  }
  // The deploy is undone; the test it was waiting for stops too.
  expect(ended.promotion.state).toBe('rolled-back');
  for (let i = 0; i < 2000 && (job() || pods().length); i++) {
    await new Promise(r => setTimeout(r, 20));
  }
  expect(job()).toBeUndefined();
  expect(pods()).toEqual([]);
  // Deleted by the account of docs/rbac.yaml, allowed by its rules.
  expect(
    sim.access.filter(a => a.verb === 'delete' && a.resource === 'jobs'),
  ).toEqual([
    expect.objectContaining({
      namespace: 'development',
      name: testJobName(id),
      allowed: true,
    }),
  ]);
  expect(sim.access.filter(a => !a.allowed)).toEqual([]);
  // No result of the cancelled test was recorded as the gate's.
  expect(
    ended.steps.filter((s: any) => s.kind === 'gate' && s.name === 'testJob'),
  ).toEqual([]);
});
