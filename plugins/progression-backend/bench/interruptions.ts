/*
 * The interruption benchmarks of bench/promotions.ts: how soon a cancel
 * ends the running step, how soon a stopped replica's promotion runs again,
 * and how long a step that always fails is retried. They print figures;
 * nothing here asserts on time.
 */
import { mockServices } from '@backstage/backend-test-utils';
import { ConfigReader } from '@backstage/config';
import { KubeSimulator, installDemo } from '@internal/kube-simulator';
import {
  prometheusBinary,
  startPrometheus,
} from '../src/__testUtils__/startPrometheus';
import { readTestConfig } from '../src/__testUtils__/readTestConfig';
import { readPrometheusConfig } from '../src/config/readProgressionConfig';
import { Promotion, PromotionStore } from '../src/database/PromotionStore';
import { PromotionEngine } from '../src/engine/PromotionEngine';
import { PromotionWorker } from '../src/engine/PromotionWorker';
import { PromotionState, isTerminal } from '../src/engine/transitions';
import { builtInGates } from '../src/gates/builtInGates';
import { KubernetesWorkloads } from '../src/kubernetes/KubernetesWorkloads';
import { PrometheusClient } from '../src/prometheus/PrometheusClient';
import { PromotionCommands } from '../src/service/PromotionCommands';
import {
  duration,
  median,
  memoryStore,
  percentile,
  replicaStore,
  sleep,
  until,
} from './benchUtil';

const CANCEL_ROUNDS = Number(process.env.BENCH_CANCEL_ROUNDS ?? 7);
const RESUME_ROUNDS = Number(process.env.BENCH_RESUME_ROUNDS ?? 5);
const RETRY_ROUNDS = Number(process.env.BENCH_RETRY_ROUNDS ?? 3);
/** How long a migration Job runs in the cancel benchmark: far longer than a cancel may take. */
const JOB_RUN_MS = Number(process.env.BENCH_JOB_RUN_MS ?? 30_000);
/** The engine's default: how often a running step checks for a cancel. */
const WATCH_INTERVAL_MS = 1000;
/** Scaled worker settings of the takeover (the defaults are 10 s and 60 s). */
const HEARTBEAT_MS = Number(process.env.BENCH_HEARTBEAT_MS ?? 500);
const STALE_AFTER_MS = Number(process.env.BENCH_STALE_AFTER_MS ?? 3000);
const DEFAULT_HEARTBEAT_MS = 10_000;
const DEFAULT_STALE_AFTER_MS = 60_000;
/** The scaled retry settings, and the defaults (1 s doubling to 1 min, 5 min). */
const RETRY = {
  initialDelay: process.env.BENCH_RETRY_INITIAL_DELAY ?? '50ms',
  maxDelay: process.env.BENCH_RETRY_MAX_DELAY ?? '400ms',
  budget: process.env.BENCH_RETRY_BUDGET ?? '3s',
};
const DEFAULT_RETRY = {
  initialDelayMs: 1000,
  maxDelayMs: 60_000,
  budgetMs: 5 * 60_000,
};

const entityRef = 'component:default/payments-api';
const resolveEntity = async (ref: string) => ({
  entityRef: ref,
  name: 'payments-api',
  namespace: 'default',
  kubernetesId: 'payments-api',
});
const logger = () => mockServices.rootLogger({ level: 'error' });

interface Ending {
  at: number;
  state: PromotionState;
}

/** When and how each promotion ended, as the engine tells it. */
function endings() {
  const seen = new Map<string, Ending>();
  const waiting = new Map<string, (ending: Ending) => void>();
  return {
    onTransition(change: { promotionId: string; to: PromotionState }) {
      if (!isTerminal(change.to)) return;
      const ending = { at: performance.now(), state: change.to };
      seen.set(change.promotionId, ending);
      waiting.get(change.promotionId)?.(ending);
    },
    ended: (id: string) => seen.get(id),
    of(id: string, timeoutMs = 180_000): Promise<Ending> {
      const known = seen.get(id);
      if (known) return Promise.resolve(known);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () =>
            reject(
              new Error(`promotion ${id} did not end within ${timeoutMs} ms`),
            ),
          timeoutMs,
        );
        waiting.set(id, ending => {
          clearTimeout(timer);
          resolve(ending);
        });
      });
    },
  };
}

