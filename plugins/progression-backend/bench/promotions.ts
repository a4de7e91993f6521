/*
 * Benchmarks of the promotion engine against the cluster simulator, run
 * with `yarn workspace @progression-io/backstage-plugin-progression-backend bench`.
 * They print figures; nothing here asserts on time.
 *
 * 1. Rollback: from the failed smoke check to the rollback patch, and the
 *    whole rollback (undo + rollout wait), beside `kubectl rollout undo` +
 *    `kubectl rollout status` on the same simulator.
 * 2. 200 concurrent promotions on one engine: time until all are terminal,
 *    peak RSS of this process (the simulator runs in a child process), and
 *    cluster API calls per promotion.
 * 3. Fail fast: for a release whose pods never become ready, crash-loop or
 *    cannot pull their image, registration → rolled back, with the stage's
 *    defaults (readyTimeout 60 s, rolloutTimeout 10 min) and the simulated
 *    kubelet at a real node's back-off (10 s, doubling).
 * 4. Cancel → terminal state during a load test, metric sampling (when a
 *    prometheus binary is installed), smoke-check retries, an unready
 *    rollout and a migration Job (bench/interruptions.ts).
 * 5. A replica stopped mid-rollout (SIGTERM: `worker.stop()`; or killed)
 *    and restarted as the same replica or another: restart → resumed.
 * 6. A step that always fails with a transient error: attempts made and
 *    time to the failed state beside the retry budget (scaled), and what
 *    the default budget plans.
 *
 * BENCH_SECTIONS (a comma-separated list of rollback, concurrency,
 * failfast, cancel, resume, retry) runs some of them; all by default.
 */
import { mockServices } from '@backstage/backend-test-utils';
import { ConfigReader } from '@backstage/config';
import { KubeSimulator, installDemo } from '@internal/kube-simulator';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { readTestConfig } from '../src/__testUtils__/readTestConfig';
import { PromotionEngine } from '../src/engine/PromotionEngine';
import { PromotionWorker } from '../src/engine/PromotionWorker';
import { isTerminal } from '../src/engine/transitions';
import { SmokeGate } from '../src/gates/SmokeGate';
import { KubernetesWorkloads } from '../src/kubernetes/KubernetesWorkloads';
import { median, memoryStore } from './benchUtil';
import {
  cancelBenchmark,
  resumeBenchmark,
  retryBudgetBenchmark,
} from './interruptions';

