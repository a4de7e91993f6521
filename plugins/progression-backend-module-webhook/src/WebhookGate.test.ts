import { mockServices } from '@backstage/backend-test-utils';
import { ConfigReader } from '@backstage/config';
import { JsonObject, JsonValue } from '@backstage/types';
import {
  GateContext,
  ProgressionConfigError,
  StageConfig,
} from '@progression-io/backstage-plugin-progression-node';
import http from 'node:http';
import { AddressInfo } from 'node:net';
import {
  WebhookGate,
  WebhookGateConfig,
  WebhookGateEvidence,
  WebhookPayload,
} from './WebhookGate';

/*
 * Config reading, and calls against a real HTTP server on 127.0.0.1 that
 * answers as each test tells it to.
 */

const STAGE = 'progression.pipelines.standard.stages[1]';
const SECRET = 'Bearer hook-secret-4711';
const QUERY_SECRET = 'query-token-0815';

const policy: Omit<StageConfig, 'gates'> = {
  name: 'staging',
  title: 'Staging',
  cluster: 'local',
  namespace: 'staging',
  url: 'http://staging.example/{{ kubernetesId }}',
  autoPromote: false,
  approval: {
    required: false,
    approvers: [],
    minApprovals: 1,
    allowSelfApproval: false,
  },
  soakMs: 0,
  rollback: { automatic: true },
  rolloutTimeoutMs: 600_000,
  readyTimeoutMs: 60_000,
  deploy: { kind: 'kubernetes', config: undefined },
  flags: { configMap: 'feature-flags', key: 'flags.json' },
};

function read(webhook: JsonValue, gate = new WebhookGate()) {
  return gate.readConfig(new ConfigReader({ gates: { webhook } }), {
    path: STAGE,
    policy,
  });
}

function errorOf(fn: () => unknown): ProgressionConfigError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ProgressionConfigError) return e;
    throw e;
  }
  throw new Error('expected a ProgressionConfigError');
}

