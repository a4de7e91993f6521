import { ConfigReader } from '@backstage/config';
import { KubeSimulator, installDemo } from '@internal/kube-simulator';
import {
  ProgressionConfigError,
  StageConfig,
} from '../config/readProgressionConfig';
import { readTestConfig } from '../__testUtils__/readTestConfig';
import {
  KubernetesWorkloads,
  StageLocation,
} from '../kubernetes/KubernetesWorkloads';
import { GateContext } from './Gate';
import {
  ParityEvidence,
  ParityGate,
  podTemplateReferences,
  readParityGateConfig,
} from './ParityGate';

/*
 * Against the project's Kubernetes API simulator with the demo's stages,
 * over HTTP through @kubernetes/client-node.
 */
jest.setTimeout(60_000);

let sim: KubeSimulator;
let demo: Awaited<ReturnType<typeof installDemo>>;
let stages: StageConfig[];
let locations: StageLocation[];
const workloads = new KubernetesWorkloads();
const gate = new ParityGate();

function read(progression: object) {
  return readTestConfig(new ConfigReader({ progression }));
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

/** The context of a promotion into `name` from the stage before it. */
function contextFor(name: string, kubernetesId: string): GateContext {
  const i = stages.findIndex(s => s.name === name);
  return {
    stage: stages[i],
    location: locations[i],
    source:
      i > 0 ? { stage: stages[i - 1], location: locations[i - 1] } : undefined,
    entity: {
      entityRef: `component:default/${kubernetesId}`,
      name: kubernetesId,
      namespace: 'default',
      kubernetesId,
    },
    workloads,
  };
}

function deployment(namespace: string, name: string, podSpec: object) {
  const labels = { app: name, 'backstage.io/kubernetes-id': name };
  sim.apply({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace, labels },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels }, spec: podSpec },
    },
  });
}

beforeAll(async () => {
  sim = await KubeSimulator.start({ podReadyDelayMs: 20, token: 'test-token' });
  demo = await installDemo(sim, { anyPorts: true, trafficIntervalMs: 60_000 });
  const config = read({
    clusters: [
      {
        name: 'sim',
        url: sim.url,
        serviceAccountToken: 'test-token',
        skipTLSVerify: true,
      },
    ],
    pipelines: {
      standard: {
        stages: ['development', 'staging', 'production'].map(name => ({
          name,
          cluster: 'sim',
          namespace: name,
          gates: { parity: true },
        })),
      },
    },
  });
  stages = config.pipelines.get('standard')!.stages;
  const cluster = config.clusters.get('sim')!;
  locations = stages.map(s => ({ cluster, namespace: s.namespace }));
});

afterAll(async () => {
  await workloads.close();
  await demo?.stop();
  await sim?.stop();
});