const run = promisify(execFile);
const PROMOTIONS = Number(process.env.BENCH_PROMOTIONS ?? 200);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
/** How long the simulated pods take to become ready in the rollback benchmark. */
const POD_READY_MS = Number(process.env.BENCH_POD_READY_MS ?? 100);
/** How long simulated pods take to start in the fail-fast benchmark (a pull and a start). */
const FAIL_FAST_POD_START_MS = Number(
  process.env.BENCH_FAIL_FAST_POD_START_MS ?? 2_000,
);
/** The simulated kubelet's first back-off there: a real node's. */
const FAIL_FAST_BACK_OFF_MS = Number(
  process.env.BENCH_FAIL_FAST_BACK_OFF_MS ?? 10_000,
);
async function rollbackBenchmark() {
  const sim = await KubeSimulator.start({
    podReadyDelayMs: POD_READY_MS,
    tls: true,
  });
  const demo = await installDemo(sim, {
    stages: [{ namespace: 'development', environment: 'dev', port: 0 }],
    trafficIntervalMs: 60_000,
  });
  const url = `${demo.servers[0].url}/{{ kubernetesId }}`;
  const config = readTestConfig(
    new ConfigReader({
      progression: {
        clusters: [
          {
            name: 'sim',
            url: sim.url,
            serviceAccountToken: sim.token,
            skipTLSVerify: true,
          },
        ],
        pipelines: {
          p: {
            stages: [
              {
                name: 'development',
                cluster: 'sim',
                namespace: 'development',
                url,
                gates: { smoke: { checks: [{ path: '/healthz' }] } },
              },
            ],
          },
        },
      },
    }),
  );
  const { knex, store } = await memoryStore();
  const toPatch: number[] = [];
  const whole: number[] = [];
  const undoAndRollout: number[] = [];
  let failedAt = 0;
  const engine = new PromotionEngine({
    store,
    workloads: new KubernetesWorkloads(),
    config,
    gates: [new SmokeGate()],
    logger: mockServices.rootLogger({ level: 'warn' }),
    resolveEntity: async entityRef => ({
      entityRef,
      name: 'payments-api',
      namespace: 'default',
      kubernetesId: 'payments-api',
    }),
    onTransition: change => {
      if (change.to === 'rolling-back') failedAt = performance.now();
      if (change.to === 'rolled-back') whole.push(performance.now() - failedAt);
    },
  });
  let expectedBack = '';
  sim.store.subscribe(e => {
    if (
      e.resource !== 'deployments' ||
      e.object.metadata.namespace !== 'development' ||
      e.object.metadata.name !== 'payments-api'
    )
      return;
    if (
      failedAt &&
      e.object.spec.template.spec.containers[0].image === expectedBack &&
      toPatch.length < whole.length + 1
    ) {
      toPatch.push(performance.now() - failedAt);
    }
  });
  const entityRef = 'component:default/payments-api';
  for (let i = 0; i < ROUNDS; i++) {
    expectedBack = sim.store.get('deployments', 'development', 'payments-api')!
      .spec.template.spec.containers[0].image;
    const { release } = await store.registerRelease({
      entityRef,
      version: `9.${i}.0-unhealthy`,
      image: `registry.local/payments-api:9.${i}.0-unhealthy`,
      createdBy: 'bench',
    });
    const { promotion } = await store.createPromotion({
      entityRef,
      pipeline: 'p',
      stage: 'development',
      releaseId: release.id,
      requestedBy: 'bench',
    });
    failedAt = 0;
    const state = await engine.run(promotion.id);
    if (state !== 'rolled-back')
      throw new Error(`expected rolled-back, got ${state}`);
    const step = (await store.listSteps(promotion.id)).find(
      s => s.kind === 'rollback',
    );
    undoAndRollout.push(
      (step?.evidence as { undoAndRolloutMs: number }).undoAndRolloutMs,
    );
  }

  // kubectl on the same simulator: set a new image, then undo + status.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-kubectl-'));
  const kubeconfig = path.join(dir, 'kubeconfig');
  fs.writeFileSync(kubeconfig, sim.kubeconfig());
  const kubectl = (...args: string[]) =>
    run('kubectl', ['-n', 'development', ...args], {
      env: { ...process.env, KUBECONFIG: kubeconfig, HOME: dir },
    });
  const kubectlTimes: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    await kubectl(
      'set',
      'image',
      'deployment/payments-api',
      `payments-api=registry.local/payments-api:8.${i}.0`,
    );
    await kubectl(
      'rollout',
      'status',
      'deployment/payments-api',
      '--timeout=60s',
    );
    const started = performance.now();
    await kubectl('rollout', 'undo', 'deployment/payments-api');
    await kubectl(
      'rollout',
      'status',
      'deployment/payments-api',
      '--timeout=60s',
    );
    kubectlTimes.push(performance.now() - started);
  }
  fs.rmSync(dir, { recursive: true, force: true });
  await knex.destroy();
  await demo.stop();
  await sim.stop();

  console.log(
    `\nRollback (${ROUNDS} rounds, simulator pods ready after ${POD_READY_MS} ms; medians)`,
  );
  console.log(
    `  failed smoke check → rollback patch:        ${median(toPatch).toFixed(
      1,
    )} ms (target ≤ 100 ms)`,
  );
  console.log(
    `  whole rollback (undo, rollout, smoke checks): ${median(whole).toFixed(
      1,
    )} ms`,
  );
  console.log(
    `  of which undo + rollout wait:                ${median(
      undoAndRollout,
    ).toFixed(1)} ms`,
  );
  console.log(
    `  kubectl rollout undo + rollout status:       ${median(
      kubectlTimes,
    ).toFixed(1)} ms`,
  );
  console.log(
    `  ratio ours (undo + rollout wait) / kubectl:  ${(
      median(undoAndRollout) / median(kubectlTimes)
    ).toFixed(2)} (target ≤ 0.5; ${(
      median(whole) / median(kubectlTimes)
    ).toFixed(2)} with the smoke checks after it)`,
  );
}