/** A release of payments-api and its promotion into `development`. */
async function promote(
  store: PromotionStore,
  pipeline: string,
  version: string,
) {
  const { release } = await store.registerRelease({
    entityRef,
    version,
    image: `registry.local/payments-api:${version}`,
    createdBy: 'bench',
  });
  const { promotion } = await store.createPromotion({
    entityRef,
    pipeline,
    stage: 'development',
    releaseId: release.id,
    requestedBy: 'bench',
  });
  return promotion;
}

const liveImage = (sim: KubeSimulator) =>
  sim.store.get('deployments', 'development', 'payments-api')!.spec.template
    .spec.containers[0].image as string;

/** Calls `then` once payments-api in development runs `image`. */
function onImage(sim: KubeSimulator, image: string, then: () => void) {
  let done = false;
  const unsubscribe = sim.store.subscribe(e => {
    if (
      done ||
      e.resource !== 'deployments' ||
      e.object.metadata.namespace !== 'development' ||
      e.object.metadata.name !== 'payments-api' ||
      e.object.spec.template.spec.containers[0].image !== image
    )
      return;
    done = true;
    unsubscribe();
    then();
  });
  return unsubscribe;
}

function clusterConfig(sim: KubeSimulator) {
  return {
    name: 'sim',
    url: sim.url,
    serviceAccountToken: sim.token,
    skipTLSVerify: true,
  };
}

/**
 * Cancel → terminal state at each kind of step, through
 * PromotionCommands.cancel (what POST /promotions/:id/cancel calls) with a
 * worker running the engine as in the backend. The cancels land at phases
 * spread over the engine's watch interval.
 */
