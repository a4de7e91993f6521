import { createBackend } from '@backstage/backend-defaults';
import { mockServices } from '@backstage/backend-test-utils';
import { catalogServiceMock } from '@backstage/plugin-catalog-node/testUtils';

// A minimal backend for working on this plugin alone: `yarn start` here, then
//   curl http://localhost:7007/api/progression/v1/entities/component/default/sample/environments
// (mock auth lets the request through without a token).

const backend = createBackend();

backend.add(mockServices.auth.factory());
backend.add(mockServices.httpAuth.factory());
backend.add(
  mockServices.rootConfig.factory({
    data: {
      backend: { baseUrl: 'http://localhost:7007', listen: { port: 7007 } },
      progression: {
        clusters: [{ name: 'local', url: 'http://127.0.0.1:6443' }],
        pipelines: {
          standard: {
            stages: [
              {
                name: 'development',
                cluster: 'local',
                namespace: 'development',
              },
              { name: 'staging', cluster: 'local', namespace: 'staging' },
              { name: 'production', cluster: 'local', namespace: 'production' },
            ],
          },
        },
      },
    },
  }),
);
backend.add(
  catalogServiceMock.factory({
    entities: [
      {
        apiVersion: 'backstage.io/v1alpha1',
        kind: 'Component',
        metadata: {
          name: 'sample',
          annotations: { 'progression.backstage.io/pipeline': 'standard' },
        },
        spec: { type: 'service', owner: 'guests' },
      },
    ],
  }),
);
backend.add(import('../src'));

backend.start();
