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
import {
  createTestRouter,
  createTestStore,
} from '../__testUtils__/createTestRouter';

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

describe("a reader's catalog lookups", () => {
  // The catalog is the in-memory one; only its answers are held back, to
  // see which reads wait for a lookup and how many lookups there are.
  const inner = catalogServiceMock({ entities });
  let lookups = 0;
  let release: () => void = () => undefined;
  let held = Promise.resolve();
  let gone = false;
  const hold = () => {
    held = new Promise<void>(r => {
      release = r;
    });
  };
  const catalog = new Proxy(inner, {
    get(target, prop) {
      if (prop === 'getEntityByRef') {
        return async (...args: Parameters<typeof inner.getEntityByRef>) => {
          lookups++;
          await held;
          return gone ? undefined : inner.getEntityByRef(...args);
        };
      }
      const value = Reflect.get(target, prop);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  // The half-time check reads Date.now; the cache's own expiry (a minute)
  // runs on the real clock and does not come in this test.
  const realNow = Date.now.bind(Date);
  let offsetMs = 0;
  let server: Server;

  beforeAll(async () => {
    jest.spyOn(Date, 'now').mockImplementation(() => realNow() + offsetMs);
    const router = await createTestRouter({
      catalog,
      config: readTestConfig(
        new ConfigReader({
          progression: {
            clusters: [{ name: 'local', url: 'http://127.0.0.1:6443' }],
            pipelines: {
              standard: {
                stages: [
                  { name: 'staging', cluster: 'local', namespace: 'staging' },
                ],
              },
            },
            entityCacheTtl: '60s',
          },
        }),
      ),
    });
    server = await wrapServerOnIPv4(
      express().use(router).use(mockErrorHandler()),
    );
  });

  afterAll(() => jest.restoreAllMocks());

  const releases = () =>
    request(server).get('/v1/entities/component/default/payments-api/releases');

  it('reads that miss together share one lookup', async () => {
    hold();
    const reads = Array.from({ length: 10 }, () => releases().then(r => r));
    await new Promise(r => setTimeout(r, 200));
    expect(lookups).toBe(1);
    release();
    const answers = await Promise.all(reads);
    expect(answers.map(r => r.status)).toEqual(Array(10).fill(200));
    expect(lookups).toBe(1);
    expect((await releases()).status).toBe(200);
    expect(lookups).toBe(1);
  });

  it('after half the time, a read starts the next lookup and does not wait for it', async () => {
    hold();
    offsetMs = 31_000;
    // The catalog does not answer: these reads are served what was read.
    expect((await releases()).status).toBe(200);
    expect((await releases()).status).toBe(200);
    expect(lookups).toBe(2);
    release();
  });

  it('an entity the next lookup does not find is forgotten: the read after is 404', async () => {
    offsetMs = 62_000;
    hold();
    gone = true;
    // Served from the lookup before, while the next one is on its way.
    expect((await releases()).status).toBe(200);
    expect(lookups).toBe(3);
    release();
    await held;
    await new Promise(r => setTimeout(r, 50));
    const res = await releases();
    expect(res.status).toBe(404);
    expect(res.body.error.name).toBe('NotFoundError');
    expect(lookups).toBe(4);
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

/**
 * A promotion of payments-api's `version` into staging that ended `state`
 * now; `deployed` records the image patch first (a deployment).
 */
async function endInStaging(
  store: Awaited<ReturnType<typeof createTestStore>>,
  version: string,
  state: 'succeeded' | 'rolled-back' | 'failed',
  deployed: boolean,
) {
  const entityRef = 'component:default/payments-api';
  const { release } = await store.registerRelease({
    entityRef,
    version,
    image: `registry.local/payments-api:${version}`,
    committedAt: '2026-01-01T00:00:00Z',
    createdBy: 'user:default/ci',
  });
  const { promotion } = await store.createPromotion({
    entityRef,
    pipeline: 'standard',
    stage: 'staging',
    releaseId: release.id,
    requestedBy: 'user:default/jane',
  });
  if (deployed) {
    await store.addStep(promotion.id, {
      kind: 'deploy',
      name: 'patch',
      status: 'started',
    });
  }
  await store.transition(promotion.id, 'pending', state, {
    kind: 'transition',
    name: 'test',
    status: 'passed',
  });
}

describe('GET /v1/entities/{kind}/{namespace}/{name}/insights', () => {
  let server: Server;

  beforeAll(async () => {
    const store = await createTestStore();
    // Today: one deployment into staging that succeeded, one that was
    // deployed and rolled back, and one that failed before its deploy.
    const outcomes = [
      ['1.0.0', 'succeeded', true],
      ['1.1.0', 'rolled-back', true],
      ['1.2.0', 'failed', false],
    ] as const;
    for (const [version, state, deployed] of outcomes) {
      await endInStaging(store, version, state, deployed);
    }
    const router = await createTestRouter({
      catalog: catalogServiceMock({ entities }),
      config,
      store,
    });
    // Every response is checked against src/schema/openapi.yaml.
    server = await wrapServerOnIPv4(
      express().use(router).use(mockErrorHandler()),
    );
  });

  const insights = (ref: string, query = '') =>
    request(server).get(`/v1/entities/${ref}/insights${query}`);

  it("answers each stage's figures with their counts, as the contract says", async () => {
    const res = await insights('component/default/payments-api', '?range=7d');
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      entityRef: 'component:default/payments-api',
      range: '7d',
      days: 7,
    });
    // The range is whole UTC days, today included.
    const from = new Date(res.body.from);
    expect(from.getUTCHours() + from.getUTCMinutes()).toBe(0);
    expect(Date.parse(res.body.to) - from.getTime()).toBeGreaterThanOrEqual(
      6 * 86_400_000,
    );
    expect(res.body.stages.map((s: { stage: string }) => s.stage)).toEqual([
      'development',
      'staging',
      'production',
    ]);
    const [development, staging] = res.body.stages;
    expect(development).toMatchObject({
      title: 'development',
      deployments: { count: 0, succeeded: 0, failed: 0, perDay: 0 },
      leadTime: { count: 0, fromCommit: 0, medianMs: null, p90Ms: null },
      changeFailureRate: { failed: 0, deployments: 0, rate: null },
      timeToRestore: { incidents: 0, restored: 0, open: 0, medianMs: null },
    });
    // The failure before the deploy is no deployment.
    expect(staging).toMatchObject({
      deployments: { count: 2, succeeded: 1, failed: 1, perDay: 2 / 7 },
      leadTime: { count: 1, fromCommit: 1 },
      changeFailureRate: { failed: 1, deployments: 2, rate: 0.5 },
      // The rollback ended last: the stage has not been restored since.
      timeToRestore: { incidents: 1, restored: 0, open: 1, medianMs: null },
    });
    // From the commit time given at registration, well in the past.
    expect(staging.leadTime.medianMs).toBeGreaterThan(0);
    expect(staging.leadTime.p90Ms).toBe(staging.leadTime.medianMs);
    expect(staging.daily).toHaveLength(7);
    expect(staging.daily[6]).toMatchObject({
      date: new Date().toISOString().slice(0, 10),
      deployments: 2,
      failed: 1,
      leadTimeMedianMs: staging.leadTime.medianMs,
      restoreMedianMs: null,
    });
    expect(staging.daily[0]).toEqual({
      date: res.body.from.slice(0, 10),
      deployments: 0,
      failed: 0,
      leadTimeMedianMs: null,
      restoreMedianMs: null,
    });
  });

  it('reads 30 days by default', async () => {
    const res = await insights('component/default/payments-api');
    expect(res.status).toBe(200);
    expect(res.body.range).toBe('30d');
    expect(res.body.stages[1].daily).toHaveLength(30);
  });

  it.each(['1d', '30', '365d', '30d;drop'])(
    'is 400 for the range %p',
    async range => {
      const res = await insights(
        'component/default/payments-api',
        `?range=${encodeURIComponent(range)}`,
      );
      expect(res.status).toBe(400);
      expect(res.body.error.name).toBe('InputError');
    },
  );

  it('is 401 without credentials, 404 for an entity that is not there or does not use Progression', async () => {
    const anonymous = await insights('component/default/payments-api').set(
      'Authorization',
      mockCredentials.none.header(),
    );
    expect(anonymous.status).toBe(401);
    expect((await insights('component/default/nope')).status).toBe(404);
    expect((await insights('component/default/legacy-batch')).status).toBe(404);
  });

  it('shows a promotion that ended through another replica after a second, and computes nothing again while none ends', async () => {
    const store = await createTestStore();
    const router = await createTestRouter({
      catalog: catalogServiceMock({ entities }),
      config,
      store,
    });
    const app = await wrapServerOnIPv4(
      express().use(router).use(mockErrorHandler()),
    );
    const computed = jest.spyOn(store, 'deliveryInsights');
    const read = () =>
      request(app).get('/v1/entities/component/default/payments-api/insights');
    const first = await read();
    expect(first.status).toBe(200);
    expect(first.body.stages[1].deployments.count).toBe(0);
    expect(computed).toHaveBeenCalledTimes(1);
    // The same answer again: a client that has it is told so.
    const again = await read().set('If-None-Match', first.headers.etag);
    expect(again.status).toBe(304);

    // Past the second, nothing ended: checked, not computed, `to` moved on.
    // The figures are the same, and so is the (weak) ETag: a client that
    // holds them is still told so.
    await new Promise(r => setTimeout(r, 1100));
    const unchanged = await read();
    expect(unchanged.body.stages).toEqual(first.body.stages);
    expect(Date.parse(unchanged.body.to)).toBeGreaterThan(
      Date.parse(first.body.to),
    );
    expect(unchanged.headers.etag).toBe(first.headers.etag);
    await new Promise(r => setTimeout(r, 1100));
    expect((await read().set('If-None-Match', first.headers.etag)).status).toBe(
      304,
    );
    expect(computed).toHaveBeenCalledTimes(1);

    // Another replica (the store, not this router) ends a deployment.
    await endInStaging(store, '2.0.0', 'succeeded', true);
    await new Promise(r => setTimeout(r, 1100));
    const moved = await read();
    expect(moved.body.stages[1].deployments).toMatchObject({
      count: 1,
      succeeded: 1,
    });
    expect(computed).toHaveBeenCalledTimes(2);
    // New figures, a new ETag: the old one is answered in full.
    expect(moved.headers.etag).not.toBe(first.headers.etag);
    expect((await read().set('If-None-Match', first.headers.etag)).status).toBe(
      200,
    );
  });

  it('answers a store failure on the read 500 with only a log id, and the next read computes again', async () => {
    const store = await createTestStore();
    const router = await createTestRouter({
      catalog: catalogServiceMock({ entities }),
      config,
      store,
    });
    const app = express().use(router).use(mockErrorHandler());
    const computed = jest
      .spyOn(store, 'deliveryInsights')
      .mockRejectedValueOnce(
        new Error('SQLITE_BUSY: select * from progression_promotions'),
      );
    const read = () =>
      request(app).get('/v1/entities/component/default/payments-api/insights');
    const failed = await read();
    expect(failed.status).toBe(500);
    expect(failed.body.error.message).toMatch(
      /^An internal error occurred \(logId=[0-9a-f]{16}\)$/,
    );
    expect(JSON.stringify(failed.body)).not.toMatch(/SQLITE|select/);
    // The failed answer is not kept.
    const next = await read();
    expect(next.status).toBe(200);
    expect(next.body.stages).toHaveLength(3);
    expect(computed).toHaveBeenCalledTimes(2);
  });

  it('takes the commit time of a release at registration, and refuses one it cannot use', async () => {
    const post = (body: object) =>
      request(server)
        .post('/v1/entities/component/default/payments-api/releases')
        .send({ image: 'registry.local/payments-api:2.0.0', ...body });
    const created = await post({
      version: '2.0.0',
      committedAt: '2026-01-02T10:00:00+01:00',
    });
    expect(created.status).toBe(201);
    expect(created.body.committedAt).toBe('2026-01-02T09:00:00.000Z');
    // Without a time zone, not a date, or from a clock far ahead: 400.
    for (const committedAt of [
      '2026-01-02T10:00:00',
      'yesterday',
      new Date(Date.now() + 3_600_000).toISOString(),
    ]) {
      const refused = await post({ version: '2.0.1', committedAt });
      expect(refused.status).toBe(400);
    }
  });
});