describe('reading gates.webhook', () => {
  it('reads one webhook object with its defaults', () => {
    expect(
      read({ name: 'change-freeze', url: 'https://hooks.example.com/confirm' }),
    ).toEqual([
      {
        name: 'change-freeze',
        url: 'https://hooks.example.com/confirm',
        phase: 'preflight',
        timeoutMs: 10_000,
        headers: {},
      },
    ]);
  });

  it('reads a list, and runs in the phases its webhooks name, in promotion order', () => {
    const gate = new WebhookGate();
    const config = read(
      [
        {
          name: 'after-deploy',
          url: 'http://hooks.local:8080/verified?team=payments',
          phase: 'verification',
          timeout: '2m',
          headers: { Authorization: SECRET, 'X-Attempt': 1 },
        },
        {
          name: 'change-freeze',
          url: 'https://hooks.example.com/confirm',
        },
      ],
      gate,
    )!;
    expect(config.map(h => [h.name, h.phase, h.timeoutMs])).toEqual([
      ['after-deploy', 'verification', 120_000],
      ['change-freeze', 'preflight', 10_000],
    ]);
    expect(config[0].headers).toEqual({
      Authorization: SECRET,
      'X-Attempt': '1',
    });
    expect(gate.phasesOf(config)).toEqual(['preflight', 'verification']);
  });

  it('is off when the stage has no gates.webhook', () => {
    expect(
      new WebhookGate().readConfig(new ConfigReader({}), {
        path: STAGE,
        policy,
      }),
    ).toBeUndefined();
  });

  const hook = { name: 'change-freeze', url: 'https://hooks.example.com/c' };
  it.each<[string, JsonValue, string]>([
    ['an empty list', [], ''],
    ['a string', 'https://hooks.example.com/c', ''],
    ['a list item that is no object', [hook, 'https://x.example'], '[1]'],
    ['an unknown key', { ...hook, method: 'GET' }, '.method'],
    ['no name', { url: hook.url }, '.name'],
    ['a name that is no label', { ...hook, name: 'Change Freeze' }, '.name'],
    ['no url', { name: 'change-freeze' }, '.url'],
    ['a url that is no URL', { ...hook, url: 'hooks/confirm' }, '.url'],
    ['a url that is not http(s)', { ...hook, url: 'ftp://h.example/' }, '.url'],
    ['a phase that does not exist', { ...hook, phase: 'rollback' }, '.phase'],
    ['a timeout above 2m', { ...hook, timeout: '3m' }, '.timeout'],
    ['a timeout of 0', { ...hook, timeout: '0s' }, '.timeout'],
    ['a timeout that is no duration', { ...hook, timeout: 'soon' }, '.timeout'],
    ['headers that are no map', { ...hook, headers: ['a'] }, '.headers'],
    [
      'a header name with a space',
      { ...hook, headers: { 'Bad Header': 'x' } },
      '.headers.Bad Header',
    ],
    [
      'a Content-Type header',
      { ...hook, headers: { 'content-type': 'text/plain' } },
      '.headers.content-type',
    ],
    [
      'a header value beyond Latin-1',
      { ...hook, headers: { Authorization: 'Bearer tok€n' } },
      '.headers.Authorization',
    ],
    [
      'a header value that is no string',
      { ...hook, headers: { 'X-Team': { name: 'payments' } } },
      '.headers.X-Team',
    ],
  ])('refuses %s, naming the key', (_what, webhook, key) => {
    expect(errorOf(() => read(webhook)).key).toBe(
      `${STAGE}.gates.webhook${key}`,
    );
  });

  it('names the second of two webhooks with the same name', () => {
    expect(
      errorOf(() => read([hook, { ...hook, url: 'https://other.example/' }]))
        .key,
    ).toBe(`${STAGE}.gates.webhook[1].name`);
  });

  it('refuses credentials in the url and header values with line breaks without repeating them', () => {
    const inUrl = errorOf(() =>
      read({ ...hook, url: 'https://ci:s3cr3t-pass@hooks.example.com/c' }),
    );
    expect(inUrl.key).toBe(`${STAGE}.gates.webhook.url`);
    expect(inUrl.message).toContain('put them in headers');
    expect(inUrl.message).not.toContain('s3cr3t-pass');

    const broken = errorOf(() =>
      read({ ...hook, headers: { Authorization: 'Bearer abc\r\nX-Evil: 1' } }),
    );
    expect(broken.key).toBe(`${STAGE}.gates.webhook.headers.Authorization`);
    expect(broken.message).not.toContain('abc');
  });
});

