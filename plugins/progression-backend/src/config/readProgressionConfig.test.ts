import { ConfigReader } from '@backstage/config';
import {
  ProgressionConfigError,
  readProgressionConfig,
  renderStageUrl,
} from './readProgressionConfig';

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
  return readProgressionConfig(new ConfigReader({ progression, ...extra }));
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
    const config = readProgressionConfig(new ConfigReader({}));
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
      'an unsupported auth provider',
      { clusters: [{ ...clusters[0], authProvider: 'aws' }] },
      'progression.clusters[0].authProvider',
      "'aws' is not supported",
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