export async function cancelBenchmark() {
  const sim = await KubeSimulator.start({
    podReadyDelayMs: 100,
    jobRunMs: JOB_RUN_MS,
  });
  const demo = await installDemo(sim, {
    stages: [{ namespace: 'development', environment: 'dev', port: 0 }],
    trafficIntervalMs: 1000,
  });
  const workloadUrl = demo.servers[0].url;
  const prometheus = prometheusBinary()
    ? await startPrometheus([new URL(workloadUrl).host])
    : undefined;
  const smoke = { checks: [{ path: '/healthz', assert: "status = 'ok'" }] };
  const jobOf = (id: string) =>
    sim.store
      .list('jobs', 'development')
      .find(
        (j: any) =>
          j.metadata.labels?.['progression.backstage.io/promotion-id'] === id,
      );
  const { knex, store } = await memoryStore();
  const steps = async (id: string) => store.listSteps(id);
  const scenarios: {
    label: string;
    pipeline: string;
    tag?: string;
    gates: object;
    /** True once the step to cancel runs. */
    running: (id: string) => Promise<boolean>;
    /** How long after that the cancel comes, at the least. */
    settleMs: number;
    note?: string;
  }[] = [
    {
      label: 'load test (60 s)',
      pipeline: 'load',
      gates: {
        smoke,
        load: {
          path: '/api/version',
          connections: 2,
          duration: '60s',
          thresholds: { errorRate: 0.5 },
        },
      },
      running: async id => (await steps(id)).some(s => s.name === 'smoke'),
      settleMs: 500,
    },
    ...(prometheus
      ? [
          {
            label: 'metric sampling (60 × 1 s)',
            pipeline: 'metrics',
            gates: {
              smoke,
              metrics: [
                {
                  name: 'request-rate',
                  query:
                    'sum(rate(http_requests_total{namespace="{{ namespace }}"}[1m])) or vector(0)',
                  condition: '>= 0',
                  unit: 'rps',
                  interval: '1s',
                  count: 60,
                },
              ],
            },
            running: async (id: string) =>
              (await steps(id)).some(s => s.name === 'smoke'),
            settleMs: 500,
          },
        ]
      : []),
    {
      label: 'smoke-check retries (20 × 1 s)',
      pipeline: 'smoke',
      tag: '-unhealthy',
      gates: {
        smoke: {
          checks: [
            {
              path: '/healthz',
              assert: "status = 'ok'",
              retries: 20,
              retryDelay: '1s',
            },
          ],
        },
      },
      running: async id =>
        (await store.getPromotion(id))?.state === 'verifying',
      settleMs: 1500,
    },
    {
      label: 'unready rollout (readyTimeout 60 s)',
      pipeline: 'unready',
      tag: '-unready',
      gates: { smoke },
      running: async id => (await steps(id)).some(s => s.name === 'patch'),
      settleMs: 500,
    },
    {
      label: `migration Job (runs ${JOB_RUN_MS / 1000} s)`,
      pipeline: 'migration',
      gates: { smoke, job: { migration: { command: ['./migrate', 'up'] } } },
      running: async id => Boolean(jobOf(id)),
      settleMs: 500,
      note: 'nothing was deployed: no undo; the Job is left to finish',
    },
  ];
  const url = `${workloadUrl}/{{ kubernetesId }}`;
  const configReader = new ConfigReader({
    progression: {
      clusters: [clusterConfig(sim)],
      ...(prometheus && { prometheus: { url: prometheus.url } }),
      pipelines: Object.fromEntries(
        scenarios.map(s => [
          s.pipeline,
          {
            stages: [
              {
                name: 'development',
                cluster: 'sim',
                namespace: 'development',
                url,
                gates: s.gates,
              },
            ],
          },
        ]),
      ),
    },
  });
  const config = readTestConfig(configReader);
  const prometheusConfig = readPrometheusConfig(configReader);
  const workloads = new KubernetesWorkloads();
  const ends = endings();
  const engine = new PromotionEngine({
    store,
    workloads,
    config,
    gates: builtInGates({
      prometheus: prometheusConfig && new PrometheusClient(prometheusConfig),
    }),
    logger: logger(),
    resolveEntity,
    onTransition: change => ends.onTransition(change),
  });
  const worker = new PromotionWorker({ store, engine, logger: logger() });
  const commands = new PromotionCommands({
    store,
    config,
    deployers: [],
    workloads,
    onWork: () => worker.kick(),
    memberships: async () => [],
  });
  const cancel = async (id: string) => {
    for (let attempt = 0; ; attempt++) {
      const p = (await store.getPromotion(id))!;
      if (isTerminal(p.state)) {
        throw new Error(
          `promotion ${id} ended ${p.state} before the cancel: ${JSON.stringify(
            (await store.listSteps(id)).slice(-3),
          )}`,
        );
      }
      try {
        await commands.cancel(p, 'user:default/bench');
        return;
      } catch (e) {
        // It moved on (deploying → verifying) while being cancelled.
        if (attempt < 5 && (e as Error).name === 'ConflictError') continue;
        throw e;
      }
    }
  };
  await workloads.waitForRollout(
    { cluster: config.clusters.get('sim')!, namespace: 'development' },
    'payments-api',
    { timeoutMs: 60_000 },
  );

  const rows: string[] = [];
  for (const [k, s] of scenarios.entries()) {
    const toEnd: number[] = [];
    const toUndo: number[] = [];
    for (let i = 0; i < CANCEL_ROUNDS; i++) {
      const before = liveImage(sim);
      const p = await promote(store, s.pipeline, `2${k}.${i}.0${s.tag ?? ''}`);
      const ended = ends.of(p.id);
      worker.kick();
      await until(`${s.label}: the step to cancel runs`, async () =>
        s.running(p.id),
      );
      await sleep(s.settleMs + (i * WATCH_INTERVAL_MS) / CANCEL_ROUNDS);
      let undoneAt: number | undefined;
      const stopWatching =
        liveImage(sim) === before
          ? undefined
          : onImage(sim, before, () => {
              undoneAt = performance.now();
            });
      const cancelledAt = performance.now();
      await cancel(p.id);
      const end = await ended;
      stopWatching?.();
      if (end.state !== 'rolled-back') {
        throw new Error(`${s.label}: ${p.id} ended ${end.state}`);
      }
      toEnd.push(end.at - cancelledAt);
      if (undoneAt) toUndo.push(undoneAt - cancelledAt);
      // The next round's migration would wait for this Job otherwise: the
      // gate starts no second one while another promotion's runs.
      const job = jobOf(p.id);
      if (job) sim.store.delete('jobs', 'development', job.metadata.name);
    }
    rows.push(
      `  ${s.label.padEnd(38)} median ${duration(median(toEnd)).padStart(
        7,
      )}, p95 ${duration(percentile(toEnd, 95)).padStart(7)}; ${
        toUndo.length
          ? `undo patch sent after ${duration(median(toUndo))} (median)`
          : s.note ?? ''
      }`,
    );
  }
  await worker.stop();
  await knex.destroy();
  await workloads.close();
  await prometheus?.close();
  await demo.stop();
  await sim.stop();

  console.log(
    `\nCancel → terminal state (${CANCEL_ROUNDS} rounds each; PromotionCommands.cancel, then the rollback: undo, rollout wait, smoke check; the step checks for a cancel every ${
      WATCH_INTERVAL_MS / 1000
    } s, cancels spread over that interval; pods ready after 100 ms; target: a few seconds)`,
  );
  for (const row of rows) console.log(row);
  if (!prometheus) {
    console.log(
      '  metric sampling: skipped, no prometheus binary (install it or set PROMETHEUS_BIN)',
    );
  }
}

