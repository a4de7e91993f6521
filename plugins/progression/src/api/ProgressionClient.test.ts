import { registerMswTestHooks } from '@backstage/frontend-test-utils';
import { http, HttpResponse } from 'msw';
import { setupServer } from 'msw/node';
import { ProgressionClient } from './ProgressionClient';

describe('ProgressionClient', () => {
  const server = setupServer();
  registerMswTestHooks(server);

  const client = new ProgressionClient({
    discoveryApi: {
      getBaseUrl: async pluginId => `http://backstage.test/api/${pluginId}`,
    },
    fetchApi: { fetch: (input, init) => fetch(input, init) },
  });

  it('reads the environments of an entity', async () => {
    server.use(
      http.get(
        'http://backstage.test/api/progression/v1/entities/component/default/payments-api/environments',
        () =>
          HttpResponse.json({
            entityRef: 'component:default/payments-api',
            kubernetesId: 'payments-api',
            pipeline: { name: 'standard', title: 'standard', stages: [] },
          }),
      ),
    );
    const result = await client.getEnvironments({
      kind: 'component',
      namespace: 'default',
      name: 'payments-api',
    });
    expect(result.pipeline.name).toBe('standard');
  });

  it('encodes each part of the entity reference', async () => {
    let requested = '';
    server.use(
      http.get('http://backstage.test/api/progression/*', ({ request }) => {
        requested = new URL(request.url).pathname;
        return HttpResponse.json({});
      }),
    );
    await client.getEnvironments({
      kind: 'component',
      namespace: 'default',
      name: 'a/../b?c',
    });
    expect(requested).toBe(
      '/api/progression/v1/entities/component/default/a%2F..%2Fb%3Fc/environments',
    );
  });

  it("throws the backend's error with its message", async () => {
    server.use(
      http.get('http://backstage.test/api/progression/*', () =>
        HttpResponse.json(
          {
            error: {
              name: 'NotFoundError',
              message: 'component:default/x does not use Progression',
            },
            request: { method: 'GET', url: '/x' },
            response: { statusCode: 404 },
          },
          { status: 404 },
        ),
      ),
    );
    await expect(
      client.getEnvironments({
        kind: 'component',
        namespace: 'default',
        name: 'x',
      }),
    ).rejects.toMatchObject({
      name: 'ResponseError',
      statusCode: 404,
      body: {
        error: { message: 'component:default/x does not use Progression' },
      },
    });
  });
});