async function concurrencyBenchmark() {
  // The simulator runs in its own process, so that RSS here is the engine's.
  const simDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-sim-'));
  const kubeconfigPath = path.join(simDir, 'kubeconfig');
  const child = spawn(
    process.execPath,
    [
      require.resolve('@internal/kube-simulator/bin/kube-simulator'),
      '--port',
      '0',
      '--pod-ready-delay',
      '50',
      '--write-kubeconfig',
      kubeconfigPath,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', d => {
      out += d;
      const m = out.match(/listening on (\S+)/);
      if (m) resolve(m[1]);
    });
    child.on('exit', () => reject(new Error(`simulator exited: ${out}`)));
  });
  const token = 'progression-demo-token';
  const api = (p: string, init: RequestInit = {}) =>
    fetch(`${url}${p}`, {
      ...init,
      headers: {
        Authorization: `Bearer ${token}`,
        'Content-Type': 'application/json',
        ...init.headers,
      },
    });
  await api('/api/v1/namespaces', {
    method: 'POST',
    body: JSON.stringify({ metadata: { name: 'bench' } }),
  });
  for (let i = 0; i < PROMOTIONS; i++) {
    await api('/apis/apps/v1/namespaces/bench/deployments', {
      method: 'POST',
      body: JSON.stringify({
        metadata: {
          name: `svc-${i}`,
          labels: { 'backstage.io/kubernetes-id': `svc-${i}` },
        },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: `svc-${i}` } },
          template: {
            metadata: { labels: { app: `svc-${i}` } },
            spec: { containers: [{ name: 'app', image: 'svc:1' }] },
          },
        },
      }),
    });
  }
  const config = readTestConfig(
    new ConfigReader({
      progression: {
        clusters: [
          { name: 'sim', url, serviceAccountToken: token, skipTLSVerify: true },
        ],
        pipelines: {
          p: { stages: [{ name: 'dev', cluster: 'sim', namespace: 'bench' }] },
        },
      },
    }),
  );
  const { knex, store } = await memoryStore();
  const engine = new PromotionEngine({
    store,
    workloads: new KubernetesWorkloads(),
    config,
    gates: [],
    logger: mockServices.rootLogger({ level: 'warn' }),
    resolveEntity: async entityRef => {
      const name = entityRef.split('/')[1];
      return { entityRef, name, namespace: 'default', kubernetesId: name };
    },
  });
  const ids: string[] = [];
  for (let i = 0; i < PROMOTIONS; i++) {
    const entityRef = `component:default/svc-${i}`;
    const { release } = await store.registerRelease({
      entityRef,
      version: '2',
      image: 'svc:2',
      createdBy: 'bench',
    });
    ids.push(
      (
        await store.createPromotion({
          entityRef,
          pipeline: 'p',
          stage: 'dev',
          releaseId: release.id,
          requestedBy: 'bench',
        })
      ).promotion.id,
    );
  }
  global.gc?.();
  const rssBefore = process.memoryUsage().rss;
  let peak = rssBefore;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 20);
  const callsBefore = (await (
    await api('/simulator/requests')
  ).json()) as Record<string, number>;
  const worker = new PromotionWorker({
    store,
    engine,
    logger: mockServices.rootLogger({ level: 'warn' }),
    maxConcurrent: PROMOTIONS,
  });
  const started = performance.now();
  await worker.runOnce();
  let states: string[] = [];
  for (;;) {
    states = await Promise.all(
      ids.map(async id => (await store.getPromotion(id))!.state),
    );
    if (states.every(s => isTerminal(s as any))) break;
    await new Promise(r => setTimeout(r, 50));
  }
  const seconds = (performance.now() - started) / 1000;
  clearInterval(sampler);
  await worker.stop();
  const callsAfter = (await (
    await api('/simulator/requests')
  ).json()) as Record<string, number>;
  const calls =
    Object.keys(callsAfter).reduce(
      (n, m) => n + callsAfter[m] - (callsBefore[m] ?? 0),
      0,
    ) - 1;
  const succeeded = states.filter(s => s === 'succeeded').length;
  await knex.destroy();
  child.kill('SIGTERM');
  fs.rmSync(simDir, { recursive: true, force: true });

  console.log(
    `\n${PROMOTIONS} concurrent promotions on one engine (simulator in a child process, pods ready after 50 ms)`,
  );
  console.log(
    `  all terminal in:              ${seconds.toFixed(
      1,
    )} s (${succeeded} succeeded)`,
  );
  console.log(
    `  peak RSS of this process:     ${(peak / 1024 / 1024).toFixed(0)} MB (${(
      rssBefore /
      1024 /
      1024
    ).toFixed(0)} MB before; target ≤ 400 MB)`,
  );
  console.log(
    `  cluster API calls/promotion:  ${(calls / PROMOTIONS).toFixed(
      1,
    )} (target ≤ 20)`,
  );
}