/**
 * A replica stopped mid-rollout (at the image patch) and started again:
 * gracefully (`worker.stop()`, what the shutdown hook does on SIGTERM) or
 * killed (its claim and last heartbeat left in the store), restarted with
 * the same replicaId or as another replica. Measured from the restart.
 */
export async function resumeBenchmark() {
  const podReadyMs = 200;
  const sim = await KubeSimulator.start({ podReadyDelayMs: podReadyMs });
  sim.apply({
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: 'development' },
  });
  sim.apply({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name: 'payments-api',
      namespace: 'development',
      labels: { 'backstage.io/kubernetes-id': 'payments-api' },
    },
    spec: {
      replicas: 2,
      selector: { matchLabels: { app: 'payments-api' } },
      template: {
        metadata: { labels: { app: 'payments-api' } },
        spec: {
          containers: [
            {
              name: 'payments-api',
              image: 'registry.local/payments-api:1.0.0',
            },
          ],
        },
      },
    },
  });
  const config = readTestConfig(
    new ConfigReader({
      progression: {
        clusters: [clusterConfig(sim)],
        pipelines: {
          p: {
            stages: [
              { name: 'development', cluster: 'sim', namespace: 'development' },
            ],
          },
        },
      },
    }),
  );
  const workloads = new KubernetesWorkloads();
  const { knex, store } = await memoryStore();
  const ends = endings();
  /** One backend replica on the store: its engine and worker. */
  const replica = (
    replicaId: string,
    onResult?: Parameters<typeof replicaStore>[1],
  ) => {
    const seen = replicaStore(store, onResult);
    const engine = new PromotionEngine({
      store: seen.store,
      workloads,
      config,
      gates: [],
      logger: logger(),
      resolveEntity,
      onTransition: change => ends.onTransition(change),
    });
    const worker = new PromotionWorker({
      store: seen.store,
      engine,
      logger: logger(),
      replicaId,
      heartbeatMs: HEARTBEAT_MS,
      staleMs: STALE_AFTER_MS,
    });
    return { worker, freeze: seen.freeze };
  };
  const variants: {
    label: string;
    how: 'none' | 'stop' | 'kill';
    same?: boolean;
  }[] = [
    { label: 'not stopped (baseline, from the patch)', how: 'none' },
    {
      label: 'SIGTERM, restarted as the same replica',
      how: 'stop',
      same: true,
    },
    {
      label: 'SIGTERM, restarted as another replica',
      how: 'stop',
      same: false,
    },
    { label: 'killed, restarted as the same replica', how: 'kill', same: true },
    { label: 'killed, another replica takes over', how: 'kill', same: false },
  ];
  const rows: string[] = [];
  for (const [v, variant] of variants.entries()) {
    const claimed: number[] = [];
    const progressed: number[] = [];
    const stops: number[] = [];
    let released = 0;
    for (let i = 0; i < RESUME_ROUNDS; i++) {
      const version = `${v + 2}.${i}.0`;
      let id = '';
      // From the patch (the baseline) or from the restart.
      let since = Infinity;
      let claimedAt: number | undefined;
      let wroteAt: number | undefined;
      const watch: Parameters<typeof replicaStore>[1] = (
        method,
        args,
        result,
        at,
      ) => {
        if (at < since) return;
        if (method === 'claim' && (result as Promotion)?.id === id) {
          claimedAt ??= at;
        }
        if (
          ['addStep', 'transition', 'deferPromotion'].includes(method) &&
          args[0] === id &&
          result
        ) {
          wroteAt ??= at;
        }
      };
      const patched = new Promise<void>(resolve =>
        onImage(sim, `registry.local/payments-api:${version}`, resolve),
      );
      const first = replica('bench-a', watch);
      const p = await promote(store, 'p', version);
      id = p.id;
      const ended = ends.of(p.id);
      first.worker.kick();
      // The image patch reached the cluster: the rollout wait runs.
      await patched;
      let running = first.worker;
      if (variant.how === 'none') {
        since = performance.now();
      } else {
        const stopStarted = performance.now();
        if (variant.how === 'kill') first.freeze();
        else await first.worker.stop();
        stops.push(performance.now() - stopStarted);
        if (!(await store.getPromotion(p.id))?.ownerId) released++;
        const second = replica(variant.same ? 'bench-a' : 'bench-b', watch);
        running = second.worker;
        since = performance.now();
        // The backend runs the worker at start, then every 5 s; here every
        // 50 ms, so that the figures are the claims' own.
        await second.worker.runOnce();
        await until(
          `${variant.label}: claimed`,
          async () => {
            if (claimedAt === undefined) await second.worker.runOnce();
            return claimedAt !== undefined;
          },
          STALE_AFTER_MS * 3,
          50,
        );
        claimed.push(claimedAt! - since);
      }
      await until(`${variant.label}: a state change`, async () =>
        Boolean(wroteAt),
      );
      const end = await ended;
      if (end.state !== 'succeeded') {
        throw new Error(`${variant.label}: ${p.id} ended ${end.state}`);
      }
      progressed.push(wroteAt! - since);
      await running.stop();
    }
    rows.push(
      `  ${variant.label.padEnd(40)} ${
        claimed.length
          ? `claimed after ${duration(median(claimed)).padStart(7)}, `
          : ' '.repeat(28)
      }next state change after ${duration(median(progressed)).padStart(7)}${
        variant.how === 'stop'
          ? `; stop() took ${duration(
              median(stops),
            )}, claim given up in ${released}/${RESUME_ROUNDS}`
          : ''
      }`,
    );
  }
  await knex.destroy();
  await workloads.close();
  await sim.stop();

  console.log(
    `\nStopped replica → promotion resumed (${RESUME_ROUNDS} rounds each, medians; stopped at the image patch, measured from the restart; the next state change is the end of the rollout wait (2 pods, ready ${podReadyMs} ms after they start); heartbeat ${duration(
      HEARTBEAT_MS,
    )}, staleAfter ${duration(STALE_AFTER_MS)}, scaled)`,
  );
  for (const row of rows) console.log(row);
  console.log(
    `  a killed replica's claim is taken over staleAfter after its last heartbeat: ${duration(
      STALE_AFTER_MS - HEARTBEAT_MS,
    )}–${duration(
      STALE_AFTER_MS,
    )} after the kill here, plus up to 1 s as SQLite keeps heartbeats to the second; ${duration(
      DEFAULT_STALE_AFTER_MS - DEFAULT_HEARTBEAT_MS,
    )}–${duration(
      DEFAULT_STALE_AFTER_MS,
    )} with the defaults (heartbeat 10 s, staleAfter 60 s: the issue's "about 50 s"); the backend's worker runs every 5 s, which may add up to 5 s to that`,
  );
}

