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
  IsolationEvidence,
  IsolationGate,
  readIsolationGateConfig,
  selectorMatches,
} from './IsolationGate';

/*
 * Against the project's Kubernetes API simulator with the demo's
 * namespaces and NetworkPolicies, over HTTP through @kubernetes/client-node.
 */
jest.setTimeout(60_000);

let sim: KubeSimulator;
let demo: Awaited<ReturnType<typeof installDemo>>;
let stages: StageConfig[];
let locations: StageLocation[];
const workloads = new KubernetesWorkloads();
const gate = new IsolationGate();

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

function contextFor(name: string): GateContext {
  const i = stages.findIndex(s => s.name === name);
  return {
    stage: stages[i],
    location: locations[i],
    otherStages: stages
      .map((stage, j) => ({ stage, location: locations[j] }))
      .filter((_, j) => j !== i),
    workloads,
  };
}

function policy(name: string, namespace: string, spec: object) {
  sim.apply({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name, namespace },
    spec,
  });
}

function removePolicy(name: string, namespace: string) {
  sim.store.delete('networkpolicies', namespace, name);
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
          gates: { isolation: true },
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

describe('IsolationGate against the demo cluster', () => {
  it('applies before the approval only', () => {
    expect(gate.appliesTo(stages[2], 'preflight')).toBe(true);
    expect(gate.appliesTo(stages[2], 'predeploy')).toBe(false);
    expect(gate.appliesTo(stages[2], 'verification')).toBe(false);
    expect(
      gate.appliesTo(
        { ...stages[2], gates: { ...stages[2].gates, isolation: undefined } },
        'preflight',
      ),
    ).toBe(false);
  });

  it("passes the demo's namespaces: default-deny plus same-environment ingress", async () => {
    for (const name of ['development', 'staging', 'production']) {
      const result = await gate.run(contextFor(name), 'preflight');
      expect(result).toMatchObject({
        gate: 'isolation',
        phase: 'preflight',
        status: 'passed',
      });
    }
    const result = await gate.run(contextFor('production'), 'preflight');
    const evidence = result.evidence as IsolationEvidence;
    expect(evidence).toMatchObject({
      cluster: 'sim',
      namespace: 'production',
      labels: { environment: 'prod' },
      environmentLabel: 'environment',
      environment: 'prod',
      defaultDeny: 'default-deny-ingress',
      violations: [],
    });
    expect(evidence.policiesChecked.sort()).toEqual([
      'allow-same-environment',
      'default-deny-ingress',
    ]);
    expect(evidence.otherStages).toEqual([
      {
        stage: 'development',
        cluster: 'sim',
        namespace: 'development',
        labels: expect.objectContaining({ environment: 'dev' }),
      },
      {
        stage: 'staging',
        cluster: 'sim',
        namespace: 'staging',
        labels: expect.objectContaining({ environment: 'staging' }),
      },
    ]);
    expect(result.reason).toContain('denies ingress by default');
  });

  it('fails a policy whose namespaceSelector admits staging, naming the rule', async () => {
    policy('allow-from-staging', 'production', {
      podSelector: { matchLabels: { app: 'payments-api' } },
      policyTypes: ['Ingress'],
      ingress: [
        {
          from: [
            { namespaceSelector: { matchLabels: { environment: 'staging' } } },
          ],
          ports: [{ port: 8080 }],
        },
      ],
    });
    try {
      const result = await gate.run(contextFor('production'), 'preflight');
      expect(result.status).toBe('failed');
      expect(result.reason).toBe(
        'policy allow-from-staging rule 0 admits namespace staging (environment=staging)',
      );
      const evidence = result.evidence as IsolationEvidence;
      expect(evidence.violations).toEqual([
        {
          policy: 'allow-from-staging',
          rule: 0,
          peer: {
            namespaceSelector: { matchLabels: { environment: 'staging' } },
          },
          namespace: 'staging',
          stage: 'staging',
          admits: 'namespace staging (environment=staging)',
          description:
            'policy allow-from-staging rule 0 admits namespace staging (environment=staging)',
        },
      ]);
      expect(evidence.defaultDeny).toBe('default-deny-ingress');
    } finally {
      removePolicy('allow-from-staging', 'production');
    }
  });

  it("with an observer namespace, passes only while a rule admits it: Backstage's checks come from there", async () => {
    const observed = (name: string) => {
      const context = contextFor(name);
      return {
        ...context,
        stage: {
          ...context.stage,
          gates: {
            ...context.stage.gates,
            isolation: {
              environmentLabel: 'environment',
              observerNamespace: 'backstage',
            },
          },
        },
      };
    };
    // Not there yet: named, and no pass.
    let result = await gate.run(observed('staging'), 'preflight');
    expect(result.status).toBe('failed');
    expect(result.reason).toBe(
      'the observer namespace backstage does not exist in cluster sim',
    );
    expect((result.evidence as IsolationEvidence).observer).toEqual({
      namespace: 'backstage',
      admittedBy: [],
    });

    sim.apply({
      apiVersion: 'v1',
      kind: 'Namespace',
      // The API server adds the kubernetes.io/metadata.name label itself.
      metadata: { name: 'backstage' },
    });
    try {
      // There, but staging's default-deny keeps it out.
      result = await gate.run(observed('staging'), 'preflight');
      expect(result.status).toBe('failed');
      expect(result.reason).toBe(
        "namespace staging admits nothing from the observer namespace backstage, where Backstage's smoke and load checks come from; add an ingress rule whose namespaceSelector matches it",
      );

      // The template's policy admits it by its name label: passed, and
      // another stage's namespace is still kept out.
      policy('allow-from-backstage', 'staging', {
        podSelector: {},
        policyTypes: ['Ingress'],
        ingress: [
          {
            from: [
              {
                namespaceSelector: {
                  matchLabels: { 'kubernetes.io/metadata.name': 'backstage' },
                },
              },
            ],
          },
        ],
      });
      result = await gate.run(observed('staging'), 'preflight');
      expect(result.status).toBe('passed');
      expect(result.reason).toContain(
        'admits the observer namespace backstage (allow-from-backstage rule 0)',
      );
      expect((result.evidence as IsolationEvidence).observer).toEqual({
        namespace: 'backstage',
        labels: expect.objectContaining({
          'kubernetes.io/metadata.name': 'backstage',
        }),
        admittedBy: ['allow-from-backstage rule 0'],
      });
      expect((result.evidence as IsolationEvidence).violations).toEqual([]);
      // Without the setting the observer is not looked at.
      result = await gate.run(contextFor('staging'), 'preflight');
      expect((result.evidence as IsolationEvidence).observer).toBeUndefined();
    } finally {
      removePolicy('allow-from-backstage', 'staging');
      sim.store.delete('namespaces', '', 'backstage');
    }
  });

  it('evaluates matchExpressions: NotIn admits every other environment', async () => {
    policy('allow-not-prod', 'production', {
      podSelector: {},
      policyTypes: ['Ingress'],
      ingress: [
        {
          from: [
            {
              namespaceSelector: {
                matchExpressions: [
                  { key: 'environment', operator: 'NotIn', values: ['prod'] },
                ],
              },
              podSelector: { matchLabels: { role: 'client' } },
            },
          ],
        },
      ],
    });
    try {
      const result = await gate.run(contextFor('production'), 'preflight');
      expect(result.status).toBe('failed');
      const evidence = result.evidence as IsolationEvidence;
      expect(evidence.violations.map(v => v.description)).toEqual([
        'policy allow-not-prod rule 0 admits namespace development (environment=dev)',
        'policy allow-not-prod rule 0 admits namespace staging (environment=staging)',
      ]);
      expect(result.reason).toBe(
        'policy allow-not-prod rule 0 admits namespace development (environment=dev) (and 1 more)',
      );
    } finally {
      removePolicy('allow-not-prod', 'production');
    }
  });

  it('fails without a default-deny ingress policy', async () => {
    removePolicy('default-deny-ingress', 'staging');
    try {
      const result = await gate.run(contextFor('staging'), 'preflight');
      expect(result.status).toBe('failed');
      expect(result.reason).toBe(
        'namespace staging has no default-deny ingress policy (podSelector {}, policyTypes [Ingress], no ingress rules)',
      );
      expect(result.evidence).toMatchObject({
        defaultDeny: null,
        violations: [],
        policiesChecked: ['allow-same-environment'],
      });
    } finally {
      policy('default-deny-ingress', 'staging', {
        podSelector: {},
        policyTypes: ['Ingress'],
      });
    }
    expect((await gate.run(contextFor('staging'), 'preflight')).status).toBe(
      'passed',
    );
  });

  it('names ipBlock peers, rules without from, and empty namespace selectors', async () => {
    policy('allow-office', 'production', {
      podSelector: {},
      policyTypes: ['Ingress'],
      ingress: [
        { from: [{ podSelector: { matchLabels: { app: 'web-shop' } } }] },
        {
          from: [
            { ipBlock: { cidr: '10.0.0.0/8', except: ['10.244.0.0/16'] } },
          ],
        },
        { ports: [{ port: 9090 }] },
        { from: [{ namespaceSelector: {} }] },
      ],
    });
    try {
      const result = await gate.run(contextFor('production'), 'preflight');
      expect(result.status).toBe('failed');
      const evidence = result.evidence as IsolationEvidence;
      expect(evidence.violations).toEqual([
        expect.objectContaining({
          policy: 'allow-office',
          rule: 1,
          peer: {
            ipBlock: { cidr: '10.0.0.0/8', except: ['10.244.0.0/16'] },
          },
          description:
            'policy allow-office rule 1 admits ipBlock 10.0.0.0/8 except 10.244.0.0/16, which can include pods of other environments',
        }),
        expect.objectContaining({
          rule: 2,
          description:
            'policy allow-office rule 2 admits every source (the rule has no from)',
        }),
        expect.objectContaining({
          rule: 3,
          description:
            'policy allow-office rule 3 admits every namespace (empty namespaceSelector)',
        }),
      ]);
      expect(result.reason).toMatch(
        /^policy allow-office rule 1 admits ipBlock 10\.0\.0\.0\/8 .* \(and 2 more\)$/,
      );
    } finally {
      removePolicy('allow-office', 'production');
    }
  });

  it('is an error, not a pass, when the cluster cannot be read', async () => {
    const context = contextFor('production');
    const result = await gate.run(
      {
        ...context,
        location: {
          cluster: {
            ...context.location!.cluster,
            name: 'gone',
            url: 'http://127.0.0.1:9',
          },
          namespace: 'production',
        },
      },
      'preflight',
    );
    expect(result.status).toBe('error');
    expect(result.reason).toMatch(
      /^cannot read the namespaces and NetworkPolicies: /,
    );
  });
});

describe('selectorMatches', () => {
  const labels = { environment: 'staging', team: 'payments' };
  it.each([
    [{}, true],
    [{ matchLabels: { environment: 'staging' } }, true],
    [{ matchLabels: { environment: 'prod' } }, false],
    [
      {
        matchExpressions: [
          { key: 'environment', operator: 'In', values: ['dev', 'staging'] },
        ],
      },
      true,
    ],
    [
      {
        matchExpressions: [
          { key: 'environment', operator: 'NotIn', values: ['staging'] },
        ],
      },
      false,
    ],
    [
      {
        matchExpressions: [
          { key: 'region', operator: 'NotIn', values: ['eu'] },
        ],
      },
      true,
    ],
    [{ matchExpressions: [{ key: 'team', operator: 'Exists' }] }, true],
    [{ matchExpressions: [{ key: 'team', operator: 'DoesNotExist' }] }, false],
    [{ matchExpressions: [{ key: 'region', operator: 'DoesNotExist' }] }, true],
  ])('%j matches: %s', (selector, expected) => {
    expect(selectorMatches(selector, labels)).toBe(expected);
  });
});

describe('readIsolationGateConfig', () => {
  const stage = (isolation: unknown) =>
    new ConfigReader({ gates: { isolation } } as any);

  it('reads true, an object, and false', () => {
    expect(readIsolationGateConfig(stage(true), 's')).toEqual({
      environmentLabel: 'environment',
    });
    expect(
      readIsolationGateConfig(
        stage({ environmentLabel: 'example.com/env' }),
        's',
      ),
    ).toEqual({ environmentLabel: 'example.com/env' });
    expect(
      readIsolationGateConfig(stage({ observerNamespace: 'backstage' }), 's'),
    ).toEqual({
      environmentLabel: 'environment',
      observerNamespace: 'backstage',
    });
    expect(readIsolationGateConfig(stage(false), 's')).toBeUndefined();
    expect(readIsolationGateConfig(new ConfigReader({}), 's')).toBeUndefined();
  });

  it('names the bad key', () => {
    expect(
      errorOf(() =>
        readIsolationGateConfig(stage({ environmentLabel: 'bad label' }), 's'),
      ).key,
    ).toBe('s.gates.isolation.environmentLabel');
    expect(
      errorOf(() => readIsolationGateConfig(stage({ label: 'env' }), 's')).key,
    ).toBe('s.gates.isolation.label');
    for (const bad of ['Backstage', 'a/b', '', 7]) {
      expect(
        errorOf(() =>
          readIsolationGateConfig(stage({ observerNamespace: bad }), 's'),
        ).key,
      ).toBe('s.gates.isolation.observerNamespace');
    }
    expect(
      errorOf(() => readIsolationGateConfig(stage('yes'), 's')).message,
    ).toBe(
      "Invalid Progression configuration at 's.gates.isolation': must be true or an object { environmentLabel, observerNamespace }",
    );
  });

  it('refuses a bad value at start-up through readProgressionConfig', () => {
    const error = errorOf(() =>
      read({
        clusters: [{ name: 'c', url: 'http://127.0.0.1:1' }],
        pipelines: {
          p: {
            stages: [
              {
                name: 'prod',
                cluster: 'c',
                namespace: 'prod',
                gates: { isolation: { environmentLabel: '' } },
              },
            ],
          },
        },
      }),
    );
    expect(error.key).toBe(
      'progression.pipelines.p.stages[0].gates.isolation.environmentLabel',
    );
  });
});
