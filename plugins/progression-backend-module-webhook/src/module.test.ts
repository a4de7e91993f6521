import { mockServices, startTestBackend } from '@backstage/backend-test-utils';
import { catalogServiceMock } from '@backstage/plugin-catalog-node/testUtils';
// The module is tested in the real Progression backend it extends.
// eslint-disable-next-line @backstage/no-mixed-plugin-imports
import progressionBackend from '@progression-io/backstage-plugin-progression-backend';
import request from 'supertest';
import progressionModuleWebhook from './index';

/*
 * The module in a real backend next to the Progression plugin: the gate
 * arrives through the extension point only, and the plugin reads its
 * section of the config with it.
 */

const webhook = [
  { name: 'change-freeze', url: 'https://hooks.example.com/confirm' },
  {
    name: 'after-deploy',
    url: 'https://hooks.example.com/verified',
    phase: 'verification',
  },
];

const progression = (gates: object) => ({
  clusters: [{ name: 'local', url: 'http://127.0.0.1:6443' }],
  pipelines: {
    standard: {
      stages: [
        { name: 'development', cluster: 'local', namespace: 'development' },
        {
          name: 'staging',
          cluster: 'local',
          namespace: 'staging',
          gates,
        },
      ],
    },
  },
});

const catalog = catalogServiceMock.factory({
  entities: [
    {
      apiVersion: 'backstage.io/v1alpha1',
      kind: 'Component',
      metadata: {
        name: 'web-shop',
        annotations: { 'progression.backstage.io/pipeline': 'standard' },
      },
      spec: { type: 'website', owner: 'team-web' },
    },
  ],
});

it('adds the webhook gate to Progression through the extension point', async () => {
  const { server } = await startTestBackend({
    features: [
      progressionBackend,
      progressionModuleWebhook,
      catalog,
      mockServices.rootConfig.factory({
        data: { progression: progression({ webhook }) },
      }),
    ],
  });
  const res = await request(server).get(
    '/api/progression/v1/entities/component/default/web-shop/environments',
  );
  expect(res.status).toBe(200);
  expect(
    res.body.pipeline.stages.map((s: any) => [s.name, s.configuredGates]),
  ).toEqual([
    ['development', []],
    [
      'staging',
      [
        { gate: 'webhook', phase: 'preflight' },
        { gate: 'webhook', phase: 'verification' },
      ],
    ],
  ]);
});

it('stops the backend from starting with a broken webhook, naming the key', async () => {
  await expect(
    startTestBackend({
      features: [
        progressionBackend,
        progressionModuleWebhook,
        catalog,
        mockServices.rootConfig.factory({
          data: {
            progression: progression({
              webhook: [webhook[0], { ...webhook[1], phase: 'rollback' }],
            }),
          },
        }),
      ],
    }),
  ).rejects.toThrow(
    "Invalid Progression configuration at 'progression.pipelines.standard.stages[1].gates.webhook[1].phase': 'rollback' is not one of preflight, predeploy, verification",
  );
});

it('is what makes the webhook section valid: without the module it is refused', async () => {
  await expect(
    startTestBackend({
      features: [
        progressionBackend,
        catalog,
        mockServices.rootConfig.factory({
          data: { progression: progression({ webhook }) },
        }),
      ],
    }),
  ).rejects.toThrow(
    "Invalid Progression configuration at 'progression.pipelines.standard.stages[1].gates.webhook': no gate 'webhook' is installed",
  );
});
