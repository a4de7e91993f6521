import {
  mockCredentials,
  mockErrorHandler,
} from '@backstage/backend-test-utils';
import { ConfigReader } from '@backstage/config';
import { Entity } from '@backstage/catalog-model';
import { catalogServiceMock } from '@backstage/plugin-catalog-node/testUtils';
import express from 'express';
import request from 'supertest';
import { Server } from 'node:http';
import { readTestConfig } from '../__testUtils__/readTestConfig';
import { wrapServerOnIPv4 } from '../__testUtils__/wrapServerOnIPv4';
import { createTestRouter } from '../__testUtils__/createTestRouter';

const entities: Entity[] = [
  {
    apiVersion: 'backstage.io/v1alpha1',
    kind: 'Component',
    metadata: {
      name: 'payments-api',
      annotations: {
        'progression.backstage.io/pipeline': 'standard',
        'backstage.io/kubernetes-id': 'payments',
      },
    },
    spec: { type: 'service', owner: 'team-payments' },
  },
  {
    apiVersion: 'backstage.io/v1alpha1',
    kind: 'Component',
    metadata: {
      name: 'narrowed',
      annotations: {
        'progression.backstage.io/pipeline': 'standard',
        'progression.backstage.io/url.development':
          'http://narrowed.development.localhost/v2',
        'progression.backstage.io/url.staging': 'http://169.254.169.254/',
      },
    },
    spec: { type: 'service', owner: 'team-payments' },
  },
  {
    apiVersion: 'backstage.io/v1alpha1',
    kind: 'Component',
    metadata: { name: 'legacy-batch' },
    spec: { type: 'service', owner: 'team-payments' },
  },
  {
    apiVersion: 'backstage.io/v1alpha1',
    kind: 'Component',
    metadata: {
      name: 'lost',
      namespace: 'other',
      annotations: { 'progression.backstage.io/pipeline': 'nonexistent' },
    },
    spec: { type: 'service', owner: 'team-payments' },
  },
];

const config = readTestConfig(
  new ConfigReader({
    progression: {
      clusters: [{ name: 'local', url: 'http://127.0.0.1:6443' }],
      pipelines: {
        standard: {
          title: 'Standard',
          stages: [
            {
              name: 'development',
              cluster: 'local',
              namespace: 'development',
              url: 'http://{{ kubernetesId }}.development.localhost',
            },
            { name: 'staging', cluster: 'local', namespace: 'staging' },
            { name: 'production', cluster: 'local', namespace: 'production' },
          ],
        },
      },
    },
  }),
);

