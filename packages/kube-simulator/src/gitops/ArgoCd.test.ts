import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { KubeSimulator } from '../KubeSimulator';
import { KubeObject } from '../store/Store';
import { waitFor } from '../testUtils/waitFor';
import { ArgoCdStandIn } from './ArgoCd';
import { GitServer } from './GitServer';

// Real servers and processes: allow more than Jest's default 5 s per test.
jest.setTimeout(120_000);

/*
 * The Argo CD stand-in end to end: manifests in a Git repository served by
 * GitServer (git http-backend), rendered by the real `kubectl kustomize`,
 * applied to the simulator, read back with the real kubectl and through the
 * REST API. Needs kubectl, as src/kubectl.test.ts does.
 */
const run = promisify(execFile);

function findKubectl(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(dir, 'kubectl');
    if (fs.existsSync(candidate)) return candidate;
  }
  return undefined;
}

const kubectlPath = findKubectl();
const describeWithKubectl = kubectlPath ? describe : describe.skip;
if (!kubectlPath) {
  // eslint-disable-next-line no-console
  console.warn(
    'kubectl is not on PATH: the Argo CD stand-in tests are skipped',
  );
}

it('has kubectl when the test script requires it', () => {
  expect(Boolean(kubectlPath) || !process.env.PROGRESSION_REQUIRE_KUBECTL).toBe(
    true,
  );
});

const GIT_TOKEN = 'git-token';
const ARGO_TOKEN = 'argocd-token';

let sim: KubeSimulator;
let gitServer: GitServer;
let argo: ArgoCdStandIn;
let dir: string;
let kubeconfig: string;

async function kubectl(...args: string[]) {
  const { stdout } = await run(kubectlPath!, args, {
    env: { ...process.env, KUBECONFIG: kubeconfig, HOME: dir },
    timeout: 60_000,
  });
  return stdout;
}

const deploymentYaml = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: checkout
  labels:
    app: checkout
    backstage.io/kubernetes-id: checkout
spec:
  replicas: 2
  selector:
    matchLabels: { app: checkout }
  template:
    metadata:
      labels: { app: checkout }
    spec:
      containers:
        - name: checkout
          image: registry.example/checkout:1.0.0
          ports: [{ containerPort: 8080 }]
`;

const flagsYaml = `apiVersion: v1
kind: ConfigMap
metadata:
  name: checkout-flags
data:
  flags.json: '{"newCheckout":true}'
`;

const overlay = (
  env: string,
  tag: string,
  { flags = true, extra = '' } = {},
) => `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../base${flags ? '\n  - flags.yaml' : ''}
namespace: checkout-${env}
images:
  - name: registry.example/checkout
    newTag: ${tag}
${extra}`;

const application = (
  name: string,
  env: string,
  automated?: { prune: boolean; selfHeal: boolean },
): KubeObject => ({
  apiVersion: 'argoproj.io/v1alpha1',
  kind: 'Application',
  metadata: { name, namespace: 'argocd' },
  spec: {
    project: 'default',
    source: {
      repoURL: gitServer.repoUrl('manifests'),
      path: `overlays/${env}`,
      targetRevision: 'main',
    },
    destination: {
      server: 'https://kubernetes.default.svc',
      namespace: `checkout-${env}`,
    },
    ...(automated && { syncPolicy: { automated } }),
  },
});

const app = (name: string) => sim.store.get('applications', 'argocd', name)!;
const deployment = (ns: string) =>
  sim.store.get('deployments', ns, 'checkout')!;
const imageOf = (ns: string) =>
  deployment(ns)?.spec.template.spec.containers[0].image;

function api(
  route: string,
  init: {
    method?: string;
    body?: unknown;
    headers?: Record<string, string>;
  } = {},
) {
  return fetch(`${argo.url}${route}`, {
    method: init.method ?? 'GET',
    headers: init.headers ?? {
      Authorization: `Bearer ${ARGO_TOKEN}`,
      'Content-Type': 'application/json',
    },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  });
}

async function sync(name: string, body: unknown = {}) {
  const res = await api(`/api/v1/applications/${name}/sync`, {
    method: 'POST',
    body,
  });
  expect(res.status).toBe(200);
  return res.json();
}

/** Waits for the app's sync operation to finish, then returns the app. */
const operationDone = (name: string) =>
  waitFor(
    () => {
      const a = app(name);
      return !a.operation &&
        ['Succeeded', 'Failed', 'Error'].includes(
          a.status?.operationState?.phase,
        )
        ? a
        : undefined;
    },
    30_000,
    `${name}'s operation`,
  );

