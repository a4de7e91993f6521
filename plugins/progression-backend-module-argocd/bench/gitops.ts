/*
 * Benchmark of GitOps stages, run with
 * `yarn workspace @progression-io/backstage-plugin-progression-backend-module-argocd bench:gitops`.
 * It prints figures; nothing here asserts on time, and it exits 0 when the
 * target is missed (the verdict is printed).
 *
 * The whole setup of src/gitops.test.ts, in this process: the cluster
 * simulator, the Git server (git http-backend behind a token), the Argo CD
 * stand-in (its periodic refresh long, so that what Progression's refresh
 * starts is what happens) and a real backend (`startTestBackend`) with
 * Progression and this module; the catalog and the permission policy are
 * Backstage's test doubles. One automated Application (dev: prune and
 * selfHeal), a Deployment of BENCH_REPLICAS replicas whose pods are ready
 * BENCH_POD_READY_MS after they start.
 *
 * For each round, on the same commit:
 *
 *  (a) Progression: from just before `POST .../releases` (the release is
 *      auto-promoted into dev) to the first poll of the promotion's REST
 *      state (`GET .../promotions?stage=dev`, every 20 ms) that says
 *      `succeeded` — what a client sees, the poll's own lag included.
 *  (b) The stand-in on its own: from the moment the commit landed on the
 *      branch (the bare repository's ref file moving, watched and read every
 *      5 ms) to the moment the simulator's store holds the Deployment on the
 *      commit's image rolled out (`kubectl rollout status`'s rules:
 *      observedGeneration ≥ generation, updated = replicas = available).
 *      That is Argo CD's refresh + sync + the Deployment's rollout, no
 *      Progression in it but the hard refresh it asks for right after its
 *      push (as a Git webhook would).
 *
 * Progression's overhead is (a) − (b): the work before its push (the
 * registration, the worker's claim, reading Argo CD, fetching, committing
 * and pushing) plus the time from the rollout's end to `succeeded` seen
 * (its polls of Argo CD every `pollMs`, 250 ms by default, the health it
 * reads, the verification step). Target: ≤ 1 s.
 *
 * Rollback: a release whose image crash-loops (tag `crashloop`) fails its
 * rollout; Progression's rollback is a roll-forward commit. Its rollback
 * step's `undoAndRolloutMs` (from the evidence: the commit, push, refresh
 * and the wait until Argo CD reports it synced, rolled out and Healthy)
 * beside (b) for the rollback commit: from its push to the Deployment back
 * on the previous image, rolled out.
 *
 * Last, (b) with no Progression at all: someone else's commit straight on
 * the branch and a hard refresh of the Application, as a webhook asks.
 *
 * BENCH_ROUNDS (default 5) rounds of each, after one warm-up promotion
 * (Progression's first clone of the manifests repository) that is printed
 * but not counted. BENCH_POLL_MS: a comma-separated list of
 * configurations, `default` (the module as shipped; the default) or a
 * number: the same ArgoCdDeployer, wired by a module of this benchmark with
 * that `pollMs` (the shipped module has no option for it).
 */
import {
  coreServices,
  createBackendModule,
} from '@backstage/backend-plugin-api';
import { mockServices, startTestBackend } from '@backstage/backend-test-utils';
import { catalogServiceMock } from '@backstage/plugin-catalog-node/testUtils';
import { AuthorizeResult } from '@backstage/plugin-permission-common';
import {
  ArgoCdStandIn,
  GitServer,
  KubeObject,
  KubeSimulator,
} from '@internal/kube-simulator';
// The module is measured in the real Progression backend it extends.
// eslint-disable-next-line @backstage/no-mixed-plugin-imports
import progressionBackend from '@progression-io/backstage-plugin-progression-backend';
import { progressionDeployersExtensionPoint } from '@progression-io/backstage-plugin-progression-node';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import progressionModuleArgoCd, { ArgoCdDeployer } from '../src';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const POD_READY_MS = Number(process.env.BENCH_POD_READY_MS ?? 300);
const REPLICAS = Number(process.env.BENCH_REPLICAS ?? 2);
const CONFIGURATIONS = (process.env.BENCH_POLL_MS ?? 'default')
  .split(',')
  .map(s => s.trim())
  .filter(Boolean);
