import {
  mockCredentials,
  mockServices,
  startTestBackend,
} from '@backstage/backend-test-utils';
import { catalogServiceMock } from '@backstage/plugin-catalog-node/testUtils';
import { AuthorizeResult } from '@backstage/plugin-permission-common';
// The module is tested in the real Progression backend it extends.
// eslint-disable-next-line @backstage/no-mixed-plugin-imports
import progressionBackend from '@progression-io/backstage-plugin-progression-backend';
import {
  ArgoCdStandIn,
  GitServer,
  KubeSimulator,
} from '@internal/kube-simulator';
import { ConfigReader } from '@backstage/config';
import { DeployTarget } from '@progression-io/backstage-plugin-progression-node';
import { databaseServiceFactory } from '@backstage/backend-defaults/database';
import fs from 'node:fs';
import http from 'node:http';
import { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import request from 'supertest';
import progressionModuleArgoCd, { ArgoCdDeployer } from './index';

/*
 * GitOps stages end to end, through the REST API of a real backend with
 * the module: the manifests repository is served by Git's own
 * `git http-backend` behind a token; the Argo CD stand-in renders its
 * overlays with the real `kubectl kustomize`, syncs them into the
 * simulator and answers Argo CD's REST API behind a bearer token.
 * Nothing is mocked but the catalog and the permission policy (Backstage's
 * test doubles).
 */
jest.setTimeout(180_000);

const GIT_TOKEN = 'git-token-8086';
const ARGO_TOKEN = 'argocd-token-6502';
const IMAGE = 'registry.example/checkout';
const STAGES = ['dev', 'staging', 'production'] as const;

let sim: KubeSimulator;
let git: GitServer;
let argo: ArgoCdStandIn;
let server: any;
let proxy: Awaited<ReturnType<typeof startArgoProxy>>;

const entity = (
  name: string,
  pipeline: string,
  annotations: Record<string, string> = {},
) => ({
  apiVersion: 'backstage.io/v1alpha1',
  kind: 'Component',
  metadata: {
    name,
    namespace: 'default',
    annotations: {
      'progression.backstage.io/pipeline': pipeline,
      'backstage.io/kubernetes-id': 'checkout',
      ...annotations,
    },
  },
  spec: { type: 'service', owner: 'team-checkout' },
});
const releaseManager = {
  apiVersion: 'backstage.io/v1alpha1',
  kind: 'User',
  metadata: { name: 'olivia', namespace: 'default' },
  spec: { memberOf: ['release-managers'] },
  relations: [
    { type: 'memberOf', targetRef: 'group:default/release-managers' },
  ],
};
const base = '/api/progression/v1/entities/component/default/checkout';

const manifests: Record<string, string> = {
  'base/kustomization.yaml': 'resources:\n  - deployment.yaml\n',
  'base/deployment.yaml': `apiVersion: apps/v1
kind: Deployment
metadata:
  name: checkout
  labels:
    app: checkout
    backstage.io/kubernetes-id: checkout
spec:
  replicas: 1
  selector:
    matchLabels:
      app: checkout
  template:
    metadata:
      labels:
        app: checkout
        backstage.io/kubernetes-id: checkout
    spec:
      containers:
        - name: checkout
          image: ${IMAGE}:1.0.0
`,
  ...Object.fromEntries(
    STAGES.map(stage => [
      `overlays/${stage}/kustomization.yaml`,
      `# ${stage}: the platform team's overlay
resources:
  - ../../base
namespace: checkout-${stage}
images:
  - name: ${IMAGE}
    newTag: 1.0.0
`,
    ]),
  ),
};

function application(stage: string) {
  return {
    apiVersion: 'argoproj.io/v1alpha1',
    kind: 'Application',
    metadata: { name: `checkout-${stage}`, namespace: 'argocd' },
    spec: {
      project: 'default',
      source: {
        repoURL: git.repoUrl('manifests'),
        path: `overlays/${stage}`,
        targetRevision: 'main',
      },
      destination: {
        server: 'https://kubernetes.default.svc',
        namespace: `checkout-${stage}`,
      },
      syncPolicy:
        stage === 'production'
          ? {}
          : {
              automated:
                stage === 'dev'
                  ? { prune: true, selfHeal: true }
                  : { prune: false, selfHeal: false },
            },
    },
  };
}

const argoApi = (route: string, init: RequestInit = {}) =>
  fetch(`${argo.url}${route}`, {
    ...init,
    headers: {
      Authorization: `Bearer ${ARGO_TOKEN}`,
      'Content-Type': 'application/json',
    },
  }).then(r => r.json());

async function until<T>(
  what: string,
  read: () => Promise<T> | T,
  ok: (value: T) => boolean,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let value = await read();
  while (!ok(value)) {
    if (Date.now() > deadline) {
      throw new Error(`${what}: still ${JSON.stringify(value)}`);
    }
    await new Promise(r => setTimeout(r, 50));
    value = await read();
  }
  return value;
}

const liveImage = (stage: string) =>
  sim.store.get('deployments', `checkout-${stage}`, 'checkout')?.spec.template
    .spec.containers[0].image;

beforeAll(async () => {
  sim = await KubeSimulator.start({ podReadyDelayMs: 20, backOffMs: 50 });
  for (const stage of STAGES) {
    sim.apply({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: `checkout-${stage}` },
    });
  }
  git = await GitServer.start({ token: GIT_TOKEN });
  await git.createRepository('manifests', manifests);
  argo = await ArgoCdStandIn.start(sim, {
    token: ARGO_TOKEN,
    repositories: { [git.url]: { username: 'argocd', password: GIT_TOKEN } },
    // Long: what Progression's refresh and sync start is what happens.
    reconcileMs: 120_000,
    selfHealBackoffMs: 1000,
  });
  for (const stage of STAGES) sim.apply(application(stage));
  // Production syncs by hand: once, so that it runs 1.0.0.
  await argo.refresh('checkout-production');
  await argoApi('/api/v1/applications/checkout-production/sync', {
    method: 'POST',
    body: JSON.stringify({}),
  });
  const standIn = argo;
  for (const stage of STAGES) {
    await until(
      `checkout-${stage} synced and healthy`,
      () => standIn.refresh(`checkout-${stage}`),
      app =>
        app.status?.sync?.status === 'Synced' &&
        app.status?.health?.status === 'Healthy',
    );
  }

  proxy = await startArgoProxy(argo.url);
  ({ server } = await startTestBackend({ features: backendFeatures() }));
});

