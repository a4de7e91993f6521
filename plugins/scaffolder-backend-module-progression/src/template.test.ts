import {
  mockCredentials,
  mockServices,
  startTestBackend,
} from '@backstage/backend-test-utils';
import {
  DefaultNamespaceEntityPolicy,
  Entity,
  EntityPolicies,
  FieldFormatEntityPolicy,
  NoForeignRootFieldsEntityPolicy,
  SchemaValidEntityPolicy,
  componentEntityV1alpha1Validator,
} from '@backstage/catalog-model';
import { catalogServiceMock } from '@backstage/plugin-catalog-node/testUtils';
import scaffolderPlugin from '@backstage/plugin-scaffolder-backend';
// The tests run the real Progression backend beside the scaffolder.
// eslint-disable-next-line @backstage/no-mixed-plugin-imports
import progressionPlugin from '@progression-io/backstage-plugin-progression-backend';
// The GitOps variant's pipeline deploys through the argocd module, in the
// same backend.
import progressionModuleArgoCd from '@progression-io/backstage-plugin-progression-backend-module-argocd';
import {
  ArgoCdStandIn,
  GitServer,
  KubeSimulator,
} from '@internal/kube-simulator';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import yaml from 'js-yaml';
import request from 'supertest';
import { scaffolderModuleProgression } from './module';

/*
 * The software template examples/templates/progressive-service, run through
 * the real scaffolder in a dry run, with this module's actions and the
 * demo's pipelines: what it generates builds with kustomize, applies to a
 * cluster with the real kubectl, is a valid catalog entity, and its CI
 * workflow calls Progression's REST API as docs/api.md says. Its GitOps
 * variant's repository, served by a real Git server, is synced by the Argo
 * CD stand-in from the Applications it holds, and Progression's argocd
 * deployer promotes a release through them.
 */

// Real servers and processes: more than Jest's default 5 s per test.
jest.setTimeout(120_000);

const run = promisify(execFile);

const TEMPLATE_DIR = path.resolve(
  __dirname,
  '../../../examples/templates/progressive-service',
);

function findExecutable(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(dir, name);
    if (fs.existsSync(candidate)) return candidate;
  }
  return undefined;
}

// kubectl is on this machine's image and CI's; scripts/test.sh sets
// PROGRESSION_REQUIRE_KUBECTL so that a run without it fails, not skips.
const kubectlPath = findExecutable('kubectl');
const describeWithKubectl = kubectlPath ? describe : describe.skip;
// Their name says why they were skipped.
const WITH_KUBECTL = kubectlPath
  ? 'with kubectl'
  : 'with kubectl (skipped: kubectl is not on PATH)';
// The workflow's scripts run with bash, curl and jq, as on GitHub's runners.
const hasShellTools = ['bash', 'curl', 'jq'].every(t => findExecutable(t));
const describeWithShellTools = hasShellTools ? describe : describe.skip;

it('has kubectl when the test script requires it', () => {
  expect(Boolean(kubectlPath) || !process.env.PROGRESSION_REQUIRE_KUBECTL).toBe(
    true,
  );
});

// The demo's pipelines (app-config.yaml), on the simulator's cluster.
const smokeChecks = [
  { path: '/healthz', assert: "status = 'ok'", retries: 2 },
  { path: '/api/version', assert: '$exists(version)' },
  { path: '/api/db-status', assert: 'connected = true' },
  {
    name: 'test action',
    method: 'POST',
    path: '/api/test-action',
    body: { amount: 1 },
    expectStatus: 201,
    assert: 'ok = true',
  },
];
const productionGates = {
  isolation: { observerNamespace: 'backstage' },
  parity: true,
  job: { migration: { command: ['./migrate', 'up'], timeout: '2m' } },
  smoke: { checks: smokeChecks },
};
// The GitOps variant's Git server and Argo CD (the simulator's stand-ins).
const GIT_TOKEN = 'template-git-token';
const ARGO_TOKEN = 'template-argocd-token';
const gitopsDeploy = {
  kind: 'argocd',
  instance: 'local',
  git: { token: GIT_TOKEN },
};

function progressionConfig(clusterUrl: string) {
  return {
    clusters: [
      {
        name: 'local',
        url: clusterUrl,
        authProvider: 'serviceAccount',
        serviceAccountToken: 'progression-demo-token',
        skipTLSVerify: true,
      },
    ],
    pipelines: {
      standard: {
        title: 'Standard',
        description: 'Development, then staging, then production.',
        stages: [
          {
            name: 'development',
            title: 'Development',
            cluster: 'local',
            namespace: 'development',
            url: 'http://127.0.0.1:7101/{{ kubernetesId }}',
            autoPromote: true,
            gates: { smoke: { checks: smokeChecks } },
          },
          {
            name: 'staging',
            title: 'Staging',
            cluster: 'local',
            namespace: 'staging',
            url: 'http://127.0.0.1:7102/{{ kubernetesId }}',
            soak: '1m',
            gates: {
              smoke: { checks: smokeChecks },
              load: {
                path: '/api/version',
                connections: 4,
                duration: '3s',
                rate: 50,
                thresholds: { p95: '300ms', errorRate: 0.05 },
              },
            },
          },
          {
            name: 'production',
            title: 'Production',
            cluster: 'local',
            namespace: 'production',
            url: 'http://127.0.0.1:7103/{{ kubernetesId }}',
            approval: {
              required: true,
              approvers: ['group:default/release-managers'],
              expiresAfter: '24h',
            },
            gates: productionGates,
          },
        ],
      },
      'fast-lane': {
        title: 'Fast lane',
        description: 'Staging, then production.',
        stages: [
          {
            name: 'staging',
            title: 'Staging',
            cluster: 'local',
            namespace: 'staging',
            url: 'http://127.0.0.1:7102/{{ kubernetesId }}',
            autoPromote: true,
            gates: { smoke: { checks: smokeChecks } },
          },
          {
            name: 'production',
            title: 'Production',
            cluster: 'local',
            namespace: 'production',
            url: 'http://127.0.0.1:7103/{{ kubernetesId }}',
            approval: {
              required: true,
              approvers: ['group:default/release-managers'],
            },
            gates: productionGates,
          },
        ],
      },
      // As app-config.yaml's gitops pipeline, without the smoke checks
      // (nothing answers at the stages' URLs here): every stage deploys
      // through the argocd module, by a commit and Argo CD's sync.
      gitops: {
        title: 'GitOps',
        description: 'Development, staging, production through Argo CD.',
        stages: [
          {
            name: 'dev',
            title: 'Development',
            cluster: 'local',
            namespace: 'development',
            autoPromote: true,
            readyTimeout: '20s',
            rolloutTimeout: '60s',
            deploy: gitopsDeploy,
          },
          {
            name: 'staging',
            title: 'Staging',
            cluster: 'local',
            namespace: 'staging',
            rolloutTimeout: '60s',
            deploy: gitopsDeploy,
          },
          {
            name: 'production',
            title: 'Production',
            cluster: 'local',
            namespace: 'production',
            rolloutTimeout: '60s',
            approval: {
              required: true,
              approvers: ['group:default/release-managers'],
            },
            deploy: gitopsDeploy,
          },
        ],
      },
    },
  };
}

