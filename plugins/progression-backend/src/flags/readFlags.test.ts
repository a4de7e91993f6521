import { ConfigReader } from '@backstage/config';
import { KubeSimulator, installDemo } from '@internal/kube-simulator';
import {
  ClusterConfig,
  ProgressionConfigError,
} from '../config/readProgressionConfig';
import { readTestConfig } from '../__testUtils__/readTestConfig';
import { KubernetesWorkloads } from '../kubernetes/KubernetesWorkloads';
import { StageResources } from '../kubernetes/StageResources';
import {
  describeFlag,
  flagMatrix,
  parseFlagdFlags,
  readStageFlags,
} from './readFlags';

jest.setTimeout(60_000);

const clusters = [
  { name: 'local', url: 'http://127.0.0.1:6443', serviceAccountToken: 't' },
];

function stagesOf(pipeline: object) {
  return readTestConfig(
    new ConfigReader({
      progression: { clusters, pipelines: { standard: pipeline } },
    }),
  ).pipelines.get('standard')!.stages;
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

describe('readFlagsConfig', () => {
  it('defaults to the feature-flags ConfigMap and its flags.json key', () => {
    const [stage] = stagesOf({
      stages: [{ name: 'dev', cluster: 'local', namespace: 'dev' }],
    });
    expect(stage.flags).toEqual({
      configMap: 'feature-flags',
      key: 'flags.json',
    });
  });

  it("takes the stage's flags over the pipeline's, and the pipeline's over the defaults", () => {
    const stages = stagesOf({
      flags: { configMap: 'pipeline-flags' },
      stages: [
        { name: 'dev', cluster: 'local', namespace: 'dev' },
        {
          name: 'prod',
          cluster: 'local',
          namespace: 'prod',
          flags: { configMap: 'prod-flags', key: 'flagd.json' },
        },
      ],
    });
    expect(stages[0].flags).toEqual({
      configMap: 'pipeline-flags',
      key: 'flags.json',
    });
    expect(stages[1].flags).toEqual({
      configMap: 'prod-flags',
      key: 'flagd.json',
    });
  });

  it('refuses a bad ConfigMap name or key, naming where it was set', () => {
    const atStage = errorOf(() =>
      stagesOf({
        stages: [
          {
            name: 'dev',
            cluster: 'local',
            namespace: 'dev',
            flags: { configMap: 'Feature_Flags' },
          },
        ],
      }),
    );
    expect(atStage.key).toBe(
      'progression.pipelines.standard.stages[0].flags.configMap',
    );
    expect(atStage.message).toContain('not a valid ConfigMap name');

    const atPipeline = errorOf(() =>
      stagesOf({
        flags: { key: 'flags/json' },
        stages: [{ name: 'dev', cluster: 'local', namespace: 'dev' }],
      }),
    );
    expect(atPipeline.key).toBe('progression.pipelines.standard.flags.key');
    expect(atPipeline.message).toContain('not a valid ConfigMap key');

    const notString = errorOf(() =>
      stagesOf({
        stages: [
          {
            name: 'dev',
            cluster: 'local',
            namespace: 'dev',
            flags: { configMap: 5 },
          },
        ],
      }),
    );
    expect(notString.key).toBe(
      'progression.pipelines.standard.stages[0].flags.configMap',
    );
  });
});

describe('parseFlagdFlags', () => {
  it("reads each flag's state, default variant and its value", () => {
    const flags = parseFlagdFlags(
      JSON.stringify({
        $schema: 'https://flagd.dev/schema/v0/flags.json',
        flags: {
          'new-checkout': {
            state: 'ENABLED',
            variants: { on: true, off: false },
            defaultVariant: 'on',
          },
          'old-banner': {
            state: 'DISABLED',
            variants: { on: true, off: false },
            defaultVariant: 'on',
          },
          'page-size': {
            state: 'ENABLED',
            variants: { small: 10, large: 50 },
            defaultVariant: 'large',
            targeting: { if: [true, 'small'] },
          },
        },
      }),
    );
    expect(flags).toEqual({
      'new-checkout': {
        state: 'ENABLED',
        defaultVariant: 'on',
        value: true,
        enabled: true,
      },
      'old-banner': {
        state: 'DISABLED',
        defaultVariant: 'on',
        value: true,
        enabled: false,
      },
      'page-size': {
        state: 'ENABLED',
        defaultVariant: 'large',
        value: 50,
        enabled: true,
        targeting: true,
      },
    });
  });

  it('says what is wrong with a document that is not flagd flags', () => {
    expect(() => parseFlagdFlags('{')).toThrow(/not JSON/);
    expect(() => parseFlagdFlags('{"flag": {}}')).toThrow(/no "flags" object/);
  });
});

describe('flagMatrix', () => {
  const on = (value: unknown = true) => ({
    state: 'ENABLED',
    defaultVariant: value ? 'on' : 'off',
    value,
    enabled: Boolean(value),
  });

  it('marks a flag whose effective value differs, or that a stage lacks', () => {
    const matrix = flagMatrix([
      { stage: 'staging', flags: { a: on(true), b: on(true), c: on(true) } },
      { stage: 'production', flags: { a: on(false), b: on(true) } },
    ]);
    expect(matrix.stages).toEqual(['staging', 'production']);
    expect(matrix.flags).toEqual([
      {
        key: 'a',
        values: {
          staging: { state: 'ENABLED', variant: 'on', value: true },
          production: { state: 'ENABLED', variant: 'off', value: false },
        },
        differs: true,
      },
      {
        key: 'b',
        values: {
          staging: { state: 'ENABLED', variant: 'on', value: true },
          production: { state: 'ENABLED', variant: 'on', value: true },
        },
        differs: false,
      },
      {
        key: 'c',
        values: {
          staging: { state: 'ENABLED', variant: 'on', value: true },
          production: null,
        },
        differs: true,
      },
    ]);
    expect(matrix.errors).toEqual({});
  });

  it('treats disabled flags alike whatever their variant, and unlike an enabled one', () => {
    const disabled = (variant: string) => ({
      state: 'DISABLED',
      defaultVariant: variant,
      value: variant === 'on',
      enabled: false,
    });
    const matrix = flagMatrix([
      { stage: 'a', flags: { x: disabled('on'), y: disabled('on') } },
      { stage: 'b', flags: { x: disabled('off'), y: on(false) } },
    ]);
    expect(matrix.flags.map(f => [f.key, f.differs])).toEqual([
      ['x', false],
      ['y', true],
    ]);
  });

  it('shows a stage whose flags could not be read as an error, not as lacking them', () => {
    const matrix = flagMatrix([
      { stage: 'staging', flags: { a: on(true) } },
      { stage: 'production', error: 'ConfigMap feature-flags does not exist' },
      { stage: 'development', flags: { a: on(true) } },
    ]);
    expect(matrix.flags).toEqual([
      {
        key: 'a',
        values: {
          staging: { state: 'ENABLED', variant: 'on', value: true },
          production: null,
          development: { state: 'ENABLED', variant: 'on', value: true },
        },
        differs: false,
      },
    ]);
    expect(matrix.errors).toEqual({
      production: 'ConfigMap feature-flags does not exist',
    });
  });

  it('describes values in words', () => {
    expect(describeFlag({ state: 'ENABLED', variant: 'on', value: true })).toBe(
      'on',
    );
    expect(
      describeFlag({ state: 'ENABLED', variant: 'off', value: false }),
    ).toBe('off');
    expect(
      describeFlag({ state: 'DISABLED', variant: 'on', value: true }),
    ).toBe('disabled');
    expect(
      describeFlag({ state: 'ENABLED', variant: 'large', value: 50 }),
    ).toBe('50 (large)');
    expect(describeFlag(null)).toBe('absent');
  });
});

describe('readStageFlags against the simulator', () => {
  let sim: KubeSimulator;
  let demo: Awaited<ReturnType<typeof installDemo>>;
  let cluster: ClusterConfig;
  const workloads = new KubernetesWorkloads();
  const resources = new StageResources(workloads);
  const flagsConfig = { configMap: 'feature-flags', key: 'flags.json' };

  beforeAll(async () => {
    sim = await KubeSimulator.start({
      podReadyDelayMs: 20,
      token: 'test-token',
    });
    demo = await installDemo(sim, {
      anyPorts: true,
      trafficIntervalMs: 60_000,
    });
    cluster = {
      name: 'sim',
      url: sim.url,
      authProvider: 'serviceAccount',
      serviceAccountToken: 'test-token',
      skipTLSVerify: true,
      source: 'progression.clusters',
    };
  });

  afterAll(async () => {
    await workloads.close();
    await demo?.stop();
    await sim?.stop();
  });

  it('marks new-checkout, on in staging and off in production, as a difference', async () => {
    const staging = await readStageFlags(
      resources,
      'staging',
      { cluster, namespace: 'staging' },
      flagsConfig,
    );
    const production = await readStageFlags(
      resources,
      'production',
      { cluster, namespace: 'production' },
      flagsConfig,
    );
    expect(staging.flags?.['new-checkout']).toEqual({
      state: 'ENABLED',
      defaultVariant: 'on',
      value: true,
      enabled: true,
    });
    expect(production.flags?.['new-checkout']).toMatchObject({
      defaultVariant: 'off',
      enabled: false,
    });
    const matrix = flagMatrix([staging, production]);
    const row = (key: string) => matrix.flags.find(f => f.key === key);
    expect(row('new-checkout')).toEqual({
      key: 'new-checkout',
      values: {
        staging: { state: 'ENABLED', variant: 'on', value: true },
        production: { state: 'ENABLED', variant: 'off', value: false },
      },
      differs: true,
    });
    expect(row('dark-mode')?.differs).toBe(false);
    expect(row('fast-refunds')?.differs).toBe(false);
  });

  it('makes a missing ConfigMap, a missing key or a bad document an error entry, not a throw', async () => {
    const location = { cluster, namespace: 'staging' };
    expect(
      await readStageFlags(resources, 'staging', location, {
        configMap: 'no-such-flags',
        key: 'flags.json',
      }),
    ).toEqual({
      stage: 'staging',
      error: 'ConfigMap no-such-flags does not exist in namespace staging',
    });
    expect(
      await readStageFlags(resources, 'staging', location, {
        configMap: 'feature-flags',
        key: 'other.json',
      }),
    ).toEqual({
      stage: 'staging',
      error:
        'ConfigMap feature-flags in namespace staging has no key other.json',
    });
    sim.apply({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'broken-flags', namespace: 'staging' },
      data: { 'flags.json': 'flags: yaml' },
    });
    const broken = await readStageFlags(resources, 'staging', location, {
      configMap: 'broken-flags',
      key: 'flags.json',
    });
    expect(broken.error).toMatch(
      /^flags\.json of ConfigMap broken-flags in namespace staging is not flagd flags: not JSON/,
    );
    const unreachable = await readStageFlags(
      resources,
      'staging',
      {
        cluster: { ...cluster, name: 'gone', url: 'http://127.0.0.1:9' },
        namespace: 'staging',
      },
      flagsConfig,
    );
    expect(unreachable.error).toMatch(
      /^cannot read ConfigMap feature-flags in namespace staging: /,
    );
  });

  it('refuses a bad ConfigMap name before it reaches a URL', async () => {
    await expect(
      resources.readConfigMap(
        { cluster, namespace: 'staging' },
        '../secrets/x',
      ),
    ).rejects.toThrow(/is not a valid ConfigMap name/);
    await expect(
      resources.readConfigMap(
        { cluster, namespace: 'Staging/../kube-system' },
        'feature-flags',
      ),
    ).rejects.toThrow(/is not a valid namespace name/);
  });
});