/**
 * The backend's features: Progression with the module, the test's
 * entities and configuration. With `databaseDirectory`, its store is a
 * SQLite file there that outlives the backend (for a restart); with
 * `retryBudget`, the engine's retry budget for a failing step (5 min).
 */
function backendFeatures(
  options: { databaseDirectory?: string; retryBudget?: string } = {},
) {
  const { databaseDirectory, retryBudget } = options;
  const deploy = {
    kind: 'argocd',
    instance: 'local',
    git: { token: GIT_TOKEN },
  };
  // Through the proxy that the tests turn off.
  const viaProxy = (rolloutTimeout: string) => ({
    stages: [
      {
        name: 'dev',
        cluster: 'sim',
        namespace: 'checkout-dev',
        readyTimeout: '5s',
        rolloutTimeout,
        deploy: { ...deploy, instance: 'behind-proxy' },
      },
    ],
  });
  return [
    progressionBackend,
    progressionModuleArgoCd,
    catalogServiceMock.factory({
      entities: [
        entity('checkout', 'gitops'),
        entity('checkout-direct', 'direct'),
        entity('checkout-wrong-argo', 'wrong-argo'),
        entity('checkout-wrong-git', 'wrong-git'),
        // Its owners point dev at staging's Application.
        entity('checkout-elsewhere', 'wrong-git', {
          'progression.backstage.io/argocd-app.dev': 'checkout-staging',
        }),
        entity('checkout-away', 'argo-away'),
        entity('checkout-restart', 'argo-restart'),
        releaseManager,
      ],
    }),
    ...(databaseDirectory ? [databaseServiceFactory] : []),
    mockServices.rootConfig.factory({
      data: {
        ...(databaseDirectory && {
          backend: {
            database: {
              client: 'better-sqlite3',
              connection: { directory: databaseDirectory },
            },
          },
        }),
        argocd: {
          appLocatorMethods: [
            {
              type: 'config',
              instances: [
                { name: 'local', url: argo.url, token: ARGO_TOKEN },
                { name: 'revoked', url: argo.url, token: 'revoked-token' },
                { name: 'behind-proxy', url: proxy.url, token: ARGO_TOKEN },
              ],
            },
          ],
        },
        progression: {
          ...(retryBudget && { worker: { retry: { budget: retryBudget } } }),
          clusters: [
            {
              name: 'sim',
              url: sim.url,
              serviceAccountToken: sim.token,
              skipTLSVerify: true,
            },
          ],
          pipelines: {
            gitops: {
              stages: [
                {
                  name: 'dev',
                  cluster: 'sim',
                  namespace: 'checkout-dev',
                  autoPromote: true,
                  readyTimeout: '5s',
                  rolloutTimeout: '60s',
                  deploy,
                },
                {
                  name: 'staging',
                  cluster: 'sim',
                  namespace: 'checkout-staging',
                  deploy,
                },
                {
                  name: 'production',
                  cluster: 'sim',
                  namespace: 'checkout-production',
                  approval: {
                    required: true,
                    approvers: ['group:default/release-managers'],
                  },
                  deploy,
                },
              ],
            },
            // A token Argo CD no longer takes, and one the Git server refuses.
            'wrong-argo': {
              stages: [
                {
                  name: 'dev',
                  cluster: 'sim',
                  namespace: 'checkout-dev',
                  deploy: { ...deploy, instance: 'revoked' },
                },
              ],
            },
            'wrong-git': {
              stages: [
                {
                  name: 'dev',
                  cluster: 'sim',
                  namespace: 'checkout-dev',
                  deploy: {
                    kind: 'argocd',
                    instance: 'local',
                    git: { token: 'revoked-git-token' },
                  },
                },
              ],
            },
            // Progression's own image patch, pointed at what Argo CD manages.
            direct: {
              stages: [
                { name: 'dev', cluster: 'sim', namespace: 'checkout-dev' },
              ],
            },
            // Argo CD behind a proxy the tests turn off.
            'argo-away': viaProxy('8s'),
            'argo-restart': viaProxy('60s'),
          },
        },
      },
    }),
    mockServices.permissions.factory({ result: AuthorizeResult.ALLOW }),
  ];
}