/** The template's directory as the dry-run route takes it. */
function directoryContents(dir: string, prefix = '') {
  const files: { path: string; base64Content: string }[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const relative = prefix ? `${prefix}/${entry.name}` : entry.name;
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      files.push(...directoryContents(full, relative));
    } else {
      files.push({
        path: relative,
        base64Content: fs.readFileSync(full).toString('base64'),
      });
    }
  }
  return files;
}

const template = yaml.load(
  fs.readFileSync(path.join(TEMPLATE_DIR, 'template.yaml'), 'utf8'),
) as any;

// What the form sends: every parameter, defaults filled in.
const values = {
  name: 'orders-api',
  description: 'Takes orders: "quoted", with a colon.',
  owner: 'group:default/team-payments',
  system: 'system:default/shop',
  lifecycle: 'experimental',
  pipeline: 'standard',
  initialVersion: '0.1.0',
  developmentReplicas: 1,
  stagingReplicas: 2,
  productionReplicas: 3,
};

// The service the GitOps tests generate, as the catalog holds it once its
// catalog-info.yaml is registered (Progression reads it from there).
const gitopsEntity = {
  apiVersion: 'backstage.io/v1alpha1',
  kind: 'Component',
  metadata: {
    name: 'payments-api',
    description: 'The payments-api service.',
    annotations: {
      'progression.backstage.io/pipeline': 'gitops',
      'backstage.io/kubernetes-id': 'payments-api',
    },
  },
  spec: {
    type: 'service',
    lifecycle: 'experimental',
    owner: 'group:default/team-payments',
  },
};

let backend: Awaited<ReturnType<typeof startTestBackend>>;
let sim: KubeSimulator;
let git: GitServer;
let argo: ArgoCdStandIn;
let tmp: string;
let kubeconfig: string;

beforeAll(async () => {
  sim = await KubeSimulator.start({ tls: true, podReadyDelayMs: 50 });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'progressive-service-'));
  kubeconfig = path.join(tmp, 'kubeconfig');
  fs.writeFileSync(kubeconfig, sim.kubeconfig());
  git = await GitServer.start({ token: GIT_TOKEN });
  argo = await ArgoCdStandIn.start(sim, {
    token: ARGO_TOKEN,
    repositories: { [git.url]: { username: 'argocd', password: GIT_TOKEN } },
    kubectl: kubectlPath,
  });
  backend = await startTestBackend({
    features: [
      scaffolderPlugin,
      scaffolderModuleProgression,
      // The validate step asks Progression itself (POST /v1/validate).
      progressionPlugin,
      progressionModuleArgoCd,
      catalogServiceMock.factory({
        entities: [
          {
            apiVersion: 'backstage.io/v1alpha1',
            kind: 'User',
            metadata: { name: 'mock' },
            spec: { memberOf: ['team-payments'] },
          },
          gitopsEntity,
        ],
      }),
      mockServices.rootConfig.factory({
        data: {
          argocd: {
            appLocatorMethods: [
              {
                type: 'config',
                instances: [
                  { name: 'local', url: argo.url, token: ARGO_TOKEN },
                ],
              },
            ],
          },
          progression: progressionConfig(sim.url),
        },
      }),
    ],
  });
});