describe('createRouter', () => {
  let server: Server;

  beforeAll(async () => {
    const router = await createTestRouter({
      catalog: catalogServiceMock({ entities }),
      config,
    });
    const app = express().use(router).use(mockErrorHandler());
    // Every response below is checked against src/schema/openapi.yaml.
    server = await wrapServerOnIPv4(app);
  });

  const url = (ref: string) => `/v1/entities/${ref}/environments`;

  it('returns the pipeline and its stages in order', async () => {
    const res = await request(server).get(
      url('component/default/payments-api'),
    );
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      entityRef: 'component:default/payments-api',
      kubernetesId: 'payments',
      pipeline: {
        name: 'standard',
        title: 'Standard',
        stages: [
          {
            name: 'development',
            title: 'development',
            cluster: 'local',
            namespace: 'development',
            url: 'http://payments.development.localhost',
            configuredGates: [],
          },
          {
            name: 'staging',
            title: 'staging',
            cluster: 'local',
            namespace: 'staging',
            configuredGates: [],
          },
          {
            name: 'production',
            title: 'production',
            cluster: 'local',
            namespace: 'production',
            configuredGates: [],
          },
        ],
      },
    });
  });

  it('takes a URL override that keeps the configured origin, and says why it ignores one that does not', async () => {
    const res = await request(server).get(url('component/default/narrowed'));
    expect(res.status).toBe(200);
    const [development, staging] = res.body.pipeline.stages;
    expect(development.url).toBe('http://narrowed.development.localhost/v2');
    expect(staging.url).toBeUndefined();
    expect(staging.urlOverrideIgnored).toMatch(/no configured url/);
  });

  it('treats the kind case-insensitively, as the catalog does', async () => {
    const res = await request(server).get(
      url('Component/default/payments-api'),
    );
    expect(res.status).toBe(200);
  });

  it('is 401 without credentials', async () => {
    const res = await request(server)
      .get(url('component/default/payments-api'))
      .set('Authorization', mockCredentials.none.header());
    expect(res.status).toBe(401);
    expect(res.body.error.name).toBe('AuthenticationError');
  });

  it('is 404 for an entity that is not in the catalog', async () => {
    const res = await request(server).get(url('component/default/nope'));
    expect(res.status).toBe(404);
    expect(res.body.error.message).toBe(
      "No entity 'component:default/nope' in the catalog",
    );
  });

  it('is 404 with how to opt in for an entity that does not use Progression', async () => {
    const res = await request(server).get(
      url('component/default/legacy-batch'),
    );
    expect(res.status).toBe(404);
    expect(res.body.error.message).toContain(
      "component:default/legacy-batch does not use Progression: add the annotation 'progression.backstage.io/pipeline: <pipeline>'",
    );
  });

  it('is 404 naming the configured pipelines for an unknown pipeline', async () => {
    const res = await request(server).get(url('component/other/lost'));
    expect(res.status).toBe(404);
    expect(res.body.error.message).toContain(
      "uses pipeline 'nonexistent', which is not configured; configured pipelines: standard",
    );
  });

  it.each([
    ['a kind with a dot', 'comp.onent/default/payments-api'],
    ['a namespace with an underscore', 'component/de_fault/payments-api'],
    ['a name with a space', 'component/default/pay%20ments'],
    ['a name with a quote', "component/default/pay'ments"],
    ['a name that is too long', `component/default/${'a'.repeat(64)}`],
    ['a name ending in a dash', 'component/default/payments-'],
  ])('is 400 for %s', async (_, ref) => {
    const res = await request(server).get(url(ref));
    expect(res.status).toBe(400);
    expect(res.body.error.name).toBe('InputError');
    expect(res.body.error.message).toMatch(
      /must match pattern|must NOT have more/,
    );
  });
});

describe('POST /v1/validate', () => {
  let server: Server;

  beforeAll(async () => {
    const router = await createTestRouter({
      catalog: catalogServiceMock({ entities }),
      config,
    });
    server = await wrapServerOnIPv4(
      express().use(router).use(mockErrorHandler()),
    );
  });

  const validate = (entity: unknown) =>
    request(server).post('/v1/validate').send({ entity });

  it('says an entity with a configured pipeline is ready, and warns of a defaulted label', async () => {
    const res = await validate({
      metadata: {
        name: 'orders-api',
        annotations: { 'progression.backstage.io/pipeline': 'standard' },
      },
    });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      valid: true,
      pipeline: 'standard',
      stages: ['development', 'staging', 'production'],
      kubernetesId: 'orders-api',
      problems: [],
      warnings: [expect.stringContaining('(the entity name)')],
    });
  });

  it('lists every problem: no or an unknown pipeline, a bad workload label', async () => {
    const none = await validate({ metadata: { name: 'orders-api' } });
    expect(none.body.valid).toBe(false);
    expect(none.body.problems).toEqual([
      "the entity has no progression.backstage.io/pipeline annotation; add one naming a pipeline (configured pipelines: 'standard')",
    ]);
    const unknown = await validate({
      metadata: {
        name: 'orders-api',
        annotations: {
          'progression.backstage.io/pipeline': 'nope',
          'backstage.io/kubernetes-id': 'bad label!',
        },
      },
    });
    expect(unknown.body.problems).toEqual([
      expect.stringContaining(
        "'bad label!' is not a valid Kubernetes label value",
      ),
      "pipeline 'nope' is not configured; configured pipelines: 'standard'",
    ]);
  });

  it('is 400 for something that is not an entity, and 401 without credentials', async () => {
    expect((await validate({ kind: 'Component' })).status).toBe(400);
    expect(
      (await request(server).post('/v1/validate').send({ entity: {}, x: 1 }))
        .status,
    ).toBe(400);
    const anonymous = await request(server)
      .post('/v1/validate')
      .set('Authorization', mockCredentials.none.header())
      .send({ entity: { metadata: { name: 'a' } } });
    expect(anonymous.status).toBe(401);
  });
});