/**
 * The attempts the backoff plans for a step that always fails at once:
 * attempt 1 at 0, each next one a capped, doubling delay later, the last
 * the first to start when the budget is spent.
 */
export function plannedAttempts(retry: {
  initialDelayMs: number;
  maxDelayMs: number;
  budgetMs: number;
}) {
  let at = 0;
  let attempts = 1;
  while (at < retry.budgetMs) {
    at += Math.min(
      retry.maxDelayMs,
      retry.initialDelayMs * 2 ** (attempts - 1),
    );
    attempts++;
  }
  return { attempts, lastAtMs: at };
}

/**
 * A step that always fails with a transient error (every GET of the
 * cluster answers 503), with scaled retry settings: attempts made, and the
 * time from the first error to the failed state beside the budget.
 */
export async function retryBudgetBenchmark() {
  const sim = await KubeSimulator.start({ podReadyDelayMs: 50 });
  sim.apply({
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: 'development' },
  });
  sim.apply({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name: 'payments-api',
      namespace: 'development',
      labels: { 'backstage.io/kubernetes-id': 'payments-api' },
    },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: 'payments-api' } },
      template: {
        metadata: { labels: { app: 'payments-api' } },
        spec: {
          containers: [
            {
              name: 'payments-api',
              image: 'registry.local/payments-api:1.0.0',
            },
          ],
        },
      },
    },
  });
  const config = readTestConfig(
    new ConfigReader({
      progression: {
        clusters: [clusterConfig(sim)],
        worker: { retry: RETRY },
        pipelines: {
          p: {
            stages: [
              { name: 'development', cluster: 'sim', namespace: 'development' },
            ],
          },
        },
      },
    }),
  );
  const { retry } = config.worker;
  const workloads = new KubernetesWorkloads();
  const { knex, store: real } = await memoryStore();
  let watched = '';
  let deferrals: number[] = [];
  const { store } = replicaStore(real, (method, args, result, at) => {
    if (method === 'deferPromotion' && args[0] === watched && result) {
      deferrals.push(at);
    }
  });
  const ends = endings();
  const engine = new PromotionEngine({
    store,
    workloads,
    config,
    gates: [],
    logger: logger(),
    resolveEntity,
    onTransition: change => ends.onTransition(change),
  });
  const worker = new PromotionWorker({ store, engine, logger: logger() });
  const attempts: number[] = [];
  const spent: number[] = [];
  let reason = '';
  for (let i = 0; i < RETRY_ROUNDS; i++) {
    sim.injectFaults({
      failNext: 1_000_000,
      failStatus: 503,
      methods: ['GET'],
    });
    deferrals = [];
    const p = await promote(store, 'p', `3.${i}.0`);
    watched = p.id;
    const ended = ends.of(p.id);
    worker.kick();
    const end = await ended;
    sim.clearFaults();
    if (end.state !== 'failed' || !deferrals.length) {
      throw new Error(`retries: ${p.id} ended ${end.state}`);
    }
    const errors = (await real.listSteps(p.id)).filter(s => s.kind === 'error');
    attempts.push(errors.length);
    spent.push(end.at - deferrals[0]);
    reason = (await real.getPromotion(p.id))?.error ?? '';
  }
  await worker.stop();
  await knex.destroy();
  await workloads.close();
  await sim.stop();

  const planned = plannedAttempts(retry);
  const defaults = plannedAttempts(DEFAULT_RETRY);
  console.log(
    `\nRetries of a step that always fails (every GET of the cluster answers 503; ${RETRY_ROUNDS} rounds, medians; scaled worker.retry: initialDelay ${duration(
      retry.initialDelayMs,
    )}, maxDelay ${duration(retry.maxDelayMs)}, budget ${duration(
      retry.budgetMs,
    )})`,
  );
  console.log(
    `  attempts made:          ${median(attempts)} (rounds: ${attempts.join(
      ', ',
    )}; ${planned.attempts} planned by the backoff)`,
  );
  console.log(
    `  first error → failed:   ${duration(median(spent))} = ${(
      median(spent) / retry.budgetMs
    ).toFixed(
      2,
    )}× the budget (the last attempt is the first after the budget: planned at ${duration(
      planned.lastAtMs,
    )}; target ≤ budget + maxDelay = ${duration(
      retry.budgetMs + retry.maxDelayMs,
    )})`,
  );
  console.log(`  ends with:              ${reason}`);
  console.log(
    `  (the budget counts from the first error's recorded start, which SQLite keeps to the second: here it ends up to 1 s early)`,
  );
  console.log(
    `  with the defaults (initialDelay 1 s, maxDelay 1 min, budget 5 min): ${
      defaults.attempts
    } attempts, failed ${duration(
      defaults.lastAtMs,
    )} after the first error (planned, not run)`,
  );
}