/**
 * Argo CD's API through a proxy that answers 503 for every call while
 * `down` is set, as a load balancer in front of an Argo CD that is away.
 * With `downAtTrigger`, it goes down at the refresh or sync that follows
 * Progression's commit (that call already refused): Argo CD never hears of
 * the commit.
 */
async function startArgoProxy(upstream: string) {
  const state = { down: false, downAtTrigger: false, url: '', refused: 0 };
  const proxyServer = http.createServer(async (req, res) => {
    if (state.downAtTrigger && /[?&]refresh=|\/sync$/.test(req.url ?? '')) {
      state.down = true;
      state.downAtTrigger = false;
    }
    if (state.down) {
      state.refused++;
      res.writeHead(503, { 'Content-Type': 'text/plain' });
      res.end('no healthy upstream');
      return;
    }
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    try {
      const answer = await fetch(`${upstream}${req.url}`, {
        method: req.method,
        headers: {
          Authorization: String(req.headers.authorization ?? ''),
          'Content-Type': String(
            req.headers['content-type'] ?? 'application/json',
          ),
        },
        body: chunks.length ? Buffer.concat(chunks) : undefined,
      });
      res.writeHead(answer.status, {
        'Content-Type': answer.headers.get('content-type') ?? 'text/plain',
      });
      res.end(Buffer.from(await answer.arrayBuffer()));
    } catch (e) {
      res.writeHead(502, { 'Content-Type': 'text/plain' });
      res.end(String(e));
    }
  });
  await new Promise<void>(r => proxyServer.listen(0, '127.0.0.1', r));
  state.url = `http://127.0.0.1:${(proxyServer.address() as AddressInfo).port}`;
  return Object.assign(state, {
    stop: () => new Promise<void>(r => proxyServer.close(() => r())),
  });
}

afterAll(async () => {
  await proxy?.stop();
  await argo?.stop();
  await git?.stop();
  await sim?.stop();
});

const ENDED = ['succeeded', 'failed', 'rolled-back', 'cancelled', 'rejected'];

async function promotion(id: string, states: string[] = []) {
  return until(
    `promotion ${id}`,
    async () =>
      (await request(server).get(`/api/progression/v1/promotions/${id}`)).body,
    body => [...states, ...ENDED].includes(body.promotion?.state),
    120_000,
  );
}

const register = (version: string) =>
  request(server)
    .post(`${base}/releases`)
    .send({ version, image: `${IMAGE}:${version}` });

const latest = async (stage: string) =>
  (await request(server).get(`${base}/promotions?stage=${stage}`)).body.items[0]
    .id;

const overlayAtHead = (stage: string) =>
  git.readFile('manifests', `overlays/${stage}/kustomization.yaml`);

const environments = async () =>
  (await request(server).get(`${base}/environments`)).body.pipeline.stages;