async function failFastBenchmark() {
  const sim = await KubeSimulator.start({
    podReadyDelayMs: FAIL_FAST_POD_START_MS,
    backOffMs: FAIL_FAST_BACK_OFF_MS,
  });
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
  const cluster = {
    name: 'sim',
    url: sim.url,
    serviceAccountToken: sim.token,
    skipTLSVerify: true,
  };
  // No readyTimeout, rolloutTimeout or gates: the defaults are measured.
  const config = readTestConfig(
    new ConfigReader({
      progression: {
        clusters: [cluster],
        pipelines: {
          p: {
            stages: [
              {
                name: 'development',
                cluster: 'sim',
                namespace: 'development',
              },
            ],
          },
        },
      },
    }),
  );
  const stage = config.pipelines.get('p')!.stages[0];
  const workloads = new KubernetesWorkloads();
  const location = {
    cluster: config.clusters.get('sim')!,
    namespace: 'development',
  };
  await workloads.waitForRollout(location, 'payments-api', {
    timeoutMs: 60_000,
  });
  const { knex, store } = await memoryStore();
  const entered = new Map<string, number>();
  const engine = new PromotionEngine({
    store,
    workloads,
    config,
    gates: [],
    logger: mockServices.rootLogger({ level: 'warn' }),
    resolveEntity: async entityRef => ({
      entityRef,
      name: 'payments-api',
      namespace: 'default',
      kubernetesId: 'payments-api',
    }),
    onTransition: change => entered.set(change.to, performance.now()),
  });
  const entityRef = 'component:default/payments-api';
  const rows: string[] = [];
  const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  for (const [i, tag] of ['unready', 'crashloop', 'badimage'].entries()) {
    entered.clear();
    const registered = performance.now();
    const { release } = await store.registerRelease({
      entityRef,
      version: `9.${i}.0-${tag}`,
      image: `registry.local/payments-api:9.${i}.0-${tag}`,
      createdBy: 'bench',
    });
    const { promotion } = await store.createPromotion({
      entityRef,
      pipeline: 'p',
      stage: 'development',
      releaseId: release.id,
      requestedBy: 'bench',
    });
    const state = await engine.run(promotion.id);
    const end = performance.now();
    const rollout = (await store.listSteps(promotion.id)).find(
      st => st.kind === 'deploy' && st.name === 'rollout',
    );
    const failedAt = entered.get('rolling-back') ?? end;
    const total = end - registered;
    rows.push(
      `  -${tag.padEnd(10)} ${state} after ${seconds(total)} (${
        total <= 60_000 ? 'within' : 'over'
      } the target): rollout failed at ${seconds(
        failedAt - registered,
      )}, rollback took ${seconds(end - failedAt)}`,
      `              ${rollout?.reason ?? 'no rollout step was recorded'}`,
    );
  }
  await knex.destroy();
  await workloads.close();
  await sim.stop();

  console.log(
    `\nFail fast: registration → rolled back (stage defaults: readyTimeout ${
      stage.readyTimeoutMs / 1000
    } s, rolloutTimeout ${stage.rolloutTimeoutMs / 60_000} min; pods start in ${
      FAIL_FAST_POD_START_MS / 1000
    } s, kubelet back-off ${
      FAIL_FAST_BACK_OFF_MS / 1000
    } s doubling; target ≤ 60 s each)`,
  );
  for (const row of rows) console.log(row);
}

const SECTIONS: [string, () => Promise<void>][] = [
  ['rollback', rollbackBenchmark],
  ['concurrency', concurrencyBenchmark],
  ['failfast', failFastBenchmark],
  ['cancel', cancelBenchmark],
  ['resume', resumeBenchmark],
  ['retry', retryBudgetBenchmark],
];

async function main() {
  const only = process.env.BENCH_SECTIONS?.split(',').map(s => s.trim());
  const unknown = only?.filter(name => !SECTIONS.some(([n]) => n === name));
  if (unknown?.length) {
    throw new Error(
      `unknown BENCH_SECTIONS ${unknown.join(', ')}; sections: ${SECTIONS.map(
        ([n]) => n,
      ).join(', ')}`,
    );
  }
  for (const [name, benchmark] of SECTIONS) {
    if (!only || only.includes(name)) await benchmark();
  }
}

main().then(
  () => process.exit(0),
  e => {
    console.error(e);
    process.exit(1);
  },
);
