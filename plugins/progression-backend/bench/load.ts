/*
 * Benchmark of the load gate beside wrk, run with
 * `yarn workspace @progression-io/backstage-plugin-progression-backend bench:load`.
 * It prints figures; nothing here asserts on them.
 *
 * A child process runs the cluster simulator's demo (any free ports):
 * staging's payments-api answers at once, production's runs a `slow` image
 * (600 ms per answer). The load generators run in this process, one after
 * the other, so each has a core of its own beside the server's:
 *
 *   1. fast endpoint, unthrottled: wrk, then our LoadGate, same connections
 *      and duration: the throughput ratio (target ≥ 0.6× wrk's).
 *   2. fast endpoint, our LoadGate at a fixed rate (BENCH_RATE, 200 req/s):
 *      its p95 beside the unthrottled figures (wrk has no rate option).
 *   3. slow endpoint, unthrottled: both are held to the rate the server
 *      allows (connections / 0.6 s), so this is the p95 comparison at the
 *      same rate (target: ours within 5% of wrk's).
 *
 *   4. memory: BENCH_SAMPLES (1,000,000) latencies kept as the gate kept
 *      them before (an array of every sample, sorted at the end) and as it
 *      keeps them now (LatencyHistogram), one after the other in this
 *      process: peak and retained heap of each, their ratio, and how far
 *      the histogram's percentiles are from the exact ones. No server is
 *      needed: `BENCH_MEMORY_ONLY=1` runs this part alone.
 *
 * wrk (Debian's, at /usr/bin/wrk) prints its figures from a Lua `done`
 * function; without it only our figures are printed.
 */
import { ConfigReader } from '@backstage/config';
import { KubeSimulator, installDemo } from '@internal/kube-simulator';
import { fork } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { readTestConfig } from '../src/__testUtils__/readTestConfig';
import {
  LatencyHistogram,
  LoadGate,
  LoadGateEvidence,
  percentile,
} from '../src/gates/LoadGate';
import { WRK, WrkFigures, hasWrk, runWrk } from './wrk';

const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 10);
const DURATION_S = Number(process.env.BENCH_DURATION ?? 10);
const RATE = Number(process.env.BENCH_RATE ?? 200);
const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 1_000_000);
const SLOW_IMAGE = 'registry.local/payments-api:2.0.0-slow';

type Figures = WrkFigures;

/* ---------- the server side: the simulator demo in a child process ---------- */

async function serve() {
  const sim = await KubeSimulator.start({ podReadyDelayMs: 20 });
  const demo = await installDemo(sim, {
    anyPorts: true,
    stages: [
      { namespace: 'staging', environment: 'staging', port: 0 },
      { namespace: 'production', environment: 'prod', port: 0 },
    ],
    trafficIntervalMs: 60_000,
  });
  const deployment = structuredClone(
    sim.store.get('deployments', 'production', 'payments-api')!,
  );
  deployment.spec.template.spec.containers[0].image = SLOW_IMAGE;
  sim.apply(deployment);
  for (let i = 0; ; i++) {
    const ready = sim.store.list(
      'pods',
      'production',
      p =>
        p.metadata.labels?.app === 'payments-api' &&
        (p.status?.conditions ?? []).some(
          (c: any) => c.type === 'Ready' && c.status === 'True',
        ),
    );
    if (
      ready.length &&
      ready.every(p => p.spec.containers[0].image === SLOW_IMAGE)
    )
      break;
    if (i > 400) throw new Error('the slow release did not roll out');
    await new Promise(r => setTimeout(r, 25));
  }
  const url = (ns: string) => demo.servers.find(s => s.namespace === ns)!.url;
  process.send!({ staging: url('staging'), production: url('production') });
  const stop = async () => {
    await demo.stop();
    await sim.stop();
    process.exit(0);
  };
  process.on('message', m => m === 'stop' && stop());
  process.on('disconnect', stop);
}

/* ---------- the client side ---------- */

async function startServer() {
  const child = fork(path.resolve(__dirname, 'run.js'), ['load.ts'], {
    env: { ...process.env, LOAD_BENCH_ROLE: 'server' },
    stdio: 'inherit',
  });
  const urls = await new Promise<{ staging: string; production: string }>(
    (resolve, reject) => {
      // (the node transform also sends its own 'watch' messages)
      child.on('message', m => {
        if ((m as any)?.staging) resolve(m as any);
      });
      child.once('exit', code =>
        reject(new Error(`the simulator process exited (${code})`)),
      );
    },
  );
  return {
    ...urls,
    async stop() {
      const exited = new Promise(r => child.once('exit', r));
      child.send('stop');
      await Promise.race([exited, new Promise(r => setTimeout(r, 5000))]);
      if (child.exitCode === null) child.kill();
    },
  };
}