it('takes a release from dev to production by one commit per deploy and Argo CD syncs, the last after the approval', async () => {
  const before = (await git.log('manifests')).length;
  expect((await register('1.1.0')).status).toBe(201);

  // Dev: automated sync picks up the commit.
  const dev = await promotion(await latest('dev'));
  expect(dev.promotion.state).toBe('succeeded');
  expect(liveImage('dev')).toBe(`${IMAGE}:1.1.0`);
  const devDeploy = dev.steps.find(
    (s: any) => s.kind === 'deploy' && s.name === 'rollout',
  );
  expect(devDeploy.status).toBe('passed');
  expect(devDeploy.reason).toMatch(
    /^Argo CD synced [0-9a-f]{7} \(registry\.example\/checkout:1\.1\.0\) to checkout-dev and reports it Healthy/,
  );
  expect(devDeploy.evidence).toMatchObject({
    application: 'checkout-dev',
    instance: 'local',
    repoUrl: git.repoUrl('manifests'),
    branch: 'main',
    path: 'overlays/dev/kustomization.yaml',
    fromImage: `${IMAGE}:1.0.0`,
    toImage: `${IMAGE}:1.1.0`,
    commit: expect.stringMatching(/^[0-9a-f]{40}$/),
  });
  // Argo CD's sync operation of that commit, as Argo CD reported it.
  expect(devDeploy.evidence.observed).toMatchObject({
    application: 'checkout-dev',
    sync: {
      revision: devDeploy.evidence.commit,
      phase: 'Succeeded',
      initiatedBy: 'automated sync',
      startedAt: expect.any(String),
      finishedAt: expect.any(String),
    },
    syncStatus: 'Synced',
    health: 'Healthy',
  });

  // Staging, promoted by a person.
  const toStaging = await request(server)
    .post(`${base}/promotions`)
    .set('Authorization', mockCredentials.user.header('user:default/sam'))
    .send({ stage: 'staging', version: '1.1.0' });
  expect(toStaging.status).toBe(202);
  expect((await promotion(toStaging.body.id)).promotion.state).toBe(
    'succeeded',
  );
  expect(liveImage('staging')).toBe(`${IMAGE}:1.1.0`);

  // Production: nothing is committed or synced before the approval.
  const toProduction = await request(server)
    .post(`${base}/promotions`)
    .send({ stage: 'production', version: '1.1.0' });
  const waiting = await promotion(toProduction.body.id, ['awaiting-approval']);
  expect(waiting.promotion.state).toBe('awaiting-approval');
  expect(await overlayAtHead('production')).toContain('newTag: 1.0.0');
  expect(liveImage('production')).toBe(`${IMAGE}:1.0.0`);
  await request(server)
    .post(`/api/progression/v1/promotions/${toProduction.body.id}/approvals`)
    .set('Authorization', mockCredentials.user.header('user:default/olivia'))
    .send({ decision: 'approve' });
  const production = await promotion(toProduction.body.id);
  expect(production.promotion.state).toBe('succeeded');
  expect(liveImage('production')).toBe(`${IMAGE}:1.1.0`);
  // Progression started the manual sync, to its commit.
  const app = await argoApi('/api/v1/applications/checkout-production');
  const prodCommit = production.steps.find(
    (s: any) => s.kind === 'deploy' && s.name === 'rollout',
  ).evidence.commit;
  expect(app.status.operationState).toMatchObject({
    phase: 'Succeeded',
    syncResult: { revision: prodCommit },
  });
  expect(app.status.history.at(-1).revision).toBe(prodCommit);
  expect(
    production.steps.find(
      (s: any) => s.kind === 'deploy' && s.name === 'rollout',
    ).evidence.observed.sync,
  ).toMatchObject({
    revision: prodCommit,
    phase: 'Succeeded',
    // The stand-in's one admin token: Progression's sync.
    initiatedBy: 'admin',
  });

  // Exactly one commit per deploy, each naming its promotion; the rest of
  // each overlay as it was.
  const log = await git.log('manifests');
  expect(log.length - before).toBe(3);
  expect(log.slice(0, 3).map(c => c.subject)).toEqual([
    'Promote checkout 1.1.0 to production',
    'Promote checkout 1.1.0 to staging',
    'Promote checkout 1.1.0 to dev',
  ]);
  expect(log[0].sha).toBe(prodCommit);
  for (const stage of STAGES) {
    expect(await overlayAtHead(stage)).toBe(
      manifests[`overlays/${stage}/kustomization.yaml`].replace(
        'newTag: 1.0.0',
        'newTag: 1.1.0',
      ),
    );
  }

  // The tab: each stage's three sides agree.
  const stages = await environments();
  for (const stage of stages) {
    expect(stage.gitops).toMatchObject({
      repoUrl: git.repoUrl('manifests'),
      branch: 'main',
      path: `overlays/${stage.name}`,
      head: { sha: log[0].sha, image: `${IMAGE}:1.1.0` },
      application: {
        name: `checkout-${stage.name}`,
        instance: 'local',
        sync: 'Synced',
        health: 'Healthy',
      },
    });
  }
  // One branch holds every overlay: each card names the commit that last
  // changed its own, beside the head (production's commit).
  const changedBy = (i: number) => ({
    sha: log[i].sha,
    message: log[i].subject,
  });
  expect(stages[0].gitops.head.overlayChange).toEqual(changedBy(2));
  expect(stages[1].gitops.head.overlayChange).toEqual(changedBy(1));
  expect(stages[2].gitops.head.overlayChange).toBeUndefined();
  // Git is ahead of dev's and staging's compared commit only by other
  // stages' commits: said as drift on the git side, nothing else.
  expect(stages[2].gitops.drift).toEqual([]);
  expect(JSON.stringify(stages)).not.toContain(GIT_TOKEN);
  expect(JSON.stringify(stages)).not.toContain(ARGO_TOKEN);
});