const TARGET_MS = 1000;
/** How often the bench reads the promotion's REST state. */
const STATE_POLL_MS = 20;

const GIT_TOKEN = 'git-token-bench';
const ARGO_TOKEN = 'argocd-token-bench';
const IMAGE = 'registry.example/checkout';
const NAMESPACE = 'checkout-dev';
const ENTITY_PATH = '/api/progression/v1/entities/component/default/checkout';
const OVERLAY = 'overlays/dev/kustomization.yaml';

const sleep = (ms: number) => new Promise(r => setTimeout(r, ms));
const median = (xs: number[]) =>
  [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const max = (xs: number[]) => Math.max(...xs);
const ms = (n: number) => `${Math.round(n)} ms`;
const pad = (s: string, n: number) => s.padStart(n);

async function until<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 120_000,
  everyMs = 20,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline)
      throw new Error(`${what}: not within ${ms(timeoutMs)}`);
    await sleep(everyMs);
  }
}

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
  replicas: ${REPLICAS}
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
  [OVERLAY]: `# dev: the platform team's overlay
resources:
  - ../../base
namespace: ${NAMESPACE}
images:
  - name: ${IMAGE}
    newTag: 1.0.0
`,
};

/** `kubectl rollout status`'s done, on the stored object. */
function rolledOut(d: KubeObject) {
  const s = d.status ?? {};
  const desired = d.spec?.replicas ?? 1;
  const updated = s.updatedReplicas ?? 0;
  return (
    (s.observedGeneration ?? 0) >= (d.metadata.generation ?? 0) &&
    updated >= desired &&
    (s.replicas ?? 0) <= updated &&
    (s.availableReplicas ?? 0) >= updated
  );
}

interface Seen {
  image: string;
  at: number;
}
const firstAfter = (list: Seen[], image: string, at: number) =>
  list.find(s => s.image === image && s.at >= at);

/** The ArgoCdDeployer with another `pollMs`, wired as the shipped module wires it. */
const argoCdModuleWithPollMs = (pollMs: number) =>
  createBackendModule({
    pluginId: 'progression',
    moduleId: 'argocd',
    register(env) {
      env.registerInit({
        deps: {
          deployers: progressionDeployersExtensionPoint,
          config: coreServices.rootConfig,
          logger: coreServices.logger,
          lifecycle: coreServices.rootLifecycle,
        },
        async init({ deployers, config, logger, lifecycle }) {
          const cacheDir = await fs.promises.mkdtemp(
            path.join(os.tmpdir(), 'progression-gitops-bench-'),
          );
          lifecycle.addShutdownHook(() =>
            fs.promises.rm(cacheDir, { recursive: true, force: true }),
          );
          deployers.addDeployer(
            new ArgoCdDeployer({ config, logger, cacheDir, pollMs }),
          );
        },
      });
    },
  });

interface PromotionRow {
  version: string;
  progression: number;
  standIn: number;
  beforePush: number;
  afterRollout: number;
  sync: number;
}
interface RollbackRow {
  version: string;
  undoAndRollout: number;
  rollbackStep: number;
  standIn: number;
  beforePush: number;
  sync: number;
  whole: number;
}