async function runGate(
  stageUrl: string,
  options: { rate?: number; durationS?: number } = {},
): Promise<Figures & { status: string; reason: string }> {
  const stage = readTestConfig(
    new ConfigReader({
      progression: {
        clusters: [{ name: 'local', url: 'http://127.0.0.1:1' }],
        pipelines: {
          bench: {
            stages: [
              {
                name: 'bench',
                cluster: 'local',
                namespace: 'bench',
                url: stageUrl,
                gates: {
                  load: {
                    path: '/healthz',
                    connections: CONNECTIONS,
                    duration: { seconds: options.durationS ?? DURATION_S },
                    ...(options.rate && { rate: options.rate }),
                    thresholds: { errorRate: 1 },
                  },
                },
              },
            ],
          },
        },
      },
    }),
  ).pipelines.get('bench')!.stages[0];
  const result = await new LoadGate().run({ stage, stageUrl }, 'verification');
  const m = (result.evidence as LoadGateEvidence).measured;
  if (!m) throw new Error(`the load gate measured nothing: ${result.reason}`);
  return {
    throughput: m.throughput,
    p50: m.latencyMs.p50,
    p95: m.latencyMs.p95,
    p99: m.latencyMs.p99,
    requests: m.requests,
    bad:
      m.errors +
      Object.entries(m.statusCodes)
        .filter(([code]) => Number(code) < 200 || Number(code) >= 400)
        .reduce((sum, [, n]) => sum + n, 0),
    status: result.status,
    reason: result.reason,
  };
}

const fmt = (n: number, digits = 1) => n.toFixed(digits);

function row(label: string, f: Figures) {
  console.log(
    `  ${label.padEnd(34)} ${fmt(f.throughput, 0).padStart(7)} req/s  p50 ${fmt(
      f.p50,
      2,
    ).padStart(7)} ms  p95 ${fmt(f.p95, 2).padStart(7)} ms  p99 ${fmt(
      f.p99,
      2,
    ).padStart(7)} ms  (${f.requests} requests, ${f.bad} bad)`,
  );
}

async function waitFor(url: string) {
  for (let i = 0; ; i++) {
    const r = await fetch(url).catch(() => undefined);
    if (r?.status === 200) return;
    if (i > 200) throw new Error(`${url} never answered 200`);
    await new Promise(res => setTimeout(res, 50));
  }
}

/* ---------- memory: every sample against the histogram ---------- */

// Heap figures mean little without a collection before each reading.
v8.setFlagsFromString('--expose-gc');
const gc: () => void = vm.runInNewContext('gc');

/** The JS heap and the ArrayBuffers outside it (a Float64Array's bytes). */
const usedBytes = () => {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};

interface LatencyStore {
  record(ms: number): void;
  /** p50, p95, p99; calls `sample` where its memory peaks. */
  summarize(sample: () => void): number[];
}

/** Before: every sample in an array, sorted once at the end. */
function sampleArray(): LatencyStore {
  const latencies: number[] = [];
  return {
    record: ms => latencies.push(ms),
    summarize: sample => {
      const sorted = Float64Array.from(latencies).sort();
      sample();
      return [50, 95, 99].map(p => percentile(sorted, p));
    },
  };
}

/** Now: the gate's histogram. */
function histogram(): LatencyStore & { histogram: LatencyHistogram } {
  const h = new LatencyHistogram();
  return {
    histogram: h,
    record: ms => h.record(ms),
    summarize: () => [50, 95, 99].map(p => h.valueAt(p)),
  };
}

/**
 * Records SAMPLES latencies (the same for every store: 0.1 ms to 2 s,
 * evenly over the magnitudes, from a seeded generator) and measures the
 * live heap above what was in use before, every 50,000 records.
 */
function measureMemory<T extends LatencyStore>(create: () => T) {
  let seed = 7;
  const next = () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  gc();
  const base = usedBytes();
  let peak = 0;
  // Collected first: what is live, not garbage awaiting a collection.
  const sample = () => {
    gc();
    peak = Math.max(peak, usedBytes() - base);
  };
  const store = create();
  for (let i = 0; i < SAMPLES; i++) {
    store.record(0.1 * 20_000 ** next());
    if (i % 50_000 === 0) sample();
  }
  sample();
  const percentiles = store.summarize(sample);
  gc();
  const retained = usedBytes() - base;
  // Returned, so that it is still alive at the last reading.
  return { store, peak, retained, percentiles };
}