describeWithKubectl('Argo CD stand-in', () => {
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'argocd-test-'));
    sim = await KubeSimulator.start({
      tls: true,
      podReadyDelayMs: 50,
      backOffMs: 100,
    });
    kubeconfig = path.join(dir, 'kubeconfig');
    fs.writeFileSync(kubeconfig, sim.kubeconfig());
    gitServer = await GitServer.start({ token: GIT_TOKEN });
    await gitServer.createRepository('manifests', {
      'base/deployment.yaml': deploymentYaml,
      'base/kustomization.yaml': 'resources:\n  - deployment.yaml\n',
      'overlays/dev/kustomization.yaml': overlay('dev', '1.0.0'),
      'overlays/dev/flags.yaml': flagsYaml,
      'overlays/prod/kustomization.yaml': overlay('prod', '1.0.0'),
      'overlays/prod/flags.yaml': flagsYaml,
    });
    for (const ns of ['checkout-dev', 'checkout-prod']) {
      sim.apply({
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: ns },
      });
    }
    argo = await ArgoCdStandIn.start(sim, {
      token: ARGO_TOKEN,
      repositories: {
        [gitServer.url]: { username: 'argocd', password: GIT_TOKEN },
      },
      // Refreshes come from the tests, not from the clock.
      reconcileMs: 600_000,
      selfHealBackoffMs: 300,
      kubectl: kubectlPath,
    });
  });

  afterAll(async () => {
    await argo?.stop();
    await gitServer?.stop();
    await sim?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('syncs an automated app created with kubectl: Synced, Healthy, its objects tracked', async () => {
    const file = path.join(dir, 'checkout-dev.yaml');
    fs.writeFileSync(
      file,
      JSON.stringify(
        application('checkout-dev', 'dev', { prune: true, selfHeal: true }),
      ),
    );
    expect(await kubectl('apply', '-f', file)).toContain(
      'application.argoproj.io/checkout-dev created',
    );
    const synced = await waitFor(
      () => {
        const a = app('checkout-dev');
        return a.status?.sync?.status === 'Synced' &&
          a.status?.health?.status === 'Healthy'
          ? a
          : undefined;
      },
      30_000,
      'checkout-dev Synced and Healthy',
    );
    const [head] = await gitServer.log('manifests');
    expect(synced.status).toMatchObject({
      sync: {
        status: 'Synced',
        revision: head.sha,
        comparedTo: {
          source: { path: 'overlays/dev', targetRevision: 'main' },
          destination: { namespace: 'checkout-dev' },
        },
      },
      sourceType: 'Kustomize',
      summary: { images: ['registry.example/checkout:1.0.0'] },
      operationState: {
        phase: 'Succeeded',
        message: 'successfully synced (all tasks run)',
        operation: { initiatedBy: { automated: true } },
        syncResult: { revision: head.sha },
      },
    });
    expect(synced.status.reconciledAt).toMatch(
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/,
    );
    expect(synced.status.history).toEqual([
      expect.objectContaining({
        id: 0,
        revision: head.sha,
        initiatedBy: { automated: true },
      }),
    ]);
    expect(synced.status.resources).toEqual([
      expect.objectContaining({
        group: '',
        kind: 'ConfigMap',
        namespace: 'checkout-dev',
        name: 'checkout-flags',
        status: 'Synced',
      }),
      expect.objectContaining({
        group: 'apps',
        version: 'v1',
        kind: 'Deployment',
        namespace: 'checkout-dev',
        name: 'checkout',
        status: 'Synced',
        health: { status: 'Healthy' },
      }),
    ]);
    expect(synced.status.operationState.syncResult.resources).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          kind: 'Deployment',
          status: 'Synced',
          message: 'deployment.apps/checkout created',
          syncPhase: 'Sync',
          hookPhase: 'Running',
        }),
      ]),
    );
    const d = deployment('checkout-dev');
    expect(d.metadata.annotations).toMatchObject({
      'argocd.argoproj.io/tracking-id':
        'checkout-dev:apps/Deployment:checkout-dev/checkout',
    });
    expect(d.metadata.labels).toMatchObject({
      'app.kubernetes.io/instance': 'checkout-dev',
      'backstage.io/kubernetes-id': 'checkout',
    });
    expect(imageOf('checkout-dev')).toBe('registry.example/checkout:1.0.0');
  });

  it('syncs a pushed commit on refresh', async () => {
    const sha = await gitServer.commit(
      'manifests',
      { 'overlays/dev/kustomization.yaml': overlay('dev', '1.1.0') },
      { message: 'checkout 1.1.0 to dev' },
    );
    const refreshed = await argo.refresh('checkout-dev');
    expect(refreshed.status.sync.revision).toBe(sha);
    expect(refreshed.status.operationState).toMatchObject({
      phase: 'Succeeded',
      syncResult: { revision: sha },
    });
    expect(refreshed.status.operationState.syncResult.resources).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          kind: 'Deployment',
          message: 'deployment.apps/checkout configured',
        }),
        expect.objectContaining({
          kind: 'ConfigMap',
          message: 'configmap/checkout-flags unchanged',
        }),
      ]),
    );
    expect(
      refreshed.status.reconciledAt >=
        refreshed.status.operationState.finishedAt,
    ).toBe(true);
    expect(refreshed.status.history.map((h: any) => h.revision)).toEqual([
      expect.any(String),
      sha,
    ]);
    expect(imageOf('checkout-dev')).toBe('registry.example/checkout:1.1.0');
    await waitFor(
      () => app('checkout-dev').status.health.status === 'Healthy',
      30_000,
      'checkout-dev Healthy on 1.1.0',
    );
    expect(app('checkout-dev').status.summary.images).toEqual([
      'registry.example/checkout:1.1.0',
    ]);
  });

  it('lists Applications with kubectl, with their sync and health columns', async () => {
    const table = await kubectl('get', 'applications', '-n', 'argocd');
    const [header, row] = table.trim().split('\n');
    expect(header.split(/\s{2,}/)).toEqual([
      'NAME',
      'SYNC STATUS',
      'HEALTH STATUS',
      'AGE',
    ]);
    expect(row.split(/\s{2,}/).slice(0, 3)).toEqual([
      'checkout-dev',
      'Synced',
      'Healthy',
    ]);
    const resources = await kubectl('api-resources', '--api-group=argoproj.io');
    expect(resources).toMatch(
      /applications\s+app,apps\s+argoproj.io\/v1alpha1\s+true\s+Application/,
    );
    const wide = await kubectl('get', 'app', '-n', 'argocd', '-o', 'wide');
    expect(wide).toContain('REVISION');
    expect(wide).toContain(app('checkout-dev').status.sync.revision);
    expect(
      await kubectl(
        'get',
        'app',
        'checkout-dev',
        '-n',
        'argocd',
        '-o',
        'jsonpath={.status.sync.status}',
      ),
    ).toBe('Synced');
    const yaml = await kubectl(
      'get',
      'app',
      'checkout-dev',
      '-n',
      'argocd',
      '-o',
      'yaml',
    );
    expect(yaml).toContain('kind: Application');
    expect(yaml).toContain('status: Healthy');
  });

  it('leaves a manual app OutOfSync until a sync is requested', async () => {
    sim.apply(application('checkout-prod', 'prod'));
    const refreshed = await argo.refresh('checkout-prod');
    expect(refreshed.status.sync.status).toBe('OutOfSync');
    expect(refreshed.status.health.status).toBe('Missing');
    expect(refreshed.status.operationState).toBeUndefined();
    expect(deployment('checkout-prod')).toBeUndefined();

    const requested = await sync('checkout-prod');
    expect(requested.operation).toEqual({
      sync: { revision: refreshed.status.sync.revision, prune: false },
      initiatedBy: { username: 'admin' },
      retry: {},
    });
    const done = await operationDone('checkout-prod');
    expect(done.status.operationState.phase).toBe('Succeeded');
    expect(done.status.history).toEqual([
      expect.objectContaining({ initiatedBy: { username: 'admin' } }),
    ]);
    await waitFor(
      () => app('checkout-prod').status.sync.status === 'Synced',
      30_000,
      'checkout-prod Synced',
    );
    expect(imageOf('checkout-prod')).toBe('registry.example/checkout:1.0.0');
  });

  it('self-heals drift with selfHeal, and leaves it without until a sync', async () => {
    for (const ns of ['checkout-dev', 'checkout-prod']) {
      await kubectl(
        'set',
        'image',
        'deployment/checkout',
        'checkout=registry.example/checkout:hotfix',
        '-n',
        ns,
      );
    }
    // checkout-dev: reverted by an automated sync after the back-off.
    await waitFor(
      () =>
        imageOf('checkout-dev') === 'registry.example/checkout:1.1.0' &&
        app('checkout-dev').status.sync.status === 'Synced',
      30_000,
      'checkout-dev self-healed',
    );
    expect(app('checkout-dev').status.operationState).toMatchObject({
      phase: 'Succeeded',
      operation: {
        initiatedBy: { automated: true },
        sync: { selfHealAttemptsCount: 1 },
      },
    });

    // checkout-prod: the drift stays, OutOfSync, until someone syncs.
    const drifted = await argo.refresh('checkout-prod');
    expect(drifted.status.sync.status).toBe('OutOfSync');
    expect(drifted.status.resources).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ kind: 'Deployment', status: 'OutOfSync' }),
      ]),
    );
    expect(imageOf('checkout-prod')).toBe('registry.example/checkout:hotfix');
    await sync('checkout-prod');
    await operationDone('checkout-prod');
    await waitFor(
      () => app('checkout-prod').status.sync.status === 'Synced',
      30_000,
      'checkout-prod Synced again',
    );
    expect(imageOf('checkout-prod')).toBe('registry.example/checkout:1.0.0');
  });

  it('serves the REST API behind its token', async () => {
    const version = await api('/api/version', { headers: {} });
    expect(await version.json()).toEqual({ Version: expect.any(String) });

    const unauthenticated = {
      error: 'no session information',
      code: 16,
      message: 'no session information',
    };
    const attempts: Record<string, string>[] = [
      {},
      { Authorization: 'Bearer wrong' },
    ];
    for (const headers of attempts) {
      const res = await api('/api/v1/applications/checkout-dev', { headers });
      expect(res.status).toBe(401);
      expect(await res.json()).toEqual(unauthenticated);
    }
    const byCookie = await api('/api/v1/applications/checkout-dev', {
      headers: { Cookie: `argocd.token=${ARGO_TOKEN}` },
    });
    expect(byCookie.status).toBe(200);
    expect((await byCookie.json()).metadata.name).toBe('checkout-dev');

    const missing = await api('/api/v1/applications/nope');
    expect(missing.status).toBe(404);
    const notFound = 'applications.argoproj.io "nope" not found';
    expect(await missing.json()).toEqual({
      error: notFound,
      code: 5,
      message: notFound,
    });
    expect((await api('/api/v1/applications/Not_A_Name')).status).toBe(400);

    const list = await api(
      '/api/v1/applications?selector=app.kubernetes.io/instance!=x',
    );
    expect(
      (await list.json()).items.map((a: KubeObject) => a.metadata.name),
    ).toEqual(['checkout-dev', 'checkout-prod']);

    // Two syncs at once: one starts, the other finds it in progress.
    const [a, b] = await Promise.all([
      api('/api/v1/applications/checkout-prod/sync', {
        method: 'POST',
        body: {},
      }),
      api('/api/v1/applications/checkout-prod/sync', {
        method: 'POST',
        body: {},
      }),
    ]);
    expect([a.status, b.status].sort()).toEqual([200, 400]);
    const refused = await (a.status === 400 ? a : b).json();
    expect(refused).toEqual({
      error: 'another operation is already in progress',
      code: 9,
      message: 'another operation is already in progress',
    });
    await operationDone('checkout-prod');

    // An automated app syncs only to its target revision.
    const pinned = await api('/api/v1/applications/checkout-dev/sync', {
      method: 'POST',
      body: { revision: 'other' },
    });
    expect(pinned.status).toBe(400);
    expect((await pinned.json()).code).toBe(9);

    // ?refresh=hard answers after the controller has compared the new commit.
    const sha = await gitServer.commit(
      'manifests',
      { 'overlays/prod/kustomization.yaml': overlay('prod', '1.1.0') },
      { message: 'checkout 1.1.0 to prod' },
    );
    const res = await api('/api/v1/applications/checkout-prod?refresh=hard');
    expect(res.status).toBe(200);
    const fresh = await res.json();
    expect(fresh.status.sync).toMatchObject({
      status: 'OutOfSync',
      revision: sha,
    });
    expect(imageOf('checkout-prod')).toBe('registry.example/checkout:1.0.0');
    await sync('checkout-prod');
    await operationDone('checkout-prod');
    expect(imageOf('checkout-prod')).toBe('registry.example/checkout:1.1.0');
  });

  it('prunes objects removed from Git only when pruning is on', async () => {
    await gitServer.commit(
      'manifests',
      {
        'overlays/dev/kustomization.yaml': overlay('dev', '1.1.0', {
          flags: false,
        }),
        'overlays/dev/flags.yaml': null,
        'overlays/prod/kustomization.yaml': overlay('prod', '1.1.0', {
          flags: false,
        }),
        'overlays/prod/flags.yaml': null,
      },
      { message: 'no more flags' },
    );
    // Automated with prune: gone at once.
    const dev = await argo.refresh('checkout-dev');
    expect(
      sim.store.get('configmaps', 'checkout-dev', 'checkout-flags'),
    ).toBeUndefined();
    expect(dev.status.sync.status).toBe('Synced');
    expect(dev.status.operationState.syncResult.resources).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          kind: 'ConfigMap',
          status: 'Pruned',
          message: 'pruned',
        }),
      ]),
    );

    // Manual: a sync without prune leaves it, OutOfSync; with prune, gone.
    const prod = await argo.refresh('checkout-prod');
    expect(prod.status.sync.status).toBe('OutOfSync');
    expect(prod.status.resources).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          kind: 'ConfigMap',
          status: 'OutOfSync',
          requiresPruning: true,
        }),
      ]),
    );
    await sync('checkout-prod');
    const skipped = await operationDone('checkout-prod');
    expect(skipped.status.operationState.syncResult.resources).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          kind: 'ConfigMap',
          status: 'PruneSkipped',
        }),
      ]),
    );
    expect(
      sim.store.get('configmaps', 'checkout-prod', 'checkout-flags'),
    ).toBeDefined();
    expect((await argo.refresh('checkout-prod')).status.sync.status).toBe(
      'OutOfSync',
    );

    await sync('checkout-prod', { prune: true });
    await operationDone('checkout-prod');
    expect(
      sim.store.get('configmaps', 'checkout-prod', 'checkout-flags'),
    ).toBeUndefined();
    expect((await argo.refresh('checkout-prod')).status.sync.status).toBe(
      'Synced',
    );
  });

  it('reports a manifest that does not render as a ComparisonError', async () => {
    const before = imageOf('checkout-dev');
    await gitServer.commit(
      'manifests',
      {
        'overlays/dev/kustomization.yaml':
          'resources:\n  - ../../base\n  - missing.yaml\n',
      },
      { message: 'broken' },
    );
    const broken = await argo.refresh('checkout-dev');
    expect(broken.status.sync.status).toBe('Unknown');
    expect(broken.status.conditions).toEqual([
      expect.objectContaining({
        type: 'ComparisonError',
        message: expect.stringMatching(
          /^kustomize build overlays\/dev failed exit status 1: Error: accumulating resources/,
        ),
        lastTransitionTime: expect.any(String),
      }),
    ]);
    expect(imageOf('checkout-dev')).toBe(before);

    const fixed = await gitServer.commit(
      'manifests',
      {
        'overlays/dev/kustomization.yaml': overlay('dev', '1.2.0', {
          flags: false,
        }),
      },
      { message: 'fixed' },
    );
    const healed = await argo.refresh('checkout-dev');
    expect(healed.status.conditions).toBeUndefined();
    expect(healed.status.sync).toMatchObject({
      status: 'Synced',
      revision: fixed,
    });
    expect(imageOf('checkout-dev')).toBe('registry.example/checkout:1.2.0');
  });

  it('reports Degraded when the rollout cannot finish', async () => {
    const deadline = `patches:
  - target: { kind: Deployment, name: checkout }
    patch: |-
      - op: add
        path: /spec/progressDeadlineSeconds
        value: 2
`;
    await gitServer.commit(
      'manifests',
      {
        'overlays/dev/kustomization.yaml': overlay('dev', 'badimage', {
          flags: false,
          extra: deadline,
        }),
      },
      { message: 'a tag that cannot be pulled' },
    );
    const synced = await argo.refresh('checkout-dev');
    // The sync succeeds: an operation does not wait for health.
    expect(synced.status.operationState.phase).toBe('Succeeded');
    expect(imageOf('checkout-dev')).toBe('registry.example/checkout:badimage');
    const degraded = await waitFor(
      () => {
        const a = app('checkout-dev');
        return a.status.health.status === 'Degraded' ? a : undefined;
      },
      30_000,
      'checkout-dev Degraded',
    );
    expect(degraded.status.resources).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          kind: 'Deployment',
          health: {
            status: 'Degraded',
            message: 'Deployment "checkout" exceeded its progress deadline',
          },
        }),
      ]),
    );
    expect(degraded.status.sync.status).toBe('Synced');
  });

  it('picks up new commits on its periodic refresh, from a directory of plain manifests', async () => {
    // A second controller, for the Applications of another namespace.
    const periodic = await ArgoCdStandIn.start(sim, {
      token: ARGO_TOKEN,
      namespace: 'argocd-periodic',
      repositories: {
        [gitServer.url]: { username: 'argocd', password: GIT_TOKEN },
      },
      reconcileMs: 300,
      kubectl: kubectlPath,
    });
    try {
      await gitServer.createRepository('plain', {
        'qa/flags.yaml': flagsYaml,
        'README.md': '# not a manifest\n',
      });
      sim.apply({
        apiVersion: 'argoproj.io/v1alpha1',
        kind: 'Application',
        metadata: { name: 'flags-qa', namespace: 'argocd-periodic' },
        spec: {
          project: 'default',
          source: { repoURL: gitServer.repoUrl('plain'), path: 'qa' },
          destination: { namespace: 'checkout-qa' },
          syncPolicy: {
            automated: { prune: true, selfHeal: false },
            syncOptions: ['CreateNamespace=true'],
          },
        },
      });
      await waitFor(
        () => sim.store.get('configmaps', 'checkout-qa', 'checkout-flags'),
        30_000,
        'the flags of checkout-qa',
      );
      await gitServer.commit('plain', {
        'qa/flags.yaml': flagsYaml.replace('true', 'false'),
      });
      await waitFor(
        () =>
          sim.store.get('configmaps', 'checkout-qa', 'checkout-flags')?.data[
            'flags.json'
          ] === '{"newCheckout":false}',
        30_000,
        'the new flags of checkout-qa',
      );
      const qa = sim.store.get('applications', 'argocd-periodic', 'flags-qa')!;
      expect(qa.status.sourceType).toBe('Directory');
      expect(qa.status.history).toHaveLength(2);
    } finally {
      await periodic.stop();
    }
  });
});
