/*
 * Benchmark: does the simulator keep answering under 200 concurrent watches
 * and 1,000 Deployments? Prints request latency under load against a
 * baseline measured on the idle server in the same run. No assertions: run
 * it with `yarn workspace @internal/kube-simulator bench`.
 */
import http from 'node:http';
import { KubeSimulator } from '../src';

const DEPLOYMENTS = Number(process.env.BENCH_DEPLOYMENTS ?? 1000);
const WATCHES = Number(process.env.BENCH_WATCHES ?? 200);
const NAMESPACES = 10;
const SAMPLES = 300;

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

function request(
  sim: KubeSimulator,
  method: string,
  path: string,
  body?: unknown,
  contentType = 'application/json',
) {
  return new Promise<{ status: number; ms: number }>((resolve, reject) => {
    const started = process.hrtime.bigint();
    const req = http.request(
      `${sim.url}${path}`,
      {
        method,
        agent,
        headers: {
          Authorization: `Bearer ${sim.token}`,
          'Content-Type': contentType,
        },
      },
      res => {
        res.resume();
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            ms: Number(process.hrtime.bigint() - started) / 1e6,
          }),
        );
      },
    );
    req.on('error', reject);
    if (body !== undefined) req.write(JSON.stringify(body));
    req.end();
  });
}

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[
    Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)
  ];
};

async function measure(sim: KubeSimulator, label: string) {
  const latencies: number[] = [];
  let errors = 0;
  for (let i = 0; i < SAMPLES; i++) {
    const ns = `bench-${i % NAMESPACES}`;
    const paths = [
      `/apis/apps/v1/namespaces/${ns}/deployments/app-${i % DEPLOYMENTS}`,
      `/api/v1/namespaces/${ns}/pods?labelSelector=app%3Dapp-${
        i % DEPLOYMENTS
      }`,
      `/apis/apps/v1/namespaces/${ns}/deployments?labelSelector=bench%3Dyes`,
    ];
    const r = await request(sim, 'GET', paths[i % paths.length]);
    if (r.status >= 400 && r.status !== 404) errors++;
    latencies.push(r.ms);
  }
  return {
    label,
    p50: percentile(latencies, 50),
    p95: percentile(latencies, 95),
    p99: percentile(latencies, 99),
    max: Math.max(...latencies),
    errors,
  };
}

async function main() {
  const sim = await KubeSimulator.start({
    podReadyDelayMs: 20,
    watchHistory: 50_000,
  });
  for (let n = 0; n < NAMESPACES; n++) {
    await request(sim, 'POST', '/api/v1/namespaces', {
      metadata: { name: `bench-${n}` },
    });
  }
  const baseline = await measure(sim, 'idle server');

  let started = Date.now();
  for (let i = 0; i < DEPLOYMENTS; i++) {
    const name = `app-${i}`;
    const r = await request(
      sim,
      'POST',
      `/apis/apps/v1/namespaces/bench-${i % NAMESPACES}/deployments`,
      {
        metadata: { name, labels: { bench: 'yes', app: name } },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: name } },
          template: {
            metadata: { labels: { app: name } },
            spec: { containers: [{ name, image: `demo:1.0.${i}` }] },
          },
        },
      },
    );
    if (r.status !== 201) throw new Error(`create ${name}: ${r.status}`);
  }
  const allReady = async () => {
    for (;;) {
      const ready = sim.store.list(
        'deployments',
        undefined,
        d => (d.status?.availableReplicas ?? 0) === 1,
      ).length;
      if (ready === DEPLOYMENTS) return;
      await new Promise(r => setTimeout(r, 100));
    }
  };
  await allReady();
  const createSeconds = (Date.now() - started) / 1000;

  // 200 watches: deployments and pods, across namespaces and cluster-wide.
  const delivered = { events: 0 };
  const countEvents = (chunk: Buffer) => {
    delivered.events += chunk
      .toString('utf8')
      .split('\n')
      .filter(Boolean).length;
  };
  const watches: http.ClientRequest[] = [];
  for (let w = 0; w < WATCHES; w++) {
    const ns = `bench-${w % NAMESPACES}`;
    const path = [
      `/apis/apps/v1/namespaces/${ns}/deployments?watch=true&resourceVersion=${sim.store.currentResourceVersion}`,
      `/api/v1/namespaces/${ns}/pods?watch=true&resourceVersion=${sim.store.currentResourceVersion}`,
      `/apis/apps/v1/deployments?watch=true&resourceVersion=${sim.store.currentResourceVersion}`,
    ][w % 3];
    const req = http.request(
      `${sim.url}${path}`,
      { headers: { Authorization: `Bearer ${sim.token}` } },
      res => res.on('data', countEvents),
    );
    req.on('error', () => undefined);
    req.end();
    watches.push(req);
  }
  while (sim.openWatches < WATCHES) await new Promise(r => setTimeout(r, 20));

  // Churn while measuring: a rollout of every tenth Deployment.
  started = Date.now();
  const churn = (async () => {
    for (let i = 0; i < DEPLOYMENTS; i += 10) {
      await request(
        sim,
        'PATCH',
        `/apis/apps/v1/namespaces/bench-${i % NAMESPACES}/deployments/app-${i}`,
        {
          spec: {
            template: {
              spec: {
                containers: [{ name: `app-${i}`, image: `demo:2.0.${i}` }],
              },
            },
          },
        },
        'application/strategic-merge-patch+json',
      );
    }
  })();
  const loaded = await measure(
    sim,
    `${WATCHES} watches, ${DEPLOYMENTS} Deployments, rolling out`,
  );
  await churn;
  await allReady();
  const rolloutSeconds = (Date.now() - started) / 1000;

  for (const w of watches) w.destroy();
  await sim.stop();
  agent.destroy();

  const fmt = (n: number) => n.toFixed(2).padStart(8);
  console.log(
    `\nkube-simulator benchmark (${SAMPLES} GET requests per row, sequential)`,
  );
  console.log(
    `${'scenario'.padEnd(48)}    p50 ms    p95 ms    p99 ms    max ms  errors`,
  );
  for (const r of [baseline, loaded]) {
    console.log(
      `${r.label.padEnd(48)}${fmt(r.p50)}  ${fmt(r.p95)}  ${fmt(r.p99)}  ${fmt(
        r.max,
      )}  ${String(r.errors).padStart(6)}`,
    );
  }
  console.log(
    `ratio under load / idle: p50 ${(loaded.p50 / baseline.p50).toFixed(
      2,
    )}x, p95 ${(loaded.p95 / baseline.p95).toFixed(2)}x, p99 ${(
      loaded.p99 / baseline.p99
    ).toFixed(2)}x`,
  );
  console.log(
    `created and rolled out ${DEPLOYMENTS} Deployments in ${createSeconds.toFixed(
      1,
    )} s; ${
      DEPLOYMENTS / 10
    } rollouts under ${WATCHES} watches in ${rolloutSeconds.toFixed(
      1,
    )} s; watch events delivered: ${delivered.events}`,
  );
}

main().catch(e => {
  console.error(e);
  process.exit(1);
});