function memory() {
  const mb = (bytes: number) =>
    Math.abs(bytes) < 1024 * 1024
      ? `${(bytes / 1024).toFixed(1)} KB`
      : `${(bytes / 1024 / 1024).toFixed(2)} MB`;
  const ms3 = (xs: number[]) => xs.map(x => fmt(x, 3)).join(' / ');
  console.log(
    `\n4. memory of ${SAMPLES.toLocaleString(
      'en-US',
    )} latencies: every sample (before) against the histogram (now)`,
  );
  const before = measureMemory(sampleArray);
  const now = measureMemory(histogram);
  const counters = now.store.histogram.buckets;
  console.log(
    `  ${'sample array (before)'.padEnd(34)} peak ${mb(
      before.peak,
    )}, retained ${mb(before.retained)}; p50/p95/p99 ${ms3(
      before.percentiles,
    )} ms`,
  );
  console.log(
    `  ${'LatencyHistogram (now)'.padEnd(34)} peak ${mb(
      now.peak,
    )}, retained ${mb(now.retained)}; p50/p95/p99 ${ms3(
      now.percentiles,
    )} ms (${counters.toLocaleString('en-US')} counters, ${mb(counters * 8)})`,
  );
  const apart = Math.max(
    ...now.percentiles.map((v, i) => v / before.percentiles[i] - 1),
  );
  // The histogram's growth is within the heap's noise (a few hundred KB):
  // its counters are the floor of what it takes.
  const footprint = Math.max(now.peak, counters * 8);
  console.log(
    `  peak before / now: ${fmt(before.peak / footprint, 0)}× (against ${mb(
      footprint,
    )}); percentiles at most ${fmt(
      apart * 100,
      2,
    )}% above the exact ones (target ≤ 1%)`,
  );
}

async function main() {
  memory();
  if (process.env.BENCH_MEMORY_ONLY) return;
  const server = await startServer();
  const fastStage = `${server.staging}/payments-api`;
  const slowStage = `${server.production}/payments-api`;
  const fastUrl = `${fastStage}/healthz`;
  const slowUrl = `${slowStage}/healthz`;
  await waitFor(fastUrl);
  await waitFor(slowUrl);

  const withWrk = hasWrk();
  const wrk = (url: string) =>
    runWrk(url, { connections: CONNECTIONS, durationS: DURATION_S });

  console.log(
    `\nLoad gate beside wrk (${CONNECTIONS} connections, ${DURATION_S} s each; wrk -t1; server: the simulator demo in its own process; ${
      os.cpus().length
    } cores)`,
  );
  console.log(`  fast endpoint: ${fastUrl}`);
  console.log(`  slow endpoint: ${slowUrl} (image ${SLOW_IMAGE})`);
  if (!withWrk) console.log(`  ${WRK} is missing: only our figures follow`);

  // Warm the server's JIT so the first measured run is not the cold one.
  await runGate(fastStage, { durationS: 2 });

  console.log('\n1. fast endpoint, unthrottled (throughput)');
  const wrkFast = withWrk ? await wrk(fastUrl) : undefined;
  if (wrkFast) row('wrk', wrkFast);
  const oursFast = await runGate(fastStage);
  row('LoadGate (autocannon)', oursFast);
  if (wrkFast) {
    console.log(
      `  throughput ours / wrk: ${fmt(
        oursFast.throughput / wrkFast.throughput,
        2,
      )} (target ≥ 0.60)`,
    );
    console.log(
      `  p95 ours / wrk:        ${fmt(
        oursFast.p95 / wrkFast.p95,
        2,
      )} (not at the same rate: each tool runs as fast as it can)`,
    );
  }

  console.log(
    `\n2. fast endpoint, LoadGate at rate ${RATE} req/s (wrk cannot throttle)`,
  );
  const oursRate = await runGate(fastStage, { rate: RATE });
  row(`LoadGate rate ${RATE}`, oursRate);

  console.log(
    `\n3. slow endpoint, unthrottled: both held to the server's rate (${CONNECTIONS} connections / ~0.6 s)`,
  );
  const wrkSlow = withWrk ? await wrk(slowUrl) : undefined;
  if (wrkSlow) row('wrk', wrkSlow);
  const oursSlow = await runGate(slowStage);
  row('LoadGate (autocannon)', oursSlow);
  if (wrkSlow) {
    console.log(
      `  rate ours / wrk:       ${fmt(
        oursSlow.throughput / wrkSlow.throughput,
        3,
      )} (the same rate when close to 1)`,
    );
    console.log(
      `  p95 ours / wrk:        ${fmt(oursSlow.p95 / wrkSlow.p95, 3)} (${fmt(
        Math.abs(oursSlow.p95 / wrkSlow.p95 - 1) * 100,
        1,
      )}% apart; target within 5%)`,
    );
  }
  console.log(`\n  our gate's reason on the slow run: ${oursSlow.reason}`);

  await server.stop();
}

if (process.env.LOAD_BENCH_ROLE === 'server') {
  serve().catch(e => {
    console.error(e);
    process.exit(1);
  });
} else {
  main().then(
    () => process.exit(0),
    e => {
      console.error(e);
      process.exit(1);
    },
  );
}