async function main() {
  const sim = await KubeSimulator.start({
    podReadyDelayMs: POD_READY_MS,
    backOffMs: 300,
  });
  sim.apply({
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: NAMESPACE },
  });
  const git = await GitServer.start({ token: GIT_TOKEN });
  await git.createRepository('manifests', manifests);
  const argo = await ArgoCdStandIn.start(sim, {
    token: ARGO_TOKEN,
    repositories: { [git.url]: { username: 'argocd', password: GIT_TOKEN } },
    // Long: what Progression's refresh (or the bench's) starts is what happens.
    reconcileMs: 600_000,
    selfHealBackoffMs: 1000,
  });
  const argoApi = (p: string) =>
    fetch(`${argo.url}${p}`, {
      headers: { Authorization: `Bearer ${ARGO_TOKEN}` },
    }).then(r => r.json());

  // When each commit landed on the branch: the ref file, watched and read.
  const refsDir = path.join(git.root, 'manifests.git', 'refs', 'heads');
  const landedAt = new Map<string, number>();
  const readRef = () => {
    let sha: string;
    try {
      sha = fs.readFileSync(path.join(refsDir, 'main'), 'utf8').trim();
    } catch {
      return; // between the lock file and its rename
    }
    if (!landedAt.has(sha)) landedAt.set(sha, Date.now());
  };
  const watcher = fs.watch(refsDir, readRef);
  const refPoll = setInterval(readRef, 5);

  // When the Deployment's spec took an image (Argo CD's sync applied it),
  // and when it was rolled out on it.
  const applied: Seen[] = [];
  const rolled: Seen[] = [];
  let lastImage = '';
  let lastDone = '';
  const unsubscribe = sim.store.subscribe(e => {
    const d = e.object;
    if (
      e.resource !== 'deployments' ||
      d.metadata.namespace !== NAMESPACE ||
      d.metadata.name !== 'checkout'
    )
      return;
    const now = Date.now();
    const image = d.spec.template.spec.containers[0].image;
    if (image !== lastImage) {
      applied.push({ image, at: now });
      lastImage = image;
    }
    const key = `${image}@${d.metadata.generation}`;
    if (key !== lastDone && rolledOut(d)) {
      rolled.push({ image, at: now });
      lastDone = key;
    }
  });

  sim.apply({
    apiVersion: 'argoproj.io/v1alpha1',
    kind: 'Application',
    metadata: { name: 'checkout-dev', namespace: 'argocd' },
    spec: {
      project: 'default',
      source: {
        repoURL: git.repoUrl('manifests'),
        path: 'overlays/dev',
        targetRevision: 'main',
      },
      destination: {
        server: 'https://kubernetes.default.svc',
        namespace: NAMESPACE,
      },
      syncPolicy: { automated: { prune: true, selfHeal: true } },
    },
  });
  await until(
    'checkout-dev synced, healthy and rolled out',
    async () => {
      const app = await argo.refresh('checkout-dev');
      const d = sim.store.get('deployments', NAMESPACE, 'checkout');
      return (
        app.status?.sync?.status === 'Synced' &&
        app.status?.health?.status === 'Healthy' &&
        d &&
        rolledOut(d)
      );
    },
    60_000,
    100,
  );

  const deploy = {
    kind: 'argocd',
    instance: 'local',
    git: { token: GIT_TOKEN },
  };
  const results: Array<{
    name: string;
    warmUp: PromotionRow;
    promotions: PromotionRow[];
    rollbacks: RollbackRow[];
  }> = [];

  for (const [c, configuration] of CONFIGURATIONS.entries()) {
    const pollMs =
      configuration === 'default' ? undefined : Number(configuration);
    if (pollMs !== undefined && !(pollMs > 0)) {
      throw new Error(
        `BENCH_POLL_MS: '${configuration}' is not 'default' or a number of ms`,
      );
    }
    const name =
      pollMs === undefined
        ? 'the module as shipped (pollMs 250 ms)'
        : `ArgoCdDeployer with pollMs ${pollMs} ms (wired by the bench)`;
    const backend = await startTestBackend({
      features: [
        progressionBackend,
        pollMs === undefined
          ? progressionModuleArgoCd
          : argoCdModuleWithPollMs(pollMs),
        mockServices.rootLogger.factory({ level: 'warn' }),
        catalogServiceMock.factory({
          entities: [
            {
              apiVersion: 'backstage.io/v1alpha1',
              kind: 'Component',
              metadata: {
                name: 'checkout',
                namespace: 'default',
                annotations: {
                  'progression.backstage.io/pipeline': 'gitops',
                  'backstage.io/kubernetes-id': 'checkout',
                },
              },
              spec: { type: 'service', owner: 'team-checkout' },
            },
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
            progression: {
              // No notifications backend here.
              notifications: { enabled: false },
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
                      namespace: NAMESPACE,
                      autoPromote: true,
                      readyTimeout: '30s',
                      rolloutTimeout: '120s',
                      deploy,
                    },
                  ],
                },
              },
            },
          },
        }),
        mockServices.permissions.factory({ result: AuthorizeResult.ALLOW }),
      ],
    });
    const base = `http://127.0.0.1:${backend.server.port()}`;
    const api = async (p: string, init: RequestInit = {}) => {
      const res = await fetch(`${base}${p}`, {
        ...init,
        headers: {
          Authorization: 'Bearer mock-user-token',
          'Content-Type': 'application/json',
        },
      });
      const body = await res.json();
      if (!res.ok)
        throw new Error(`${p}: ${res.status} ${JSON.stringify(body)}`);
      return body;
    };

    /**
     * Registers a release (auto-promoted into dev) and follows its
     * promotion's REST state every 20 ms to an end; says when each state
     * was first seen.
     */
    const promote = async (version: string) => {
      const seen = new Map<string, number>();
      const requested = Date.now();
      await api(`${ENTITY_PATH}/releases`, {
        method: 'POST',
        body: JSON.stringify({ version, image: `${IMAGE}:${version}` }),
      });
      let id = '';
      const ended = [
        'succeeded',
        'failed',
        'rolled-back',
        'cancelled',
        'rejected',
        'skipped',
      ];
      for (const deadline = Date.now() + 180_000; ; ) {
        const { items } = await api(
          `${ENTITY_PATH}/promotions?stage=dev&limit=1`,
        );
        const p = items[0];
        if (p?.release?.version === version) {
          id = p.id;
          if (!seen.has(p.state)) seen.set(p.state, Date.now());
          if (ended.includes(p.state)) break;
        }
        if (Date.now() > deadline)
          throw new Error(`promotion of ${version}: no end within 180 s`);
        await sleep(STATE_POLL_MS);
      }
      const details = await api(`/api/progression/v1/promotions/${id}`);
      return { requested, seen, details };
    };

    const promotionRound = async (version: string): Promise<PromotionRow> => {
      const { requested, seen, details } = await promote(version);
      const state = details.promotion.state;
      if (state !== 'succeeded') {
        throw new Error(
          `${version}: ${state}: ${details.promotion.error ?? ''}`,
        );
      }
      const step = details.steps.find(
        (s: any) => s.kind === 'deploy' && s.name === 'rollout',
      );
      const commit: string = step.evidence.commit;
      const pushed = landedAt.get(commit);
      if (!pushed)
        throw new Error(`${version}: the push of ${commit} was not seen`);
      const image = `${IMAGE}:${version}`;
      const sync = firstAfter(applied, image, pushed);
      const out = firstAfter(rolled, image, pushed);
      if (!sync || !out)
        throw new Error(`${version}: no rollout of ${image} seen`);
      const succeeded = seen.get('succeeded')!;
      return {
        version,
        progression: succeeded - requested,
        standIn: out.at - pushed,
        beforePush: pushed - requested,
        afterRollout: succeeded - out.at,
        sync: sync.at - pushed,
      };
    };

    const rollbackRound = async (version: string): Promise<RollbackRow> => {
      const { requested, seen, details } = await promote(version);
      const state = details.promotion.state;
      if (state !== 'rolled-back') {
        throw new Error(
          `${version}: expected rolled-back, got ${state}: ${
            details.promotion.error ?? ''
          }`,
        );
      }
      const step = details.steps.find((s: any) => s.kind === 'rollback');
      const evidence = step.evidence;
      const commit: string = evidence.undo.commit;
      const pushed = landedAt.get(commit);
      if (!pushed)
        throw new Error(
          `${version}: the push of rollback ${commit} was not seen`,
        );
      const sync = firstAfter(applied, evidence.to, pushed);
      const out = firstAfter(rolled, evidence.to, pushed);
      if (!sync || !out)
        throw new Error(`${version}: no rollout back to ${evidence.to} seen`);
      const rollingBack = seen.get('rolling-back');
      return {
        version,
        undoAndRollout: evidence.undoAndRolloutMs,
        rollbackStep: evidence.durationMs,
        standIn: out.at - pushed,
        // From the first poll that saw `rolling-back` (± the 20 ms poll).
        beforePush: rollingBack === undefined ? NaN : pushed - rollingBack,
        sync: sync.at - pushed,
        whole: seen.get('rolled-back')! - requested,
      };
    };

    const major = c + 1;
    const warmUp = await promotionRound(`${major}.0.1`);
    const promotions: PromotionRow[] = [];
    for (let i = 1; i <= ROUNDS; i++) {
      promotions.push(await promotionRound(`${major}.${i}.0`));
    }
    const rollbacks: RollbackRow[] = [];
    for (let i = 1; i <= ROUNDS; i++) {
      rollbacks.push(await rollbackRound(`${major}.${i}.1-crashloop`));
    }
    await backend.stop();
    results.push({ name, warmUp, promotions, rollbacks });
  }

  // Argo CD alone: someone else's commit and a webhook's hard refresh.
  const alone: Array<{ standIn: number; sync: number }> = [];
  for (let i = 1; i <= ROUNDS; i++) {
    const tag = `0.${i}.0-alone`;
    const overlay = (await git.readFile('manifests', OVERLAY))!;
    const sha = await git.commit(
      'manifests',
      { [OVERLAY]: overlay.replace(/newTag: .*/, `newTag: ${tag}`) },
      { message: `Set ${tag} by hand` },
    );
    await argoApi('/api/v1/applications/checkout-dev?refresh=hard');
    const image = `${IMAGE}:${tag}`;
    const pushed = await until('the commit seen', () => landedAt.get(sha));
    const out = await until('rolled out', () =>
      firstAfter(rolled, image, pushed),
    );
    const sync = firstAfter(applied, image, pushed)!;
    alone.push({ standIn: out.at - pushed, sync: sync.at - pushed });
  }

  unsubscribe();
  clearInterval(refPoll);
  watcher.close();
  await argo.stop();
  await git.stop();
  await sim.stop();

  // The figures.
  const cores = os.cpus().length;
  console.log(
    `\nGitOps stages: Progression beside the Argo CD stand-in on the same commit (${ROUNDS} rounds; ${REPLICAS} replicas, pods ready after ${POD_READY_MS} ms; ${cores} CPU cores; one run)`,
  );
  console.log(
    '  (a) POST of the release → first 20 ms poll of the promotion saying succeeded',
  );
  console.log(
    '  (b) the commit landing on the branch → the Deployment rolled out on its image (Argo CD refresh + sync + rollout)',
  );
  const summary: string[] = [];
  for (const r of results) {
    console.log(`\n${r.name}`);
    console.log(
      `  ${'promotion'.padEnd(18)}${pad('(a) Progression', 17)}${pad(
        '(b) stand-in',
        14,
      )}${pad('overhead a−b', 14)}${pad('request→push', 14)}${pad(
        'rolled out→seen',
        17,
      )}${pad('push→applied', 14)}`,
    );
    const row = (label: string, p: PromotionRow) =>
      console.log(
        `  ${label.padEnd(18)}${pad(ms(p.progression), 17)}${pad(
          ms(p.standIn),
          14,
        )}${pad(ms(p.progression - p.standIn), 14)}${pad(
          ms(p.beforePush),
          14,
        )}${pad(ms(p.afterRollout), 17)}${pad(ms(p.sync), 14)}`,
      );
    row(`${r.warmUp.version} (warm-up)`, r.warmUp);
    for (const p of r.promotions) row(p.version, p);
    const overhead = r.promotions.map(p => p.progression - p.standIn);
    const met = overhead.filter(o => o <= TARGET_MS).length;
    console.log(
      `  median: (a) ${ms(
        median(r.promotions.map(p => p.progression)),
      )}, (b) ${ms(median(r.promotions.map(p => p.standIn)))}, overhead ${ms(
        median(overhead),
      )} (max ${ms(max(overhead))})`,
    );
    const promotionVerdict = `${
      met === overhead.length ? 'MET' : 'MISSED'
    } (${met} of ${overhead.length} rounds within 1 s; median ${ms(
      median(overhead),
    )}, max ${ms(max(overhead))})`;
    console.log(
      `  target: Progression adds ≤ 1 s to a promotion: ${promotionVerdict}`,
    );

    console.log(
      `\n  ${'rollback'.padEnd(18)}${pad('undo+rollout', 17)}${pad(
        '(b) stand-in',
        14,
      )}${pad('overhead a−b', 14)}${pad('rolling-back→push', 19)}${pad(
        'push→applied',
        14,
      )}${pad('rollback step', 15)}${pad('request→rolled back', 21)}`,
    );
    for (const b of r.rollbacks) {
      console.log(
        `  ${b.version.padEnd(18)}${pad(ms(b.undoAndRollout), 17)}${pad(
          ms(b.standIn),
          14,
        )}${pad(ms(b.undoAndRollout - b.standIn), 14)}${pad(
          Number.isNaN(b.beforePush) ? 'n/a' : ms(b.beforePush),
          19,
        )}${pad(ms(b.sync), 14)}${pad(ms(b.rollbackStep), 15)}${pad(
          ms(b.whole),
          21,
        )}`,
      );
    }
    const rbOverhead = r.rollbacks.map(b => b.undoAndRollout - b.standIn);
    const rbMet = rbOverhead.filter(o => o <= TARGET_MS).length;
    console.log(
      `  median: undo+rollout ${ms(
        median(r.rollbacks.map(b => b.undoAndRollout)),
      )}, (b) ${ms(median(r.rollbacks.map(b => b.standIn)))}, overhead ${ms(
        median(rbOverhead),
      )} (max ${ms(max(rbOverhead))})`,
    );
    const rollbackVerdict = `${
      rbMet === rbOverhead.length ? 'MET' : 'MISSED'
    } (${rbMet} of ${rbOverhead.length} rounds within 1 s; median ${ms(
      median(rbOverhead),
    )}, max ${ms(max(rbOverhead))})`;
    console.log(
      `  target: Progression adds ≤ 1 s to a rollback: ${rollbackVerdict}`,
    );
    summary.push(
      `${r.name}: promotion overhead ${
        promotionVerdict.split(' (')[0]
      } (median ${ms(median(overhead))}, max ${ms(
        max(overhead),
      )}), rollback overhead ${rollbackVerdict.split(' (')[0]} (median ${ms(
        median(rbOverhead),
      )}, max ${ms(max(rbOverhead))})`,
    );
  }
  console.log(
    `\nArgo CD stand-in alone (someone else's commit, then a hard refresh as a webhook asks; ${ROUNDS} rounds)`,
  );
  console.log(
    `  commit → rolled out: median ${ms(
      median(alone.map(a => a.standIn)),
    )}, max ${ms(
      max(alone.map(a => a.standIn)),
    )}; of which commit → applied: median ${ms(
      median(alone.map(a => a.sync)),
    )}`,
  );
  console.log('\nSummary (target: Progression adds ≤ 1 s):');
  for (const line of summary) console.log(`  ${line}`);
}

main().then(
  () => process.exit(0),
  e => {
    console.error(e);
    process.exit(1);
  },
);