describe('running the webhook gate', () => {
  type Received = {
    method?: string;
    url?: string;
    headers: http.IncomingHttpHeaders;
    body: string;
  };
  let server: http.Server;
  let base: string;
  let received: Received[] = [];
  let answer: (
    req: http.IncomingMessage,
    res: http.ServerResponse,
  ) => void = () => undefined;

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', c => chunks.push(c));
      req.on('end', () => {
        received.push({
          method: req.method,
          url: req.url,
          headers: req.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        });
        answer(req, res);
      });
    });
    await new Promise<void>(resolve =>
      server.listen(0, '127.0.0.1', () => resolve()),
    );
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterEach(() => {
    received = [];
  });

  afterAll(async () => {
    // Keep-alive connections and the answers tests left hanging.
    server.closeAllConnections();
    await new Promise(resolve => server.close(resolve));
  });

  const results: GateContext['results'] = [
    {
      gate: 'isolation',
      phase: 'preflight',
      status: 'passed',
      reason: 'staging admits no traffic from other environments',
      evidence: { policies: ['default-deny-ingress'] },
      startedAt: '2025-01-01T00:00:00.000Z',
      finishedAt: '2025-01-01T00:00:01.000Z',
    },
  ];

  function context(
    config: WebhookGateConfig,
    extra: Partial<GateContext> = {},
  ): GateContext {
    return {
      stage: { ...policy, gates: { webhook: config } },
      stageUrl: 'http://staging.example/payments-api',
      entity: {
        entityRef: 'component:default/payments-api',
        name: 'payments-api',
        namespace: 'default',
        kubernetesId: 'payments-api',
      },
      release: {
        id: 'rel-1',
        version: '1.5.0',
        image: 'registry.local/payments-api:1.5.0',
      },
      promotionId: '6f1c2d3e-0000-4000-8000-000000000001',
      results,
      ...extra,
    };
  }

  const hooks = (...extra: JsonObject[]) =>
    read(
      extra.length
        ? extra.map((h, i) => ({
            name: `hook-${i + 1}`,
            url: `${base}/confirm`,
            ...h,
          }))
        : { name: 'change-freeze', url: `${base}/confirm` },
    )!;

  const evidenceOf = (r: { evidence?: unknown }) =>
    r.evidence as WebhookGateEvidence;

  it('passes on 2xx, having POSTed the promotion as JSON with the headers, and records neither headers nor query string', async () => {
    answer = (_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end('{"confirmed":true}');
    };
    const logger = mockServices.logger.mock();
    const gate = new WebhookGate({ logger });
    const config = read(
      {
        name: 'change-freeze',
        url: `${base}/confirm-promotion?token=${QUERY_SECRET}`,
        headers: { Authorization: SECRET },
      },
      gate,
    )!;
    const result = await gate.run(context(config), 'preflight');

    expect(result).toMatchObject({
      gate: 'webhook',
      phase: 'preflight',
      status: 'passed',
      reason: 'change-freeze answered 200',
    });
    expect(evidenceOf(result).hooks).toEqual([
      {
        name: 'change-freeze',
        url: `${base}/confirm-promotion`,
        outcome: 'passed',
        status: 200,
        durationMs: expect.any(Number),
        responseExcerpt: '{"confirmed":true}',
      },
    ]);

    expect(received).toHaveLength(1);
    const [call] = received;
    expect(call.method).toBe('POST');
    expect(call.url).toBe(`/confirm-promotion?token=${QUERY_SECRET}`);
    expect(call.headers['content-type']).toBe('application/json');
    expect(call.headers.authorization).toBe(SECRET);
    const payload: WebhookPayload = JSON.parse(call.body);
    expect(payload).toEqual({
      entity: {
        entityRef: 'component:default/payments-api',
        name: 'payments-api',
        namespace: 'default',
        kubernetesId: 'payments-api',
      },
      stage: {
        name: 'staging',
        namespace: 'staging',
        cluster: 'local',
        url: 'http://staging.example/payments-api',
      },
      phase: 'preflight',
      release: {
        id: 'rel-1',
        version: '1.5.0',
        image: 'registry.local/payments-api:1.5.0',
      },
      promotionId: '6f1c2d3e-0000-4000-8000-000000000001',
      results: [
        {
          gate: 'isolation',
          phase: 'preflight',
          status: 'passed',
          reason: 'staging admits no traffic from other environments',
        },
      ],
    });

    const recorded = JSON.stringify(result);
    expect(recorded).not.toContain('hook-secret-4711');
    expect(recorded).not.toContain(QUERY_SECRET);
    const logged = JSON.stringify(
      Object.values(logger).flatMap(fn =>
        jest.isMockFunction(fn) ? fn.mock.calls : [],
      ),
    );
    expect(logged).toContain('change-freeze');
    expect(logged).not.toContain('hook-secret-4711');
    expect(logged).not.toContain(QUERY_SECRET);
  });

  it('fails on 500 with the first 2 KiB of the answer as the excerpt', async () => {
    answer = (_req, res) => {
      res.writeHead(500, { 'Content-Type': 'text/plain' });
      res.end(`change freeze until Monday ${'x'.repeat(10_000)}`);
    };
    const result = await new WebhookGate().run(context(hooks()), 'preflight');
    expect(result.status).toBe('failed');
    expect(result.reason).toBe('change-freeze: answered 500, expected 2xx');
    const [call] = evidenceOf(result).hooks;
    expect(call).toMatchObject({ outcome: 'failed', status: 500 });
    expect(call.responseExcerpt).toHaveLength(2048);
    expect(call.responseExcerpt).toMatch(/^change freeze until Monday x+$/);
  });

  it('fails on a redirect without following it, so the headers go nowhere else', async () => {
    answer = (req, res) => {
      if (req.url === '/confirm') {
        res.writeHead(302, { Location: `${base}/elsewhere` });
        res.end();
      } else {
        res.writeHead(200);
        res.end('ok');
      }
    };
    const result = await new WebhookGate().run(context(hooks()), 'preflight');
    expect(result.status).toBe('failed');
    expect(result.reason).toBe(
      'change-freeze: answered 302, a redirect, which is not followed',
    );
    expect(received.map(r => r.url)).toEqual(['/confirm']);
  });

  it('is an error, not a pass, when the hook does not answer in time', async () => {
    answer = (_req, res) => {
      setTimeout(() => res.end('too late'), 3000).unref();
    };
    const started = Date.now();
    const result = await new WebhookGate().run(
      context(hooks({ name: 'slow', timeout: '200ms' })),
      'preflight',
    );
    expect(Date.now() - started).toBeLessThan(2000);
    expect(result.status).toBe('error');
    expect(result.reason).toBe('slow: no answer within 200 ms');
    expect(evidenceOf(result).hooks[0]).toMatchObject({
      outcome: 'error',
      failure: 'no answer within 200 ms',
    });
    expect(evidenceOf(result).hooks[0].status).toBeUndefined();
  });

  it('is an error when nothing listens at the url', async () => {
    const closed = http.createServer();
    await new Promise<void>(resolve =>
      closed.listen(0, '127.0.0.1', () => resolve()),
    );
    const port = (closed.address() as AddressInfo).port;
    await new Promise(resolve => closed.close(resolve));
    const result = await new WebhookGate().run(
      context(hooks({ name: 'gone', url: `http://127.0.0.1:${port}/c` })),
      'preflight',
    );
    expect(result.status).toBe('error');
    expect(result.reason).toMatch(/^gone: request failed: .*ECONNREFUSED/);
  });

  it('is an error saying it was interrupted when the promotion is cancelled during a call', async () => {
    answer = () => undefined;
    const controller = new AbortController();
    const pending = new WebhookGate().run(
      context(hooks({ name: 'first' }, { name: 'second' }), {
        signal: controller.signal,
      }),
      'preflight',
    );
    while (received.length === 0) {
      await new Promise(r => setTimeout(r, 10));
    }
    controller.abort();
    const result = await pending;
    expect(result.status).toBe('error');
    expect(result.reason).toBe(
      'interrupted: the promotion was cancelled or stopped before the webhooks answered',
    );
    // The second hook is not called once the promotion stopped.
    expect(evidenceOf(result).hooks.map(h => [h.name, h.outcome])).toEqual([
      ['first', 'error'],
    ]);
    expect(received).toHaveLength(1);
  });

  it('calls nothing when the signal was aborted already', async () => {
    const controller = new AbortController();
    controller.abort();
    const result = await new WebhookGate().run(
      context(hooks(), { signal: controller.signal }),
      'preflight',
    );
    expect(result.status).toBe('error');
    expect(result.reason).toContain('interrupted');
    expect(received).toHaveLength(0);
  });

  it("calls only the phase's webhooks, all of them, and fails when one says no", async () => {
    answer = (req, res) => {
      res.writeHead(req.url === '/no' ? 409 : 204);
      res.end();
    };
    const config = hooks(
      { name: 'freeze', url: `${base}/yes` },
      { name: 'ticket', url: `${base}/no` },
      { name: 'budget', url: `${base}/yes` },
      { name: 'after', url: `${base}/after`, phase: 'verification' },
    );
    const result = await new WebhookGate().run(context(config), 'preflight');
    expect(result.status).toBe('failed');
    expect(result.reason).toBe('ticket: answered 409, expected 2xx');
    expect(evidenceOf(result).hooks.map(h => [h.name, h.status])).toEqual([
      ['freeze', 204],
      ['ticket', 409],
      ['budget', 204],
    ]);
    expect(received.map(r => r.url)).toEqual(['/yes', '/no', '/yes']);

    const verified = await new WebhookGate().run(
      context(config),
      'verification',
    );
    expect(verified).toMatchObject({
      status: 'passed',
      reason: 'after answered 204',
    });
    expect(JSON.parse(received[3].body).phase).toBe('verification');
  });

  it('is an error without a promotion to describe', async () => {
    const result = await new WebhookGate().run(
      context(hooks(), { promotionId: undefined, release: undefined }),
      'preflight',
    );
    expect(result.status).toBe('error');
    expect(result.reason).toBe(
      'cannot call the webhooks without release, promotion id',
    );
    expect(received).toHaveLength(0);
  });
});
