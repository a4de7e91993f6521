import { ConfigReader } from '@backstage/config';
import {
  ProgressionConfigError,
  renderStageUrl,
  resolveStageUrl,
} from './readProgressionConfig';
import { readTestConfig } from '../__testUtils__/readTestConfig';

const clusters = [
  { name: 'local', url: 'http://127.0.0.1:6443', serviceAccountToken: 't' },
];
const stages = [
  {
    name: 'development',
    cluster: 'local',
    namespace: 'development',
    url: 'http://{{ kubernetesId }}.development.localhost:8080',
  },
  { name: 'staging', cluster: 'local', namespace: 'staging' },
  {
    name: 'production',
    title: 'Production',
    cluster: 'local',
    namespace: 'production',
  },
];

function read(progression: object, extra: object = {}) {
  return readTestConfig(new ConfigReader({ progression, ...extra }));
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

describe('readProgressionConfig', () => {
  it('reads pipelines with their stages in order', () => {
    const config = read({ clusters, pipelines: { standard: { stages } } });
    const pipeline = config.pipelines.get('standard')!;
    expect(pipeline.title).toBe('standard');
    expect(pipeline.stages.map(s => s.name)).toEqual([
      'development',
      'staging',
      'production',
    ]);
    expect(pipeline.stages[2].title).toBe('Production');
    expect(pipeline.stages[0].title).toBe('development');
    expect(config.clusters.get('local')).toMatchObject({
      url: 'http://127.0.0.1:6443',
      authProvider: 'serviceAccount',
      skipTLSVerify: false,
    });
  });

  it('accepts no progression section at all', () => {
    const config = readTestConfig(new ConfigReader({}));
    expect(config.pipelines.size).toBe(0);
    expect(config.clusters.size).toBe(0);
  });

  it("accepts clusters of the Kubernetes plugin's config locator", () => {
    const config = read(
      {
        pipelines: {
          p: { stages: [{ name: 'dev', cluster: 'k8s', namespace: 'dev' }] },
        },
      },
      {
        kubernetes: {
          clusterLocatorMethods: [
            { type: 'catalog' },
            {
              type: 'config',
              clusters: [{ name: 'k8s', url: 'https://k8s.example.com' }],
            },
          ],
        },
      },
    );
    expect(config.clusters.get('k8s')?.source).toBe(
      'kubernetes.clusterLocatorMethods',
    );
  });

  it("reads the Kubernetes plugin's auth settings, and refuses a user-token cluster only where a stage names it", () => {
    const kubernetes = {
      clusterLocatorMethods: [
        {
          type: 'config',
          clusters: [
            {
              name: 'eks',
              url: 'https://eks.example.com',
              authProvider: 'aws',
              assumeRole: 'arn:aws:iam::123456789012:role/progression',
              externalId: 'ext-1',
              authMetadata: { 'kubernetes.io/x-k8s-aws-id': 'prod-eks' },
            },
            {
              name: 'gke-user',
              url: 'https://gke.example.com',
              authProvider: 'google',
            },
          ],
        },
        { type: 'localKubectlProxy' },
      ],
    };
    const stagesOn = (cluster: string) => ({
      pipelines: {
        p: { stages: [{ name: 'dev', cluster, namespace: 'dev' }] },
      },
    });
    const config = read(stagesOn('eks'), { kubernetes });
    expect(config.clusters.get('eks')).toMatchObject({
      authProvider: 'aws',
      authMetadata: {
        'kubernetes.io/aws-assume-role':
          'arn:aws:iam::123456789012:role/progression',
        'kubernetes.io/aws-external-id': 'ext-1',
        'kubernetes.io/x-k8s-aws-id': 'prod-eks',
      },
    });
    expect(config.clusters.get('local')).toMatchObject({
      url: 'http://127.0.0.1:8001',
      authProvider: 'localKubectlProxy',
    });
    const error = errorOf(() => read(stagesOn('gke-user'), { kubernetes }));
    expect(error.key).toBe('progression.pipelines.p.stages[0].cluster');
    expect(error.message).toContain(
      "cluster 'gke-user' (kubernetes.clusterLocatorMethods[0].clusters[1].authProvider) cannot be used by promotions: 'google' sends the signed-in user's own token",
    );
  });

  it.each([
    [
      'an unknown cluster',
      {
        clusters,
        pipelines: { p: { stages: [{ ...stages[0], cluster: 'nope' }] } },
      },
      'progression.pipelines.p.stages[0].cluster',
      "unknown cluster 'nope'; configured clusters: local",
    ],
    [
      'a duplicate stage name',
      {
        clusters,
        pipelines: { p: { stages: [stages[0], stages[1], stages[0]] } },
      },
      'progression.pipelines.p.stages[2].name',
      "duplicate stage name 'development'",
    ],
    [
      'an empty stage list',
      { clusters, pipelines: { p: { stages: [] } } },
      'progression.pipelines.p.stages',
      'at least one stage',
    ],
    [
      'a missing stage list',
      { clusters, pipelines: { p: { title: 'P' } } },
      'progression.pipelines.p.stages',
      'at least one stage',
    ],
    [
      'an invalid namespace',
      {
        clusters,
        pipelines: { p: { stages: [{ ...stages[0], namespace: 'Prod_1' }] } },
      },
      'progression.pipelines.p.stages[0].namespace',
      "'Prod_1' is not a valid name",
    ],
    [
      'an invalid pipeline name',
      { clusters, pipelines: { 'My Pipeline': { stages } } },
      'progression.pipelines.My Pipeline',
      'not a valid pipeline name',
    ],
    [
      'an unknown URL placeholder',
      {
        clusters,
        pipelines: {
          p: {
            stages: [{ ...stages[0], url: 'http://{{ entity.owner }}.local' }],
          },
        },
      },
      'progression.pipelines.p.stages[0].url',
      "unknown placeholder '{{ entity.owner }}'",
    ],
    [
      'a URL that is not http',
      {
        clusters,
        pipelines: {
          p: { stages: [{ ...stages[0], url: 'file:///etc/passwd' }] },
        },
      },
      'progression.pipelines.p.stages[0].url',
      'must be an http or https URL',
    ],
    [
      'a duplicate cluster',
      { clusters: [...clusters, ...clusters] },
      'progression.clusters[1].name',
      "duplicate cluster name 'local'",
    ],
    [
      "an auth provider that sends the user's own token",
      { clusters: [{ ...clusters[0], authProvider: 'google' }] },
      'progression.clusters[0].authProvider',
      "'google' sends the signed-in user's own token from the browser, and a promotion runs in the backend without one; use 'googleServiceAccount'",
    ],
    [
      'an unknown auth provider',
      { clusters: [{ ...clusters[0], authProvider: 'kerberos' }] },
      'progression.clusters[0].authProvider',
      "'kerberos' is not supported; use one of serviceAccount, aws, azure, googleServiceAccount, localKubectlProxy",
    ],
    [
      'a CA file that does not exist',
      { clusters: [{ ...clusters[0], caFile: '/nonexistent/ca.crt' }] },
      'progression.clusters[0].caFile',
      'no file /nonexistent/ca.crt',
    ],
    [
      'no clusters at all',
      { pipelines: { p: { stages: [stages[1]] } } },
      'progression.pipelines.p.stages[0].cluster',
      'no clusters are configured',
    ],
  ])('refuses %s, naming the key', (_, progression, key, problem) => {
    const error = errorOf(() => read(progression));
    expect(error.key).toBe(key);
    expect(error.message).toContain(`'${key}'`);
    expect(error.message).toContain(problem);
  });

  it('names the key of a value of the wrong type', () => {
    expect(() =>
      read({
        clusters,
        pipelines: { p: { stages: [{ ...stages[0], name: 5 }] } },
      }),
    ).toThrow(/progression\.pipelines\.p\.stages\[0\]\.name/);
  });
});

describe('stage policy and smoke checks', () => {
  const stage = (extra: object) => ({
    clusters,
    pipelines: {
      p: {
        stages: [
          {
            name: 'production',
            cluster: 'local',
            namespace: 'production',
            url: 'http://127.0.0.1:7103/{{ kubernetesId }}',
            ...extra,
          },
        ],
      },
    },
  });

  it('reads defaults', () => {
    const s = read(stage({})).pipelines.get('p')!.stages[0];
    expect(s).toMatchObject({
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
      // No smoke checks: the smoke gate is not configured.
      gates: {},
    });
  });

  it('reads approvals, durations and checks', () => {
    const s = read(
      stage({
        autoPromote: true,
        approval: {
          required: true,
          // A reference without its namespace is read in full.
          approvers: ['group:default/release-managers', 'user:olivia'],
          minApprovals: 2,
          expiresAfter: '24h',
        },
        soak: { minutes: 10 },
        rollback: { automatic: false },
        rolloutTimeout: 'PT2M',
        gates: {
          smoke: {
            checks: [
              { path: '/healthz' },
              {
                name: 'test action',
                method: 'post',
                path: '/api/test-action',
                body: { amount: 1 },
                expectStatus: [200, 201],
                assert: 'ok = true and $exists(received)',
                timeout: '2s',
                retries: 3,
              },
            ],
          },
        },
      }),
    ).pipelines.get('p')!.stages[0];
    expect(s.approval).toEqual({
      required: true,
      approvers: ['group:default/release-managers', 'user:default/olivia'],
      minApprovals: 2,
      allowSelfApproval: false,
      expiresAfterMs: 86_400_000,
    });
    expect(s.soakMs).toBe(600_000);
    expect(s.rolloutTimeoutMs).toBe(120_000);
    expect(s.rollback.automatic).toBe(false);
    expect(s.gates.smoke).toEqual([
      expect.objectContaining({
        name: 'GET /healthz',
        method: 'GET',
        expectStatus: [200],
        assert: [],
        timeoutMs: 5000,
        retries: 0,
      }),
      expect.objectContaining({
        name: 'test action',
        method: 'POST',
        body: '{"amount":1}',
        expectStatus: [200, 201],
        assert: ['ok = true and $exists(received)'],
        timeoutMs: 2000,
        retries: 3,
      }),
    ]);
  });

  it.each([
    [
      { approval: { required: true } },
      'progression.pipelines.p.stages[0].approval.approvers',
      'nobody may give it',
    ],
    [
      { approval: { approvers: ['component:default/x'] } },
      'progression.pipelines.p.stages[0].approval.approvers[0]',
      'not a user or group',
    ],
    [
      { approval: { approvers: ['group:default/a'], minApprovals: 0 } },
      'progression.pipelines.p.stages[0].approval.minApprovals',
      'at least 1',
    ],
    [
      { soak: 'soon' },
      'progression.pipelines.p.stages[0].soak',
      'not a duration',
    ],
    [
      { gates: { smoke: { checks: [{ path: 'healthz' }] } } },
      'progression.pipelines.p.stages[0].gates.smoke.checks[0].path',
      "must start with '/'",
    ],
    [
      { gates: { smoke: { checks: [{ path: '/x', method: 'TRACE' }] } } },
      'progression.pipelines.p.stages[0].gates.smoke.checks[0].method',
      'is not one of',
    ],
    [
      { gates: { smoke: { checks: [{ path: '/x', assert: 'status = ' }] } } },
      'progression.pipelines.p.stages[0].gates.smoke.checks[0].assert',
      'not a valid JSONata expression',
    ],
    [
      { gates: { smoke: { checks: [{ path: '/x', expectStatus: 99 }] } } },
      'progression.pipelines.p.stages[0].gates.smoke.checks[0].expectStatus',
      'HTTP status code',
    ],
    [
      { url: undefined, gates: { smoke: { checks: [{ path: '/x' }] } } },
      'progression.pipelines.p.stages[0].url',
      'no url to run them against',
    ],
    [
      // A typo, or a gate whose module is not installed, must not be
      // silently ignored: the stage would run without it.
      { gates: { smok: { checks: [{ path: '/x' }] } } },
      'progression.pipelines.p.stages[0].gates.smok',
      "no gate 'smok' is installed; installed: soak, isolation, parity, job, smoke, metrics, load",
    ],
    [
      { deploy: { kind: 'argocd' } },
      'progression.pipelines.p.stages[0].deploy.kind',
      "no deployer 'argocd' is installed; installed: kubernetes",
    ],
  ])('refuses %j, naming the key', (extra, key, problem) => {
    const error = errorOf(() => read(stage(extra)));
    expect(error.key).toBe(key);
    expect(error.message).toContain(problem);
  });
});

describe('renderStageUrl', () => {
  it('fills placeholders with encoded values', () => {
    expect(
      renderStageUrl(
        'http://{{kubernetesId}}.{{ stage.name }}.local/{{ entity.namespace }}',
        {
          'entity.name': 'web',
          'entity.namespace': 'a b',
          kubernetesId: 'web-shop',
          'stage.name': 'staging',
          'stage.namespace': 'staging',
        },
      ),
    ).toBe('http://web-shop.staging.local/a%20b');
  });
});

describe('worker and retention', () => {
  it('reads the retry policy, step timeout, replica id and retention, with defaults', () => {
    const defaults = read({ clusters });
    expect(defaults.worker).toEqual({
      heartbeatMs: 10_000,
      staleMs: 60_000,
      retry: { initialDelayMs: 1000, maxDelayMs: 60_000, budgetMs: 300_000 },
      stepTimeoutMs: 3_600_000,
      replicaId: undefined,
    });
    expect(defaults.retention).toEqual({
      keepForMs: 180 * 24 * 3600_000,
      keepLast: 50,
    });
    const set = read({
      clusters,
      worker: {
        retry: { initialDelay: '2s', maxDelay: '30s', budget: '10m' },
        stepTimeout: '20m',
        replicaId: 'backstage-0',
      },
      retention: { keepFor: '30d', keepLast: 10 },
    });
    expect(set.worker).toMatchObject({
      retry: { initialDelayMs: 2000, maxDelayMs: 30_000, budgetMs: 600_000 },
      stepTimeoutMs: 1_200_000,
      replicaId: 'backstage-0',
    });
    expect(set.retention).toEqual({
      keepForMs: 30 * 24 * 3600_000,
      keepLast: 10,
    });
  });

  it.each([
    [
      { worker: { retry: { initialDelay: '1m', maxDelay: '1s' } } },
      'progression.worker.retry.maxDelay',
    ],
    [
      { worker: { replicaId: 'has spaces/and slashes' } },
      'progression.worker.replicaId',
    ],
    [{ retention: { keepLast: 0 } }, 'progression.retention.keepLast'],
  ])('refuses %j, naming the key', (extra, key) => {
    expect(errorOf(() => read({ clusters, ...extra })).key).toBe(key);
  });
});

describe('entityCacheTtl', () => {
  it('defaults to five seconds, and 0s turns the reuse off', () => {
    expect(read({ clusters }).entityCacheTtlMs).toBe(5000);
    expect(read({ clusters, entityCacheTtl: '0s' }).entityCacheTtlMs).toBe(0);
    expect(read({ clusters, entityCacheTtl: '30s' }).entityCacheTtlMs).toBe(
      30_000,
    );
  });

  it('names the key of a value that is not a duration', () => {
    expect(errorOf(() => read({ clusters, entityCacheTtl: 'soon' })).key).toBe(
      'progression.entityCacheTtl',
    );
  });
});

describe('resolveStageUrl', () => {
  const values = {
    'entity.name': 'payments-api',
    'entity.namespace': 'default',
    kubernetesId: 'payments-api',
    'stage.name': 'staging',
    'stage.namespace': 'staging',
  };
  const template = 'http://127.0.0.1:7102/{{ kubernetesId }}';

  it('fills in the template when the entity has no override', () => {
    expect(resolveStageUrl(template, values)).toEqual({
      url: 'http://127.0.0.1:7102/payments-api',
    });
  });

  it('takes an override on the configured origin (narrowing)', () => {
    expect(
      resolveStageUrl(template, values, 'http://127.0.0.1:7102/payments/v2'),
    ).toEqual({ url: 'http://127.0.0.1:7102/payments/v2' });
  });

  it.each([
    ['another host', 'http://169.254.169.254/latest/meta-data'],
    ['another port', 'http://127.0.0.1:6443/api'],
    ['another scheme', 'https://127.0.0.1:7102/payments-api'],
    ['credentials', 'http://admin:secret@127.0.0.1:7102/x'],
    ['not a URL', 'payments'],
  ])('ignores an override with %s, saying why', (_, override) => {
    const resolved = resolveStageUrl(template, values, override);
    expect(resolved.url).toBe('http://127.0.0.1:7102/payments-api');
    expect(resolved.ignored).toMatch(/override/);
  });

  it('ignores an override on a stage without a configured url', () => {
    expect(
      resolveStageUrl(undefined, values, 'http://127.0.0.1:7102/x'),
    ).toEqual({
      url: undefined,
      ignored: expect.stringMatching(/no configured url/),
    });
  });
});

describe('gates that need a stage url', () => {
  it('refuses a load test on a stage without a url', () => {
    expect(
      errorOf(() =>
        read({
          clusters,
          pipelines: {
            p: {
              stages: [
                {
                  name: 'staging',
                  cluster: 'local',
                  namespace: 'staging',
                  gates: {
                    load: { duration: '2s', thresholds: { p95: '300ms' } },
                  },
                },
              ],
            },
          },
        }),
      ).key,
    ).toBe('progression.pipelines.p.stages[0].url');
  });
});

describe('notifications', () => {
  it('are on unless turned off', () => {
    expect(read({ clusters }).notifications).toEqual({ enabled: true });
    expect(
      read({ clusters, notifications: { enabled: false } }).notifications,
    ).toEqual({ enabled: false });
  });

  describe('promotion windows and freezes', () => {
    const withWindows = (
      pipeline: object,
      production: object = {},
      extra: object = {},
    ) =>
      read(
        {
          clusters,
          pipelines: {
            p: {
              ...pipeline,
              stages: [stages[0], { ...stages[2], ...production }],
            },
          },
          ...extra,
        },
        {},
      );
    const prometheus = { url: 'http://127.0.0.1:9090' };

    it("adds a stage's windows to the pipeline's and merges their alerts", () => {
      const config = withWindows(
        {
          windows: [
            {
              kind: 'deny',
              name: 'holidays',
              schedule: '0 0 24 12 *',
              duration: '8d',
              timezone: 'Europe/Berlin',
            },
          ],
          freezeOn: { alerts: ['HighErrorRatio'] },
        },
        {
          windows: [
            { kind: 'allow', schedule: '0 9 * * 1-5', duration: { hours: 8 } },
          ],
          freezeOn: { alerts: ['{severity="page"}', 'HighErrorRatio'] },
          rollbacksWhenClosed: 'deny',
        },
        { prometheus },
      );
      const windows = config.pipelines.get('p')!.windows;
      expect(windows.get('development')).toMatchObject({
        windows: [
          { kind: 'deny', name: 'holidays', durationMs: 8 * 86400_000 },
        ],
        freezeOnAlerts: ['HighErrorRatio'],
        rollbacksWhenClosed: 'allow',
      });
      expect(windows.get('production')).toMatchObject({
        windows: [
          { kind: 'deny', timezone: 'Europe/Berlin' },
          { kind: 'allow', timezone: 'UTC', durationMs: 8 * 3600_000 },
        ],
        freezeOnAlerts: ['HighErrorRatio', '{severity="page"}'],
        rollbacksWhenClosed: 'deny',
      });
      expect(
        read({ clusters, pipelines: { p: { stages } } }).pipelines.get('p')!
          .windows.size,
      ).toBe(0);
    });

    it.each([
      [
        { windows: [{ kind: 'deny', schedule: '61 * * * *', duration: '1h' }] },
        {},
        'progression.pipelines.p.windows[0].schedule',
        "'61 * * * *' is not a cron schedule",
      ],
      [
        {},
        {
          windows: [
            {
              kind: 'allow',
              schedule: '0 9 * * *',
              duration: '1h',
              timezone: 'Europe/Atlantis',
            },
          ],
        },
        'progression.pipelines.p.stages[1].windows[0].timezone',
        "unknown time zone 'Europe/Atlantis'",
      ],
      [
        {
          windows: [{ kind: 'deny', schedule: '0 9 * * *', duration: 'soon' }],
        },
        {},
        'progression.pipelines.p.windows[0].duration',
        'not a duration',
      ],
      [
        { windows: [{ kind: 'deny', schedule: '0 9 * * *' }] },
        {},
        'progression.pipelines.p.windows[0].duration',
        'a window needs a duration',
      ],
      [
        { windows: [{ kind: 'maybe', schedule: '0 9 * * *', duration: '1h' }] },
        {},
        'progression.pipelines.p.windows[0].kind',
        'use allow or deny',
      ],
      [
        {},
        { freezeOn: { alerts: ['High Error Ratio'] } },
        'progression.pipelines.p.stages[1].freezeOn.alerts[0]',
        'is not an alert name',
      ],
      [
        {},
        { freezeOn: { alerts: ['{severity="page"} or vector(1)'] } },
        'progression.pipelines.p.stages[1].freezeOn.alerts[0]',
        'is not a selector of label matchers',
      ],
      [
        {},
        { freezeOn: { alerts: ['{alertstate="pending"}'] } },
        'progression.pipelines.p.stages[1].freezeOn.alerts[0]',
        'may not match __name__ or alertstate',
      ],
      [
        {},
        { rollbacksWhenClosed: 'sometimes' },
        'progression.pipelines.p.stages[1].rollbacksWhenClosed',
        'use allow or deny',
      ],
    ])('refuses %j / %j at %s', (pipeline, production, key, problem) => {
      const error = errorOf(() =>
        withWindows(pipeline, production, { prometheus }),
      );
      expect(error.key).toBe(key);
      expect(error.message).toContain(problem);
    });

    it('refuses an alert freeze without Prometheus', () => {
      const error = errorOf(() =>
        withWindows({ freezeOn: { alerts: ['HighErrorRatio'] } }),
      );
      expect(error.key).toBe('progression.pipelines.p.freezeOn.alerts');
      expect(error.message).toContain(
        'progression.prometheus is not configured',
      );
    });
  });
});
