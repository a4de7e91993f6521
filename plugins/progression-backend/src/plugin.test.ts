import {
  mockCredentials,
  mockServices,
  startTestBackend,
} from '@backstage/backend-test-utils';
import { catalogServiceMock } from '@backstage/plugin-catalog-node/testUtils';
import request from 'supertest';
import { progressionPlugin } from './plugin';

const progression = {
  clusters: [{ name: 'local', url: 'http://127.0.0.1:6443' }],
  pipelines: {
    standard: {
      stages: [
        { name: 'development', cluster: 'local', namespace: 'development' },
        { name: 'production', cluster: 'local', namespace: 'production' },
      ],
    },
  },
};

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

describe('progressionPlugin', () => {
  it('serves the environments of an entity under /api/progression', async () => {
    const { server } = await startTestBackend({
      features: [
        progressionPlugin,
        catalog,
        mockServices.rootConfig.factory({ data: { progression } }),
      ],
    });

    const res = await request(server).get(
      '/api/progression/v1/entities/component/default/web-shop/environments',
    );
    expect(res.status).toBe(200);
    expect(res.body.kubernetesId).toBe('web-shop');
    expect(res.body.pipeline.stages.map((s: any) => s.name)).toEqual([
      'development',
      'production',
    ]);

    // Its permissions are registered for policies and the permission UI.
    const metadata = await request(server).get(
      '/api/progression/.well-known/backstage/permissions/metadata',
    );
    expect(metadata.body.permissions.map((p: any) => p.name)).toEqual(
      expect.arrayContaining([
        'progression.promotion.create',
        'progression.promotion.approve',
        'progression.rollback',
      ]),
    );

    const anonymous = await request(server)
      .get(
        '/api/progression/v1/entities/component/default/web-shop/environments',
      )
      .set('Authorization', mockCredentials.none.header());
    expect(anonymous.status).toBe(401);
  });

  it('refuses to start with a broken pipeline, naming the bad key', async () => {
    await expect(
      startTestBackend({
        features: [
          progressionPlugin,
          catalog,
          mockServices.rootConfig.factory({
            data: {
              progression: {
                ...progression,
                pipelines: {
                  standard: {
                    stages: [
                      {
                        name: 'development',
                        cluster: 'eu-1',
                        namespace: 'dev',
                      },
                    ],
                  },
                },
              },
            },
          }),
        ],
      }),
    ).rejects.toThrow(
      "Invalid Progression configuration at 'progression.pipelines.standard.stages[0].cluster': unknown cluster 'eu-1'; configured clusters: local",
    );
  });
});