it('rolls an unhealthy release in dev back by a second commit and a sync', async () => {
  expect((await register('1.2.0-crashloop')).status).toBe(201);
  const dev = await promotion(await latest('dev'));
  expect(dev.promotion.state).toBe('rolled-back');
  const deploy = dev.steps.find(
    (s: any) => s.kind === 'deploy' && s.name === 'rollout',
  );
  expect(deploy.status).toBe('failed');
  expect(deploy.reason).toMatch(/^Argo CD synced [0-9a-f]{7} .*the rollout:/);
  const rollback = dev.steps.find((s: any) => s.kind === 'rollback');
  expect(rollback.status).toBe('passed');
  const [undo, commit] = (await git.log('manifests')).slice(0, 2);
  expect([undo.subject, commit.subject]).toEqual([
    `Roll back checkout in dev to ${IMAGE}:1.1.0`,
    'Promote checkout 1.2.0-crashloop to dev',
  ]);
  expect(rollback.evidence.undo).toEqual({
    commit: undo.sha,
    deployCommit: commit.sha,
    repoUrl: git.repoUrl('manifests'),
    branch: 'main',
    path: 'overlays/dev/kustomization.yaml',
    application: 'checkout-dev',
  });
  expect(rollback.evidence.observed.sync).toMatchObject({
    revision: undo.sha,
    phase: 'Succeeded',
  });
  expect(await overlayAtHead('dev')).toContain('newTag: 1.1.0');
  expect(liveImage('dev')).toBe(`${IMAGE}:1.1.0`);
  const app = await argoApi('/api/v1/applications/checkout-dev');
  expect(app.status.sync).toMatchObject({
    status: 'Synced',
    revision: undo.sha,
  });
});

function setImage(stage: string, image: string) {
  const d = sim.store.get('deployments', `checkout-${stage}`, 'checkout')!;
  const next = JSON.parse(JSON.stringify(d));
  next.spec.template.spec.containers[0].image = image;
  sim.apply(next);
}

it('shows drift while selfHeal reverts a changed image in dev; in production it stays until the next sync', async () => {
  setImage('dev', `${IMAGE}:hotfix`);
  const drifted = await until(
    'dev drift on the tab',
    environments,
    stages => stages[0].gitops?.drift.some((d: any) => d.side === 'live'),
    10_000,
  );
  expect(drifted[0].gitops.drift).toContainEqual({
    side: 'live',
    message: `the Deployment runs ${IMAGE}:hotfix; the overlay names ${IMAGE}:1.1.0`,
  });
  // Argo CD's selfHeal puts the overlay's image back.
  await until(
    'selfHeal',
    () => liveImage('dev'),
    i => i === `${IMAGE}:1.1.0`,
  );
  await until(
    'dev without drift',
    environments,
    stages => !stages[0].gitops.drift.some((d: any) => d.side === 'live'),
  );

  setImage('production', `${IMAGE}:hotfix`);
  const app = await until(
    'production OutOfSync',
    () => argo.refresh('checkout-production'),
    a => a.status?.sync?.status === 'OutOfSync',
  );
  expect(app.status.sync.status).toBe('OutOfSync');
  // Well past dev's selfHeal back-off: still drifted, nothing syncs it.
  await new Promise(r => setTimeout(r, 3000));
  expect(liveImage('production')).toBe(`${IMAGE}:hotfix`);
  // Argo CD's side is read at most every 5 s: both sides, in time.
  const stages = await until('production drift on the tab', environments, s =>
    ['live', 'argocd'].every(side =>
      s[2].gitops.drift.some((d: any) => d.side === side),
    ),
  );
  expect(stages[2].gitops.drift).toEqual(
    expect.arrayContaining([
      {
        side: 'live',
        message: `the Deployment runs ${IMAGE}:hotfix; the overlay names ${IMAGE}:1.1.0`,
      },
      {
        side: 'argocd',
        message: 'Argo CD says checkout-production is OutOfSync',
      },
    ]),
  );
  // The next sync ends it.
  await argoApi('/api/v1/applications/checkout-production/sync', {
    method: 'POST',
    body: JSON.stringify({}),
  });
  await until(
    'production synced',
    () => liveImage('production'),
    i => i === `${IMAGE}:1.1.0`,
  );
});