describe('ParityGate against the demo cluster', () => {
  it('applies before the approval only', () => {
    expect(gate.appliesTo(stages[2], 'preflight')).toBe(true);
    expect(gate.appliesTo(stages[2], 'predeploy')).toBe(false);
    expect(gate.appliesTo(stages[2], 'rollback')).toBe(false);
  });

  it('is skipped for a stage with no previous stage', async () => {
    const result = await gate.run(
      contextFor('development', 'payments-api'),
      'preflight',
    );
    expect(result).toMatchObject({
      gate: 'parity',
      status: 'skipped',
      reason: 'stage development has no previous stage to compare with',
    });
  });

  it("passes the demo's matching workloads, listing the differences as warnings", async () => {
    const result = await gate.run(
      contextFor('production', 'payments-api'),
      'preflight',
    );
    expect(result.status).toBe('passed');
    expect(result.reason).toBe(
      'the 1 Secret and ConfigMap reference of payments-api in staging exist in production; 2 warnings',
    );
    const evidence = result.evidence as ParityEvidence;
    expect(evidence.source).toEqual({
      stage: 'staging',
      namespace: 'staging',
      deployment: 'payments-api',
    });
    expect(evidence.target).toEqual({
      stage: 'production',
      namespace: 'production',
      deployment: 'payments-api',
    });
    expect(evidence.references).toEqual([
      {
        kind: 'Secret',
        name: 'payments-api-db-credentials',
        keys: ['password'],
        usedBy: ['container payments-api env DB_PASSWORD'],
        exists: true,
        missingKeys: [],
      },
    ]);
    expect(evidence.failures).toEqual([]);
    expect(evidence.warnings).toEqual([
      {
        kind: 'replicas',
        message: 'replicas differ: 2 in staging, 3 in production',
      },
      {
        kind: 'flag',
        message: 'flag new-checkout is on in staging and off in production',
      },
    ]);
    expect(
      evidence.flags?.flags.find(f => f.key === 'new-checkout'),
    ).toMatchObject({
      values: {
        staging: { value: true },
        production: { value: false },
      },
      differs: true,
    });
    // No secret value anywhere in the evidence.
    expect(JSON.stringify(result)).not.toContain('demo-production-password');
    expect(JSON.stringify(result)).not.toContain('demo-staging-password');
  });

  it('fails when the staging workload references a Secret missing in production, naming it', async () => {
    sim.apply({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'orders-api-db-credentials', namespace: 'staging' },
      stringData: { username: 'orders', password: 's3cret-staging' },
    });
    sim.apply({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'orders-api-settings', namespace: 'staging' },
      data: { 'settings.yaml': 'a: 1', region: 'eu' },
    });
    sim.apply({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'orders-api-settings', namespace: 'production' },
      data: { 'settings.yaml': 'a: 2' },
    });
    const podSpec = (extraEnv: object[], resources: object) => ({
      containers: [
        {
          name: 'orders-api',
          image: 'registry.local/orders-api:1.0.0',
          env: [
            {
              name: 'DB_PASSWORD',
              valueFrom: {
                secretKeyRef: {
                  name: 'orders-api-db-credentials',
                  key: 'password',
                },
              },
            },
            {
              name: 'REGION',
              valueFrom: {
                configMapKeyRef: { name: 'orders-api-settings', key: 'region' },
              },
            },
            {
              name: 'OPTIONAL_TOKEN',
              valueFrom: {
                secretKeyRef: {
                  name: 'orders-api-optional',
                  key: 'token',
                  optional: true,
                },
              },
            },
            ...extraEnv,
          ],
          resources,
          volumeMounts: [{ name: 'settings', mountPath: '/etc/orders' }],
        },
      ],
      volumes: [
        {
          name: 'settings',
          configMap: {
            name: 'orders-api-settings',
            items: [{ key: 'settings.yaml', path: 'settings.yaml' }],
          },
        },
      ],
    });
    deployment(
      'staging',
      'orders-api',
      podSpec([{ name: 'FEATURE_X', value: '1' }], {
        requests: { cpu: '100m' },
      }),
    );
    deployment(
      'production',
      'orders-api',
      podSpec([], { requests: { cpu: '100m' }, limits: { memory: '256Mi' } }),
    );

    const result = await gate.run(
      contextFor('production', 'orders-api'),
      'preflight',
    );
    expect(result.status).toBe('failed');
    expect(result.reason).toBe(
      'orders-api in staging references secret `orders-api-db-credentials`, which does not exist in `production` (and 1 more); 3 warnings',
    );
    const evidence = result.evidence as ParityEvidence;
    expect(evidence.failures).toEqual([
      'references secret `orders-api-db-credentials`, which does not exist in `production`',
      'references configMap `orders-api-settings`, which has no key `region` in `production`',
    ]);
    expect(evidence.references).toEqual([
      {
        kind: 'Secret',
        name: 'orders-api-db-credentials',
        keys: ['password'],
        usedBy: ['container orders-api env DB_PASSWORD'],
        exists: false,
        missingKeys: [],
      },
      {
        kind: 'ConfigMap',
        name: 'orders-api-settings',
        keys: ['region', 'settings.yaml'],
        usedBy: ['container orders-api env REGION', 'volume settings'],
        exists: true,
        missingKeys: ['region'],
      },
    ]);
    expect(evidence.warnings).toEqual([
      {
        kind: 'env',
        message: 'container orders-api: env FEATURE_X only in staging',
      },
      {
        kind: 'resources',
        message:
          'container orders-api: resources differ: {"requests":{"cpu":"100m"}} in staging, {"requests":{"cpu":"100m"},"limits":{"memory":"256Mi"}} in production',
      },
      {
        kind: 'flag',
        message: 'flag new-checkout is on in staging and off in production',
      },
    ]);
    expect(JSON.stringify(result)).not.toContain('s3cret-staging');

    // With the Secret and the key in production the gate passes.
    sim.apply({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'orders-api-db-credentials', namespace: 'production' },
      stringData: { username: 'orders' },
    });
    sim.apply({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'orders-api-settings', namespace: 'production' },
      data: { 'settings.yaml': 'a: 2', region: 'us' },
    });
    const again = await gate.run(
      contextFor('production', 'orders-api'),
      'preflight',
    );
    expect(again.status).toBe('failed');
    expect(again.reason).toMatch(
      /^orders-api in staging references secret `orders-api-db-credentials`, which has no key `password` in `production`; /,
    );
    sim.apply({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'orders-api-db-credentials', namespace: 'production' },
      stringData: { username: 'orders', password: 'p' },
    });
    const passed = await gate.run(
      contextFor('production', 'orders-api'),
      'preflight',
    );
    expect(passed.status).toBe('passed');
  });

  it('reads a Secret whole only for the keys a container takes, and never in names mode', async () => {
    const reads = async (): Promise<Record<string, number>> =>
      (
        await fetch(`${sim.url}/simulator/reads`, {
          headers: { Authorization: 'Bearer test-token' },
        })
      ).json();
    const secret = (namespace: string, name: string, data: object) =>
      sim.apply({
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name, namespace },
        stringData: data,
      });
    for (const namespace of ['staging', 'production']) {
      secret(namespace, 'billing-env', { LOG_LEVEL: 'info' });
      secret(namespace, 'billing-regcred', { '.dockerconfigjson': '{}' });
    }
    secret('staging', 'billing-keys', { password: 's3cret-staging' });
    // Production's has another key than the one the container takes.
    secret('production', 'billing-keys', { pass: 's3cret-production' });
    deployment('staging', 'billing', {
      containers: [
        {
          name: 'billing',
          image: 'registry.local/billing:1.0.0',
          env: [
            {
              name: 'DB_PASSWORD',
              valueFrom: {
                secretKeyRef: { name: 'billing-keys', key: 'password' },
              },
            },
          ],
          envFrom: [{ secretRef: { name: 'billing-env' } }],
        },
      ],
      imagePullSecrets: [{ name: 'billing-regcred' }],
    });
    const context = contextFor('production', 'billing');
    const namesOnly = {
      ...context,
      stage: {
        ...context.stage,
        gates: {
          ...context.stage.gates,
          parity: { secrets: 'names' as const },
        },
      },
    };

    let before = await reads();
    const keys = await gate.run(context, 'preflight');
    let after = await reads();
    expect(keys.status).toBe('failed');
    expect(keys.reason).toContain(
      'references secret `billing-keys`, which has no key `password` in `production`',
    );
    // One Secret read whole (for its key names), two as metadata only.
    const delta = (form: string) =>
      (after[`secrets ${form}`] ?? 0) - (before[`secrets ${form}`] ?? 0);
    expect(delta('Object')).toBe(1);
    expect(delta('PartialObjectMetadata')).toBe(2);
    // No value in the evidence.
    expect(JSON.stringify(keys.evidence)).not.toContain('s3cret');

    before = await reads();
    const names = await gate.run(namesOnly, 'preflight');
    after = await reads();
    expect(delta('Object')).toBe(0);
    expect(delta('PartialObjectMetadata')).toBe(3);
    expect(names.status).toBe('passed');
    const evidence = names.evidence as ParityEvidence;
    expect(
      evidence.references.find(r => r.name === 'billing-keys'),
    ).toMatchObject({ exists: true, keys: ['password'], keysChecked: false });
    // A missing Secret is still found by its name.
    sim.store.delete('secrets', 'production', 'billing-env');
    const missing = await gate.run(namesOnly, 'preflight');
    expect(missing.status).toBe('failed');
    expect(missing.reason).toContain(
      'references secret `billing-env`, which does not exist in `production`',
    );
  });

  it('is an error when the source stage has no such workload or the cluster is unreachable', async () => {
    const missing = await gate.run(
      contextFor('production', 'no-such-app'),
      'preflight',
    );
    expect(missing.status).toBe('error');
    expect(missing.reason).toContain(
      'no Deployment labelled backstage.io/kubernetes-id=no-such-app in staging',
    );
    const context = contextFor('production', 'payments-api');
    const gone = {
      ...context.location!.cluster,
      name: 'gone',
      url: 'http://127.0.0.1:9',
    };
    const unreachable = await gate.run(
      {
        ...context,
        source: {
          ...context.source!,
          location: { cluster: gone, namespace: 'staging' },
        },
      },
      'preflight',
    );
    expect(unreachable.status).toBe('error');
    expect(unreachable.reason).toMatch(/^cannot compare the workloads: /);
  });
});