afterAll(async () => {
  await backend?.stop();
  await argo?.stop();
  await git?.stop();
  await sim?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

function dryRun(body: { template?: unknown; values: object }) {
  return request(backend.server)
    .post('/api/scaffolder/v2/dry-run')
    .set('Authorization', mockCredentials.user.header())
    .send({
      template: body.template ?? template,
      values: body.values,
      secrets: {},
      directoryContents: directoryContents(TEMPLATE_DIR),
    });
}

/** Runs the template and writes what it generated into a new folder. */
async function generate(input: object) {
  const res = await dryRun({ values: input });
  if (res.status !== 200) {
    throw new Error(
      `dry run answered ${res.status}: ${JSON.stringify(res.body, null, 2)}`,
    );
  }
  const dir = fs.mkdtempSync(path.join(tmp, 'generated-'));
  for (const file of res.body.directoryContents as {
    path: string;
    base64Content: string;
  }[]) {
    const target = path.join(dir, file.path);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.writeFileSync(target, Buffer.from(file.base64Content, 'base64'));
  }
  const files = (res.body.directoryContents as { path: string }[])
    .map(f => f.path)
    .sort();
  return { dir, files, output: res.body.output, log: res.body.log as any[] };
}

const read = (dir: string, file: string) =>
  fs.readFileSync(path.join(dir, file), 'utf8');

async function kubectl(args: string[], stdin?: string) {
  return new Promise<{ code: number; stdout: string; stderr: string }>(
    resolve => {
      const child = spawn(kubectlPath!, args, {
        env: { ...process.env, KUBECONFIG: kubeconfig, HOME: tmp },
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', d => (stdout += d));
      child.stderr.on('data', d => (stderr += d));
      child.on('close', code => resolve({ code: code ?? -1, stdout, stderr }));
      child.stdin.end(stdin ?? '');
    },
  );
}

async function ok(args: string[], stdin?: string) {
  const result = await kubectl(args, stdin);
  if (result.code !== 0) {
    throw new Error(
      `kubectl ${args.join(' ')} failed (${result.code}): ${result.stderr}`,
    );
  }
  return result.stdout;
}

describe('the progressive-service template', () => {
  let standard: Awaited<ReturnType<typeof generate>>;

  beforeAll(async () => {
    standard = await generate(values);
  });

  it('is an entity the catalog accepts', async () => {
    const policy = EntityPolicies.allOf([
      new DefaultNamespaceEntityPolicy(),
      new NoForeignRootFieldsEntityPolicy(),
      new FieldFormatEntityPolicy(),
      new SchemaValidEntityPolicy(),
    ]);
    await expect(policy.enforce(template)).resolves.toBeDefined();
    expect(template).toMatchObject({
      apiVersion: 'scaffolder.backstage.io/v1beta3',
      kind: 'Template',
    });
  });

  it('generates the service, its manifests for every stage, its docs and CI', () => {
    expect(standard.files).toEqual(
      [
        '.github/workflows/release.yaml',
        'Dockerfile',
        'README.md',
        'base/deployment.yaml',
        'base/kustomization.yaml',
        'base/service.yaml',
        'catalog-info.yaml',
        'progression/smoke-checks.yaml',
        'server.js',
        ...['development', 'production', 'staging'].flatMap(stage =>
          [
            'feature-flags.yaml',
            'kustomization.yaml',
            'namespace.yaml',
            'network-policies.yaml',
          ].map(f => `overlays/${stage}/${f}`),
        ),
      ].sort(),
    );
    // Nothing of the templating is left over.
    for (const file of standard.files) {
      const text = read(standard.dir, file);
      expect(text).not.toMatch(/\{%|values\./);
    }
  });

  it('checks the pipeline against the configuration, which says valid', () => {
    expect(standard.output).toMatchObject({
      entityRef: 'component:default/orders-api',
      pipeline: 'standard',
      deployMode: 'kubernetes',
      pipelineValid: true,
      stages: ['development', 'staging', 'production'],
    });
    const text = standard.output.text.map((t: any) => t.content).join('\n');
    expect(text).toContain('development → staging → production');
    expect(text).toContain("checked against this Backstage's configuration");
    expect(standard.output.links).toEqual([
      expect.objectContaining({ entityRef: 'group:default/team-payments' }),
    ]);
    // The validate step ran for real, not skipped as dry runs skip actions
    // that do not support them.
    const validateLog = standard.log
      .filter(l => l.body.stepId === 'validate')
      .map(l => l.body.message)
      .join('\n');
    expect(validateLog).not.toContain('does not support dry-run');
  });

  it('writes a valid Component with the Progression annotations', async () => {
    const entity = yaml.load(read(standard.dir, 'catalog-info.yaml')) as Entity;
    const policy = EntityPolicies.allOf([
      new DefaultNamespaceEntityPolicy(),
      new NoForeignRootFieldsEntityPolicy(),
      new FieldFormatEntityPolicy(),
      new SchemaValidEntityPolicy(),
    ]);
    const enforced = await policy.enforce(entity);
    expect(enforced).toBeDefined();
    expect(await componentEntityV1alpha1Validator.check(enforced!)).toBe(true);
    expect(entity).toEqual({
      apiVersion: 'backstage.io/v1alpha1',
      kind: 'Component',
      metadata: {
        name: 'orders-api',
        description: 'Takes orders: "quoted", with a colon.',
        annotations: {
          'progression.backstage.io/pipeline': 'standard',
          'backstage.io/kubernetes-id': 'orders-api',
        },
      },
      spec: {
        type: 'service',
        lifecycle: 'experimental',
        owner: 'group:default/team-payments',
        system: 'system:default/shop',
      },
    });
    // The entity the validate step checked is the same.
    const step = template.spec.steps.find((s: any) => s.id === 'validate');
    expect(Object.keys(step.input.entity.metadata.annotations)).toEqual(
      Object.keys(entity.metadata.annotations!),
    );
  });

  describeWithKubectl(WITH_KUBECTL, () => {
    it('builds every overlay with kustomize, and they apply to a cluster', async () => {
      const expected = [
        { stage: 'development', environment: 'dev', replicas: 1 },
        { stage: 'staging', environment: 'staging', replicas: 2 },
        { stage: 'production', environment: 'prod', replicas: 3 },
      ];
      for (const { stage, environment, replicas } of expected) {
        const built = await ok([
          'kustomize',
          path.join(standard.dir, 'overlays', stage),
        ]);
        const objects = yaml.loadAll(built) as any[];
        expect(objects.map(o => `${o.kind}/${o.metadata.name}`).sort()).toEqual(
          [
            'ConfigMap/feature-flags',
            'Deployment/orders-api',
            `Namespace/${stage}`,
            'NetworkPolicy/allow-from-backstage',
            'NetworkPolicy/allow-same-environment',
            'NetworkPolicy/default-deny-ingress',
            'Service/orders-api',
          ].sort(),
        );
        // The namespace comes first, its objects in it.
        expect(objects[0].kind).toBe('Namespace');
        expect(objects[0].metadata.namespace).toBeUndefined();
        for (const o of objects.slice(1)) {
          expect(o.metadata.namespace).toBe(stage);
        }

        const applied = await ok(['apply', '-f', '-'], built);
        expect(applied).toContain(`namespace/${stage} created`);
        expect(applied).toContain('deployment.apps/orders-api created');

        const deployment = JSON.parse(
          await ok([
            'get',
            'deployment',
            '-n',
            stage,
            '-l',
            'backstage.io/kubernetes-id=orders-api',
            '-o',
            'json',
          ]),
        ).items;
        expect(deployment).toHaveLength(1);
        expect(deployment[0].metadata.name).toBe('orders-api');
        expect(deployment[0].spec.replicas).toBe(replicas);
        expect(deployment[0].spec.template.spec.containers).toEqual([
          expect.objectContaining({
            name: 'orders-api',
            image: 'registry.local/orders-api:0.1.0',
          }),
        ]);
        await ok([
          'rollout',
          'status',
          'deployment/orders-api',
          '-n',
          stage,
          '--timeout=30s',
        ]);

        const namespace = JSON.parse(
          await ok(['get', 'namespace', stage, '-o', 'json']),
        );
        expect(namespace.metadata.labels.environment).toBe(environment);
        const policies = JSON.parse(
          await ok(['get', 'networkpolicy', '-n', stage, '-o', 'json']),
        ).items;
        const allow = policies.find(
          (p: any) => p.metadata.name === 'allow-same-environment',
        );
        expect(allow.spec.ingress).toEqual([
          { from: [{ namespaceSelector: { matchLabels: { environment } } }] },
        ]);
        const backstage = policies.find(
          (p: any) => p.metadata.name === 'allow-from-backstage',
        );
        expect(backstage.spec.ingress).toEqual([
          {
            from: [
              {
                namespaceSelector: {
                  matchLabels: { 'kubernetes.io/metadata.name': 'backstage' },
                },
              },
            ],
          },
        ]);
        const deny = policies.find(
          (p: any) => p.metadata.name === 'default-deny-ingress',
        );
        expect(deny.spec).toMatchObject({
          podSelector: {},
          policyTypes: ['Ingress'],
        });
        const flags = JSON.parse(
          await ok([
            'get',
            'configmap',
            'feature-flags',
            '-n',
            stage,
            '-o',
            'json',
          ]),
        );
        expect(JSON.parse(flags.data['flags.json'])).toEqual({
          $schema: 'https://flagd.dev/schema/v0/flags.json',
          flags: {
            'orders-api-new-feature': {
              state: 'ENABLED',
              variants: { on: true, off: false },
              defaultVariant: stage === 'production' ? 'off' : 'on',
            },
          },
        });
      }
      // Applying again changes nothing.
      const again = await ok([
        'apply',
        '-k',
        path.join(standard.dir, 'overlays', 'staging'),
      ]);
      expect(again).toContain('deployment.apps/orders-api unchanged');
    });
  });

  it('documents the smoke checks the pipeline runs', () => {
    const doc = yaml.load(
      read(standard.dir, 'progression/smoke-checks.yaml'),
    ) as any;
    expect(doc.gates.smoke.checks).toEqual(smokeChecks);
    expect(read(standard.dir, 'progression/smoke-checks.yaml')).toContain(
      'http://127.0.0.1:7102/orders-api',
    );
    // The generated service answers them.
    const server = read(standard.dir, 'server.js');
    for (const check of smokeChecks) expect(server).toContain(check.path);
  });

  describe('its GitHub Actions workflow', () => {
    let workflow: any;
    let text: string;

    beforeAll(() => {
      text = read(standard.dir, '.github/workflows/release.yaml');
      workflow = yaml.load(text);
    });

    /** A step's run script with the workflow's env expanded, as bash would. */
    function script(step: any) {
      return String(step.run).replace(
        /\$\{?([A-Z_]+)\}?/g,
        (all, name) => workflow.env[name] ?? all,
      );
    }

    it('is valid YAML with GitHub expressions only', () => {
      expect(workflow.on.push.branches).toEqual(['main']);
      // Every push to main builds (paths-ignore is the GitOps variant's).
      expect(workflow.on.push['paths-ignore']).toBeUndefined();
      expect(workflow.on.workflow_dispatch.inputs.stage.options).toEqual([
        'development',
        'staging',
        'production',
      ]);
      expect(workflow.env).toEqual({
        ENTITY_PATH: 'component/default/orders-api',
        IMAGE_REPOSITORY: 'registry.local/orders-api',
      });
      const expressions = text.match(/\$\{\{[^}]*\}\}/g) ?? [];
      expect(expressions.length).toBeGreaterThan(10);
      for (const expression of expressions) {
        expect(expression).toMatch(
          /^\$\{\{ (github|secrets|vars|steps|inputs)\.[a-zA-Z_.]+ \}\}$/,
        );
      }
      expect(text).toContain('${{ github.sha }}');
    });

    it('builds the image and registers it with the REST API, failing on anything but 2xx', () => {
      const { steps } = workflow.jobs.release;
      expect(steps.map((s: any) => s.uses).filter(Boolean)).toEqual(
        expect.arrayContaining(['docker/build-push-action@v6']),
      );
      const register = steps.find((s: any) =>
        String(s.run).includes('/releases'),
      );
      expect(register.env).toMatchObject({
        BACKSTAGE_URL: '${{ vars.BACKSTAGE_URL }}',
        BACKSTAGE_TOKEN: '${{ secrets.BACKSTAGE_TOKEN }}',
        COMMIT: '${{ github.sha }}',
        RUN_URL:
          '${{ github.server_url }}/${{ github.repository }}/actions/runs/${{ github.run_id }}',
      });
      const sh = script(register);
      expect(sh).toContain(
        '"$BACKSTAGE_URL/api/progression/v1/entities/component/default/orders-api/releases"',
      );
      expect(sh).toContain('-X POST');
      expect(sh).toContain('Authorization: Bearer $BACKSTAGE_TOKEN');
    });

    it('requests a promotion with an Idempotency-Key and polls it until it ends', () => {
      const { steps } = workflow.jobs.promote;
      const sh = steps.map(script).join('\n');
      expect(sh).toContain(
        '"$BACKSTAGE_URL/api/progression/v1/entities/component/default/orders-api/promotions"',
      );
      expect(sh).toContain('Idempotency-Key: $IDEMPOTENCY_KEY');
      expect(sh).toContain(
        '"$BACKSTAGE_URL/api/progression/v1/promotions/$PROMOTION_ID"',
      );
      expect(workflow.jobs.promote.env).toEqual({
        BACKSTAGE_URL: '${{ vars.BACKSTAGE_URL }}',
        BACKSTAGE_TOKEN: '${{ secrets.BACKSTAGE_TOKEN }}',
      });
    });

    describeWithShellTools(
      'its scripts, run against a stand-in for Progression',
      () => {
        let server: http.Server;
        let url: string;
        const received: {
          method: string;
          url: string;
          headers: http.IncomingHttpHeaders;
          body: any;
        }[] = [];
        let answers: Record<string, { status: number; body: unknown }>;

        beforeAll(async () => {
          server = http.createServer((req, res) => {
            let data = '';
            req.on('data', d => (data += d));
            req.on('end', () => {
              received.push({
                method: req.method!,
                url: req.url!,
                headers: req.headers,
                body: data ? JSON.parse(data) : undefined,
              });
              const answer = answers[`${req.method} ${req.url}`] ?? {
                status: 404,
                body: { error: { name: 'NotFoundError', message: req.url } },
              };
              res.writeHead(answer.status, {
                'Content-Type': 'application/json',
              });
              res.end(JSON.stringify(answer.body));
            });
          });
          await new Promise<void>(resolve =>
            server.listen(0, '127.0.0.1', resolve),
          );
          url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
        });

        afterAll(async () => {
          await new Promise(resolve => server?.close(resolve));
        });

        beforeEach(() => {
          received.length = 0;
        });

        /** Runs a step's script as GitHub would, its env expressions filled in. */
        async function runStep(
          step: any,
          env: Record<string, string>,
          jobEnv: Record<string, string> = {},
        ) {
          const dir = fs.mkdtempSync(path.join(tmp, 'step-'));
          const fill = (value: string) =>
            value.replace(
              /\$\{\{ ([A-Za-z_.]+) \}\}/g,
              (_all, e) => env[e] ?? '',
            );
          const stepEnv = Object.fromEntries(
            Object.entries({ ...jobEnv, ...step.env }).map(([k, v]) => [
              k,
              fill(String(v)),
            ]),
          );
          const output = path.join(dir, 'output');
          const summary = path.join(dir, 'summary');
          fs.writeFileSync(output, '');
          try {
            await run('bash', ['-e', '-c', step.run], {
              cwd: dir,
              env: {
                PATH: process.env.PATH,
                ...workflow.env,
                ...stepEnv,
                GITHUB_OUTPUT: output,
                GITHUB_STEP_SUMMARY: summary,
              },
              timeout: 30_000,
            });
            return { code: 0, output: fs.readFileSync(output, 'utf8') };
          } catch (e: any) {
            return { code: e.code as number, stdout: String(e.stdout) };
          }
        }

        const github = () => ({
          'vars.BACKSTAGE_URL': url,
          'secrets.BACKSTAGE_TOKEN': 'ci-token',
          'steps.version.outputs.version': '1.2.0',
          'steps.version.outputs.image': 'registry.local/orders-api:1.2.0',
          'github.sha': '0123456789abcdef0123456789abcdef01234567',
          'github.server_url': 'https://github.com',
          'github.repository': 'acme/orders-api',
          'github.repository_id': '42',
          'github.run_id': '1001',
          'github.actor': 'jane',
        });

        it('registers the release', async () => {
          const register = workflow.jobs.release.steps.find((s: any) =>
            String(s.run).includes('/releases'),
          );
          const route =
            '/api/progression/v1/entities/component/default/orders-api/releases';
          answers = {
            [`POST ${route}`]: { status: 201, body: { id: 'r1' } },
          };
          expect(await runStep(register, github())).toMatchObject({ code: 0 });
          expect(received).toEqual([
            expect.objectContaining({
              method: 'POST',
              url: route,
              body: {
                version: '1.2.0',
                image: 'registry.local/orders-api:1.2.0',
                commit: '0123456789abcdef0123456789abcdef01234567',
                url: 'https://github.com/acme/orders-api/actions/runs/1001',
              },
            }),
          ]);
          expect(received[0].headers.authorization).toBe('Bearer ci-token');
          expect(received[0].headers['content-type']).toBe('application/json');

          // The same release again: 200, still fine.
          answers[`POST ${route}`] = { status: 200, body: { id: 'r1' } };
          expect(await runStep(register, github())).toMatchObject({ code: 0 });
          // Another image for the same version: 409 fails the job.
          answers[`POST ${route}`] = {
            status: 409,
            body: { error: { name: 'ConflictError', message: 'immutable' } },
          };
          expect(await runStep(register, github())).toMatchObject({
            code: 1,
            stdout: expect.stringContaining('Progression answered 409'),
          });
        });

        it('requests a promotion and waits for its end', async () => {
          const [requestStep, waitStep] = workflow.jobs.promote.steps;
          const route =
            '/api/progression/v1/entities/component/default/orders-api/promotions';
          answers = {
            [`POST ${route}`]: {
              status: 202,
              body: { id: 'p-1', state: 'pending' },
            },
            'GET /api/progression/v1/promotions/p-1': {
              status: 200,
              body: { promotion: { id: 'p-1', state: 'succeeded' } },
            },
          };
          const env = {
            ...github(),
            'inputs.stage': 'staging',
            'inputs.version': '',
          };
          const requested = await runStep(
            requestStep,
            env,
            workflow.jobs.promote.env,
          );
          expect(requested).toMatchObject({ code: 0, output: 'id=p-1\n' });
          expect(received[0]).toMatchObject({
            method: 'POST',
            url: route,
            body: {
              stage: 'staging',
              reason:
                'Requested by jane in https://github.com/acme/orders-api/actions/runs/1001',
            },
          });
          expect(received[0].headers['idempotency-key']).toBe('github-42-1001');

          const waitEnv = { ...env, 'steps.request.outputs.id': 'p-1' };
          expect(
            await runStep(waitStep, waitEnv, workflow.jobs.promote.env),
          ).toMatchObject({ code: 0 });
          expect(received[1]).toMatchObject({
            method: 'GET',
            url: '/api/progression/v1/promotions/p-1',
          });
          expect(received[1].headers.authorization).toBe('Bearer ci-token');

          answers['GET /api/progression/v1/promotions/p-1'] = {
            status: 200,
            body: {
              promotion: { id: 'p-1', state: 'rolled-back', error: 'smoke' },
            },
          };
          expect(
            await runStep(waitStep, waitEnv, workflow.jobs.promote.env),
          ).toMatchObject({
            code: 1,
            stdout: expect.stringContaining('ended rolled-back: smoke'),
          });
        });
      },
    );
  });

  describe('for the fast-lane pipeline, without a system', () => {
    let fast: Awaited<ReturnType<typeof generate>>;

    beforeAll(async () => {
      fast = await generate({
        ...values,
        name: 'web-cart',
        pipeline: 'fast-lane',
        system: undefined,
        imageRepository: 'ghcr.io/acme/web-cart',
      });
    });

    it('leaves out the development stage and the system', async () => {
      expect(fast.files.filter(f => f.startsWith('overlays/'))).toEqual(
        ['production', 'staging'].flatMap(stage =>
          [
            'feature-flags.yaml',
            'kustomization.yaml',
            'namespace.yaml',
            'network-policies.yaml',
          ].map(f => `overlays/${stage}/${f}`),
        ),
      );
      expect(fast.output).toMatchObject({
        pipelineValid: true,
        stages: ['staging', 'production'],
      });
      const entity = yaml.load(read(fast.dir, 'catalog-info.yaml')) as Entity;
      expect(entity.spec).toEqual({
        type: 'service',
        lifecycle: 'experimental',
        owner: 'group:default/team-payments',
      });
      expect(
        await componentEntityV1alpha1Validator.check(
          (await new SchemaValidEntityPolicy().enforce(entity))!,
        ),
      ).toBe(true);
      const workflow = yaml.load(
        read(fast.dir, '.github/workflows/release.yaml'),
      ) as any;
      expect(workflow.on.workflow_dispatch.inputs.stage.options).toEqual([
        'staging',
        'production',
      ]);
      expect(workflow.env.IMAGE_REPOSITORY).toBe('ghcr.io/acme/web-cart');
    });

    describeWithKubectl(WITH_KUBECTL, () => {
      it('builds its overlays with the image repository it was given', async () => {
        const built = await ok([
          'kustomize',
          path.join(fast.dir, 'overlays', 'production'),
        ]);
        const deployment = (yaml.loadAll(built) as any[]).find(
          o => o.kind === 'Deployment',
        );
        expect(deployment.spec.template.spec.containers[0].image).toBe(
          'ghcr.io/acme/web-cart:0.1.0',
        );
        expect(deployment.spec.replicas).toBe(3);
      });
    });
  });

  it('refuses a pipeline outside its list', async () => {
    const res = await dryRun({ values: { ...values, pipeline: 'nope' } });
    expect(res.status).toBe(400);
    expect(res.body.errors).toEqual([
      expect.objectContaining({
        property: 'instance.pipeline',
        name: 'enum',
      }),
    ]);
  });

  it('fails at the validate step when the pipeline is not configured', async () => {
    // A template whose list names a pipeline this Backstage does not run
    // (one renamed or removed since): the validate step catches it.
    const stale = JSON.parse(JSON.stringify(template));
    const releases = stale.spec.parameters.find(
      (p: any) => p.properties?.pipeline,
    );
    releases.properties.pipeline.enum.push('nope');
    releases.properties.pipeline.enumNames.push('Nope');

    const res = await dryRun({
      template: stale,
      values: { ...values, pipeline: 'nope' },
    });
    // The step's error, not the form's validation (which answers `errors`).
    expect(res.status).toBe(400);
    expect(res.body.errors).toBeUndefined();
    expect(res.body.error.name).toBe('InputError');
    const message = res.body.error.message;
    expect(message).toContain("pipeline 'nope'");
    expect(message).toContain('is not configured');
    expect(message).toContain("configured pipelines: 'standard', 'fast-lane'");
  });
});

/** Polls until `ok` holds, failing with the last value after the timeout. */
async function until<T>(
  what: string,
  readValue: () => Promise<T> | T,
  done: (value: T) => boolean,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let value = await readValue();
  while (!done(value)) {
    if (Date.now() > deadline) {
      throw new Error(`${what}: still ${JSON.stringify(value)}`);
    }
    await new Promise(r => setTimeout(r, 100));
    value = await readValue();
  }
  return value;
}

describe('the progressive-service template for the gitops pipeline', () => {
  // The demo's gitops pipeline (app-config.yaml): its stages, in order, and
  // their namespaces, as the template's deploy-stages step lists them.
  const STAGES = [
    { stage: 'dev', namespace: 'development', replicas: 1 },
    { stage: 'staging', namespace: 'staging', replicas: 2 },
    { stage: 'production', namespace: 'production', replicas: 3 },
  ];
  const IMAGE = 'ghcr.io/acme/payments-api';
  let repoUrl: string;
  let gitops: Awaited<ReturnType<typeof generate>>;

  const gitopsValues = () => ({
    ...values,
    name: 'payments-api',
    description: undefined,
    system: undefined,
    pipeline: 'gitops',
    imageRepository: IMAGE,
    // A tag YAML would read as a number unquoted.
    initialVersion: '1.0',
    repositoryUrl: repoUrl,
  });

  beforeAll(async () => {
    repoUrl = git.repoUrl('payments-api');
    gitops = await generate(gitopsValues());
  });

  it('writes deploy/ (base, an overlay and an Argo CD Application per stage) instead of base/ and overlays/', () => {
    expect(gitops.files).toEqual(
      [
        '.github/workflows/release.yaml',
        'Dockerfile',
        'README.md',
        'catalog-info.yaml',
        'deploy/base/deployment.yaml',
        'deploy/base/kustomization.yaml',
        'deploy/base/service.yaml',
        ...STAGES.flatMap(({ stage }) => [
          `deploy/argocd/payments-api-${stage}.yaml`,
          `deploy/overlays/${stage}/kustomization.yaml`,
        ]),
        'progression/smoke-checks.yaml',
        'server.js',
      ].sort(),
    );
    for (const file of gitops.files) {
      const text = read(gitops.dir, file);
      expect(text).not.toMatch(/\{%|values\.|each\./);
    }
  });

  it('names the gitops pipeline, whose stages the configuration confirms', async () => {
    expect(gitops.output).toMatchObject({
      entityRef: 'component:default/payments-api',
      pipeline: 'gitops',
      deployMode: 'gitops',
      pipelineValid: true,
      stages: STAGES.map(s => s.stage),
    });
    const text = gitops.output.text.map((t: any) => t.content).join('\n');
    expect(text).toContain('dev → staging → production');
    expect(text).toContain('kubectl apply -n argocd -f deploy/argocd/');
    expect(text).toContain(repoUrl);
    expect(text).not.toContain('overlays/<stage>`: Kustomize manifests; each');

    // The catalog entry is the one Progression reads (the catalog's copy).
    const entity = yaml.load(read(gitops.dir, 'catalog-info.yaml')) as Entity;
    expect(entity).toEqual(gitopsEntity);
    expect(
      await componentEntityV1alpha1Validator.check(
        (await new SchemaValidEntityPolicy().enforce(entity))!,
      ),
    ).toBe(true);
    // The workflow promotes into the pipeline's stages.
    const workflow = yaml.load(
      read(gitops.dir, '.github/workflows/release.yaml'),
    ) as any;
    expect(workflow.on.workflow_dispatch.inputs.stage.options).toEqual(
      STAGES.map(s => s.stage),
    );
    expect(read(gitops.dir, 'README.md')).toContain(
      'kubectl apply -n argocd -f deploy/argocd/',
    );
  });

  it('writes one Application per stage: named <name>-<stage>, syncing its overlay from the repository; automated with prune and selfHeal first, automated between, by hand last', () => {
    STAGES.forEach(({ stage, namespace }, i) => {
      const app = yaml.load(
        read(gitops.dir, `deploy/argocd/payments-api-${stage}.yaml`),
      ) as any;
      // The first stage follows Git exactly (prune, selfHeal); the ones
      // between sync automatically, neither pruning nor healing (as
      // `automated: {}`); the last has no automated sync.
      let syncPolicy: object | undefined = {
        automated: { prune: false, selfHeal: false },
      };
      if (i === 0) syncPolicy = { automated: { prune: true, selfHeal: true } };
      if (i === STAGES.length - 1) syncPolicy = undefined;
      expect(app).toEqual({
        apiVersion: 'argoproj.io/v1alpha1',
        kind: 'Application',
        metadata: {
          // {{ kubernetesId }}-{{ stage.name }}: the argocd deployer's default.
          name: `payments-api-${stage}`,
          namespace: 'argocd',
          labels: { 'backstage.io/kubernetes-id': 'payments-api' },
        },
        spec: {
          project: 'default',
          source: {
            repoURL: repoUrl,
            path: `deploy/overlays/${stage}`,
            targetRevision: 'main',
          },
          destination: {
            server: 'https://kubernetes.default.svc',
            namespace,
          },
          syncPolicy,
        },
      });
      expect(Object.keys(app.spec).includes('syncPolicy')).toBe(
        i !== STAGES.length - 1,
      );
    });
  });

  it('keeps its CI from building Progression’s own commits to deploy/', () => {
    const workflow = yaml.load(
      read(gitops.dir, '.github/workflows/release.yaml'),
    ) as any;
    expect(workflow.on.push).toEqual({
      'paths-ignore': ['deploy/**'],
      branches: ['main'],
      tags: ['v*'],
    });
  });

  it('asks for the repository only for the gitops pipeline, and refuses a gitops service without one', async () => {
    const missing = await dryRun({
      values: { ...gitopsValues(), repositoryUrl: undefined },
    });
    expect(missing.status).toBe(400);
    expect(missing.body.errors).toEqual([
      expect.objectContaining({ name: 'required', argument: 'repositoryUrl' }),
    ]);
    const wrong = await dryRun({
      values: { ...gitopsValues(), repositoryUrl: 'not a url' },
    });
    expect(wrong.status).toBe(400);
    expect(wrong.body.errors).toEqual([
      expect.objectContaining({
        property: 'instance.repositoryUrl',
        name: 'pattern',
      }),
    ]);
    // The GitOps page is hidden for the other pipelines: nothing of it
    // reaches their files.
    const standard = await generate({
      ...values,
      repositoryUrl: 'https://example.com/ignored.git',
    });
    expect(standard.files.some(f => f.startsWith('deploy/'))).toBe(false);
    for (const file of standard.files) {
      expect(read(standard.dir, file)).not.toContain('ignored.git');
    }
  });

  describeWithKubectl(WITH_KUBECTL, () => {
    it('builds every overlay with kustomize: the Deployment in the stage’s namespace, with the first tag', async () => {
      for (const { stage, namespace, replicas } of STAGES) {
        const built = await ok([
          'kustomize',
          path.join(gitops.dir, 'deploy', 'overlays', stage),
        ]);
        const objects = yaml.loadAll(built) as any[];
        expect(objects.map(o => `${o.kind}/${o.metadata.name}`).sort()).toEqual(
          ['Deployment/payments-api', 'Service/payments-api'],
        );
        for (const o of objects) {
          expect(o.metadata.namespace).toBe(namespace);
          expect(o.metadata.labels['backstage.io/kubernetes-id']).toBe(
            'payments-api',
          );
        }
        const deployment = objects.find(o => o.kind === 'Deployment');
        expect(deployment.spec.replicas).toBe(replicas);
        expect(deployment.spec.template.spec.containers).toEqual([
          expect.objectContaining({
            name: 'payments-api',
            image: `${IMAGE}:1.0`,
          }),
        ]);
        expect(
          deployment.spec.template.metadata.labels[
            'backstage.io/kubernetes-id'
          ],
        ).toBe('payments-api');
      }
      // The base alone runs the first tag too.
      const base = yaml.loadAll(
        await ok(['kustomize', path.join(gitops.dir, 'deploy', 'base')]),
      ) as any[];
      expect(
        base.find(o => o.kind === 'Deployment').spec.template.spec.containers[0]
          .image,
      ).toBe(`${IMAGE}:1.0`);
    });

    it('is synced by Argo CD from the Applications it holds, and Progression promotes a release through them', async () => {
      // The generated repository, pushed as is.
      await git.createRepository(
        'payments-api',
        Object.fromEntries(gitops.files.map(f => [f, read(gitops.dir, f)])),
        { message: 'payments-api from the progressive-service template' },
      );
      // The stages' namespaces are the platform's.
      for (const { namespace } of STAGES) {
        if (!sim.store.get('namespaces', undefined, namespace)) {
          sim.apply({
            apiVersion: 'v1',
            kind: 'Namespace',
            metadata: { name: namespace },
          });
        }
      }
      // As the README says.
      const applied = await ok([
        'apply',
        '-n',
        'argocd',
        '-f',
        path.join(gitops.dir, 'deploy', 'argocd'),
      ]);
      for (const { stage } of STAGES) {
        expect(applied).toContain(
          `application.argoproj.io/payments-api-${stage} created`,
        );
      }

      const live = (namespace: string) =>
        sim.store.get('deployments', namespace, 'payments-api');
      const liveImage = (namespace: string) =>
        live(namespace)?.spec.template.spec.containers[0].image;
      const synced = (name: string) =>
        until(
          `${name} synced and healthy`,
          () => argo.refresh(name),
          a =>
            a.status?.sync?.status === 'Synced' &&
            a.status?.health?.status === 'Healthy',
        );

      // The automated stages sync by themselves.
      for (const { stage, namespace, replicas } of STAGES.slice(0, -1)) {
        await synced(`payments-api-${stage}`);
        expect(liveImage(namespace)).toBe(`${IMAGE}:1.0`);
        expect(live(namespace)!.spec.replicas).toBe(replicas);
      }
      // The last waits for a sync.
      const production = STAGES[STAGES.length - 1];
      const waiting = await argo.refresh(`payments-api-${production.stage}`);
      expect(waiting.status.sync.status).toBe('OutOfSync');
      expect(live(production.namespace)).toBeUndefined();
      const sync = await fetch(
        `${argo.url}/api/v1/applications/payments-api-${production.stage}/sync`,
        {
          method: 'POST',
          headers: {
            Authorization: `Bearer ${ARGO_TOKEN}`,
            'Content-Type': 'application/json',
          },
          body: '{}',
        },
      );
      expect(sync.status).toBe(200);
      await synced(`payments-api-${production.stage}`);
      expect(liveImage(production.namespace)).toBe(`${IMAGE}:1.0`);

      // A release: Progression promotes it into dev by itself, by a commit
      // to the overlay the Application names, which Argo CD syncs.
      const base =
        '/api/progression/v1/entities/component/default/payments-api';
      const before = await git.log('payments-api');
      const registered = await request(backend.server)
        .post(`${base}/releases`)
        .send({ version: '1.1.0', image: `${IMAGE}:1.1.0` });
      expect(registered.status).toBe(201);
      const id = (
        await until(
          'the promotion into dev',
          async () =>
            (
              await request(backend.server).get(`${base}/promotions?stage=dev`)
            ).body.items ?? [],
          (items: any[]) => items.length > 0,
        )
      )[0].id;
      const promotion = await until(
        `promotion ${id}`,
        async () =>
          (
            await request(backend.server).get(
              `/api/progression/v1/promotions/${id}`,
            )
          ).body,
        (body: any) =>
          ['succeeded', 'failed', 'rolled-back', 'cancelled'].includes(
            body.promotion?.state,
          ),
        90_000,
      );
      expect([promotion.promotion.state, promotion.promotion.error]).toEqual([
        'succeeded',
        undefined,
      ]);
      expect(liveImage('development')).toBe(`${IMAGE}:1.1.0`);
      expect(liveImage('staging')).toBe(`${IMAGE}:1.0`);

      // One commit, to deploy/overlays/dev/kustomization.yaml only, its tag
      // and nothing else changed: a push the workflow's paths-ignore skips.
      const log = await git.log('payments-api');
      expect(log.length - before.length).toBe(1);
      expect(log[0].subject).toBe('Promote payments-api 1.1.0 to dev');
      const { stdout } = await run('git', [
        `--git-dir=${path.join(git.root, 'payments-api.git')}`,
        'diff',
        '--name-only',
        before[0].sha,
        log[0].sha,
      ]);
      expect(stdout.trim().split('\n')).toEqual([
        'deploy/overlays/dev/kustomization.yaml',
      ]);
      const overlay = 'deploy/overlays/dev/kustomization.yaml';
      expect(await git.readFile('payments-api', overlay)).toBe(
        read(gitops.dir, overlay).replace('newTag: "1.0"', 'newTag: "1.1.0"'),
      );
    });
  });
});