it("refuses Progression's own image patch on a Deployment Argo CD manages, naming the Application", async () => {
  const direct =
    '/api/progression/v1/entities/component/default/checkout-direct';
  await request(server)
    .post(`${direct}/releases`)
    .send({ version: '9.9.9', image: `${IMAGE}:9.9.9` });
  const id = (await request(server).get(`${direct}/promotions?stage=dev`)).body
    .items[0]?.id;
  const promoted =
    id ??
    (
      await request(server)
        .post(`${direct}/promotions`)
        .send({ stage: 'dev', version: '9.9.9' })
    ).body.id;
  const result = await promotion(promoted);
  expect(result.promotion.state).toBe('failed');
  expect(JSON.stringify(result)).toContain(
    'Deployment checkout in namespace checkout-dev is managed by Argo CD Application checkout-dev; Progression does not patch what Argo CD manages — give stage dev deploy.kind: argocd to promote through Git and Argo CD',
  );
  expect(liveImage('dev')).toBe(`${IMAGE}:1.1.0`);
});

it('loses neither change when others commit to the branch during a promotion', async () => {
  let running = true;
  const theirs: string[] = [];
  const busy = (async () => {
    // A busy repository: someone else's commit every half second.
    for (let i = 0; running && i < 240; i++) {
      try {
        theirs.push(
          await git.commit(
            'manifests',
            { 'overlays/staging/notes.txt': `note ${i}\n` },
            { message: `Note ${i}` },
          ),
        );
      } catch {
        // Progression's push landed first: theirs is refused, as a push
        // on a moved branch is; they try again.
      }
      await new Promise(r => setTimeout(r, 500));
    }
  })();
  expect((await register('1.3.0')).status).toBe(201);
  const dev = await promotion(await latest('dev'));
  running = false;
  await busy;
  expect([dev.promotion.state, dev.promotion.error]).toEqual([
    'succeeded',
    undefined,
  ]);
  const log = await git.log('manifests');
  const shas = log.map(c => c.sha);
  for (const sha of theirs) expect(shas).toContain(sha);
  expect(
    log.filter(c => c.subject === 'Promote checkout 1.3.0 to dev'),
  ).toHaveLength(1);
  expect(await overlayAtHead('dev')).toContain('newTag: 1.3.0');
  expect(liveImage('dev')).toBe(`${IMAGE}:1.3.0`);
});