describe('podTemplateReferences', () => {
  it('collects env, envFrom, volumes, projected sources and imagePullSecrets, skipping optional ones', () => {
    const refs = podTemplateReferences({
      spec: {
        imagePullSecrets: [{ name: 'registry' }],
        initContainers: [
          {
            name: 'init',
            envFrom: [{ configMapRef: { name: 'init-env' } }],
          },
        ],
        containers: [
          {
            name: 'api',
            envFrom: [
              { secretRef: { name: 'api-env' } },
              { secretRef: { name: 'maybe', optional: true } },
            ],
            env: [
              {
                name: 'A',
                valueFrom: { configMapKeyRef: { name: 'cm', key: 'a' } },
              },
            ],
          },
        ],
        volumes: [
          { name: 'tls', secret: { secretName: 'api-tls' } },
          {
            name: 'bundle',
            projected: {
              sources: [
                {
                  configMap: {
                    name: 'cm',
                    items: [{ key: 'b', path: 'b' }],
                  },
                },
                { secret: { name: 'opt', optional: true } },
              ],
            },
          },
        ],
      },
    });
    expect(refs).toEqual([
      {
        kind: 'ConfigMap',
        name: 'init-env',
        keys: [],
        usedBy: ['init container init envFrom'],
      },
      {
        kind: 'ConfigMap',
        name: 'cm',
        keys: ['a', 'b'],
        usedBy: ['container api env A', 'volume bundle'],
      },
      {
        kind: 'Secret',
        name: 'api-env',
        keys: [],
        usedBy: ['container api envFrom'],
      },
      { kind: 'Secret', name: 'api-tls', keys: [], usedBy: ['volume tls'] },
      {
        kind: 'Secret',
        name: 'registry',
        keys: [],
        usedBy: ['imagePullSecrets'],
      },
    ]);
  });
});

describe('readParityGateConfig', () => {
  const stage = (parity: unknown) =>
    new ConfigReader({ gates: { parity } } as any);

  it('reads true, {}, the secrets mode and false', () => {
    expect(readParityGateConfig(stage(true), 's')).toEqual({ secrets: 'keys' });
    expect(readParityGateConfig(stage({}), 's')).toEqual({ secrets: 'keys' });
    expect(readParityGateConfig(stage({ secrets: 'names' }), 's')).toEqual({
      secrets: 'names',
    });
    expect(readParityGateConfig(stage(false), 's')).toBeUndefined();
    expect(readParityGateConfig(new ConfigReader({}), 's')).toBeUndefined();
  });

  it('names the bad key', () => {
    expect(errorOf(() => readParityGateConfig(stage('on'), 's')).message).toBe(
      "Invalid Progression configuration at 's.gates.parity': must be true or { secrets: keys | names }",
    );
    expect(
      errorOf(() => readParityGateConfig(stage({ secrets: 'values' }), 's'))
        .key,
    ).toBe('s.gates.parity.secrets');
    expect(
      errorOf(() => readParityGateConfig(stage({ flags: false }), 's')).key,
    ).toBe('s.gates.parity.flags');
  });
});