it('ends at once, changing nothing, when Argo CD or the Git server refuses its credentials, and says which without the secret', async () => {
  const before = await git.log('manifests');
  const tryIt = async (name: string) => {
    const entityPath = `/api/progression/v1/entities/component/default/${name}`;
    await request(server)
      .post(`${entityPath}/releases`)
      .send({ version: '7.0.0', image: `${IMAGE}:7.0.0` });
    const promoted = await request(server)
      .post(`${entityPath}/promotions`)
      .send({ stage: 'dev', version: '7.0.0' });
    return promotion(promoted.body.id);
  };
  const argoRefused = await tryIt('checkout-wrong-argo');
  expect(argoRefused.promotion.state).toBe('failed');
  expect(argoRefused.promotion.error).toMatch(
    /^Argo CD instance revoked: read Application checkout-dev: 401 .*\(check the instance's token in argocd\.appLocatorMethods\)/,
  );
  const gitRefused = await tryIt('checkout-wrong-git');
  expect(gitRefused.promotion.state).toBe('failed');
  expect(gitRefused.promotion.error).toContain(
    `${git.repoUrl(
      'manifests',
    )}: fetching main was refused (401); check the credentials`,
  );
  for (const body of [argoRefused, gitRefused]) {
    const text = JSON.stringify(body);
    expect(text).not.toContain('revoked-token');
    expect(text).not.toContain('revoked-git-token');
    // Refused before anything was recorded or changed: no retries, no rollback.
    expect(body.steps.filter((s: any) => s.kind === 'deploy')).toEqual([]);
  }
  expect(await git.log('manifests')).toEqual(before);
  expect(liveImage('dev')).toBe(`${IMAGE}:1.3.0`);
});

it('an interrupted wait is not an outcome: it rejects with the abort reason, whatever Argo CD says', async () => {
  const cacheDir = await fs.promises.mkdtemp(
    path.join(os.tmpdir(), 'argocd-abort-'),
  );
  const deployer = new ArgoCdDeployer({
    config: new ConfigReader({
      argocd: {
        appLocatorMethods: [
          {
            type: 'config',
            instances: [{ name: 'local', url: argo.url, token: ARGO_TOKEN }],
          },
        ],
      },
    }),
    cacheDir,
    pollMs: 50,
  });
  const notUsed = () => {
    throw new Error('not used while Argo CD has not synced');
  };
  const target = {
    entity: {
      entityRef: 'component:default/checkout',
      name: 'checkout',
      namespace: 'default',
      kubernetesId: 'checkout',
    },
    stage: {
      name: 'dev',
      namespace: 'checkout-dev',
      readyTimeoutMs: 5000,
      deploy: {
        kind: 'argocd',
        config: deployer.readConfig(
          new ConfigReader({ kind: 'argocd', git: { token: GIT_TOKEN } }),
          { path: 'deploy' },
        ),
      },
    },
    location: { namespace: 'checkout-dev' },
    workloads: {
      kubeConfig: notUsed,
      findDeployment: notUsed,
      readLive: notUsed,
      readCached: notUsed,
      waitForRollout: notUsed,
      containerOf: notUsed,
      runJob: notUsed,
    },
  } as unknown as DeployTarget;
  const record = {
    cluster: 'sim',
    namespace: 'checkout-dev',
    deployment: 'checkout',
    container: 'checkout',
    fromImage: `${IMAGE}:1.3.0`,
    fromRevision: 0,
    toImage: `${IMAGE}:9.0.0`,
    promotionId: 'p-abort',
    instance: 'local',
    application: 'checkout-dev',
    repoUrl: git.repoUrl('manifests'),
    branch: 'main',
    path: 'overlays/dev/kustomization.yaml',
    fromCommit: 'f'.repeat(40),
    // A commit Argo CD will never report: the wait would last its timeout.
    commit: 'e'.repeat(40),
  };
  const shutdown = new AbortController();
  const reason = new Error('the backend shuts down');
  setTimeout(() => shutdown.abort(reason), 500);
  try {
    await expect(
      deployer.awaitRollout(target, record, {
        timeoutMs: 60_000,
        signal: shutdown.signal,
      }),
    ).rejects.toBe(reason);
  } finally {
    await fs.promises.rm(cacheDir, { recursive: true, force: true });
  }
});

it("refuses an entity's annotation that names another stage's Application: it may only narrow", async () => {
  const before = await git.log('manifests');
  const entityPath =
    '/api/progression/v1/entities/component/default/checkout-elsewhere';
  await request(server)
    .post(`${entityPath}/releases`)
    .send({ version: '8.0.0', image: `${IMAGE}:8.0.0` });
  const promoted = await request(server)
    .post(`${entityPath}/promotions`)
    .send({ stage: 'dev', version: '8.0.0' });
  const result = await promotion(promoted.body.id);
  expect(result.promotion.state).toBe('failed');
  expect(result.promotion.error).toContain(
    "Argo CD Application checkout-staging deploys to namespace checkout-staging, not to stage dev's namespace checkout-dev (the entity's annotation progression.backstage.io/argocd-app.dev may only name an Application of the stage)",
  );
  expect(await git.log('manifests')).toEqual(before);
  expect(liveImage('staging')).toBe(`${IMAGE}:1.1.0`);
});

const commitsOf = async (subject: string) =>
  (await git.log('manifests')).filter(c => c.subject === subject);

it('ends with a clear failure when Argo CD stays away for the whole wait: bounded, one commit each way, no secret', async () => {
  // The engine's retry budget (5 min by default) shortened to 10 s: the
  // rollback, which needs Argo CD too, ends when it is spent.
  const away = await startTestBackend({
    features: backendFeatures({ retryBudget: '10s' }),
  });
  proxy.downAtTrigger = true;
  const entityPath =
    '/api/progression/v1/entities/component/default/checkout-away';
  await request(away.server)
    .post(`${entityPath}/releases`)
    .send({ version: '8.1.0', image: `${IMAGE}:8.1.0` });
  const promoted = await request(away.server)
    .post(`${entityPath}/promotions`)
    .send({ stage: 'dev', version: '8.1.0' });
  expect(promoted.status).toBe(202);
  try {
    // Argo CD goes away as the commit is pushed, before it hears of it.
    await until(
      'Argo CD away',
      () => proxy.down,
      down => down,
    );
    expect(await commitsOf('Promote checkout-away 8.1.0 to dev')).toHaveLength(
      1,
    );
    const ended = await until(
      `promotion ${promoted.body.id}`,
      async () =>
        (
          await request(away.server).get(
            `/api/progression/v1/promotions/${promoted.body.id}`,
          )
        ).body,
      body => ENDED.includes(body.promotion?.state),
      120_000,
    );
    expect(['failed', 'rolled-back']).toContain(ended.promotion.state);
    const text = JSON.stringify(ended);
    // The wait ended at the stage's rolloutTimeout, saying why; the
    // rollback (Argo CD still away) when the retry budget was spent.
    expect(
      ended.steps.find(
        (st: any) => st.kind === 'deploy' && st.status === 'failed',
      )?.reason,
    ).toContain(
      'Argo CD did not answer within 8 s; last error: Argo CD instance behind-proxy: read Application checkout-dev: 503 no healthy upstream',
    );
    expect(ended.promotion.error).toMatch(
      /503 no healthy upstream \(still failing after \d+ attempts in \d+/,
    );
    expect(text).not.toContain(ARGO_TOKEN);
    expect(text).not.toContain(GIT_TOKEN);
    // Retries make no second commit, neither of the deploy nor of the
    // rollback.
    expect(await commitsOf('Promote checkout-away 8.1.0 to dev')).toHaveLength(
      1,
    );
    expect(
      (await git.log('manifests')).filter(c =>
        c.subject.startsWith('Roll back checkout-away in dev'),
      ).length,
    ).toBeLessThanOrEqual(1);
    expect(proxy.refused).toBeGreaterThan(0);
  } finally {
    proxy.down = false;
    proxy.downAtTrigger = false;
    await away.stop();
  }
});

it('a restart between the commit and the wait is not an outcome: the next backend finds the commit, makes no second one, and finishes', async () => {
  const dir = await fs.promises.mkdtemp(
    path.join(os.tmpdir(), 'argocd-restart-'),
  );
  const entityPath =
    '/api/progression/v1/entities/component/default/checkout-restart';
  const subject = 'Promote checkout-restart 8.2.0 to dev';
  try {
    proxy.downAtTrigger = true;
    const first = await startTestBackend({
      features: backendFeatures({ databaseDirectory: dir }),
    });
    await request(first.server)
      .post(`${entityPath}/releases`)
      .send({ version: '8.2.0', image: `${IMAGE}:8.2.0` });
    const promoted = await request(first.server)
      .post(`${entityPath}/promotions`)
      .send({ stage: 'dev', version: '8.2.0' });
    expect(promoted.status).toBe(202);
    const id = promoted.body.id;
    // Pushed, and Argo CD away since, so that the wait is still on.
    await until(
      'Argo CD away',
      () => proxy.down,
      down => down,
    );
    expect(await commitsOf(subject)).toHaveLength(1);
    const before = await request(first.server).get(
      `/api/progression/v1/promotions/${id}`,
    );
    expect(before.body.promotion.state).toBe('deploying');
    await first.stop();
    proxy.down = false;
    const stopped = (await commitsOf(subject))[0];

    const second = await startTestBackend({
      features: backendFeatures({ databaseDirectory: dir }),
    });
    try {
      const ended = await until(
        `promotion ${id} after the restart`,
        async () =>
          (
            await request(second.server).get(
              `/api/progression/v1/promotions/${id}`,
            )
          ).body,
        body => ENDED.includes(body.promotion?.state),
        120_000,
      );
      expect([ended.promotion.state, ended.promotion.error]).toEqual([
        'succeeded',
        undefined,
      ]);
      // The interrupted wait left nothing behind: no failed step.
      expect(ended.steps.filter((s: any) => s.status === 'failed')).toEqual([]);
      expect(await commitsOf(subject)).toEqual([stopped]);
      const rollout = ended.steps.find(
        (s: any) => s.kind === 'deploy' && s.name === 'rollout',
      );
      expect(rollout.evidence.commit).toBe(stopped.sha);
      expect(liveImage('dev')).toBe(`${IMAGE}:8.2.0`);
    } finally {
      await second.stop();
    }
  } finally {
    proxy.down = false;
    proxy.downAtTrigger = false;
    await fs.promises.rm(dir, { recursive: true, force: true });
  }
});
