import * as k8s from '@kubernetes/client-node';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { KubeSimulator } from '../KubeSimulator';
import { waitFor } from '../testUtils/waitFor';
import { installDemo } from './installDemo';

jest.setTimeout(60_000);

let sim: KubeSimulator;
let demo: Awaited<ReturnType<typeof installDemo>>;
let apps: k8s.AppsV1Api;
let urls: Record<string, string>;

beforeAll(async () => {
  sim = await KubeSimulator.start({ podReadyDelayMs: 20 });
  // Any free ports, so the test never collides with a running demo.
  demo = await installDemo(sim, {
    anyPorts: true,
    trafficIntervalMs: 50,
  });
  urls = Object.fromEntries(demo.servers.map(s => [s.namespace, s.url]));
  const kc = new k8s.KubeConfig();
  kc.loadFromString(sim.kubeconfig());
  apps = kc.makeApiClient(k8s.AppsV1Api);
});

afterAll(async () => {
  await demo.stop();
  await sim.stop();
});

const get = (url: string, init?: RequestInit) =>
  fetch(url, init).then(async r => ({
    status: r.status,
    body: await r.text(),
  }));

async function setImage(namespace: string, name: string, image: string) {
  await apps.patchNamespacedDeployment(
    {
      namespace,
      name,
      body: { spec: { template: { spec: { containers: [{ name, image }] } } } },
    },
    k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch),
  );
  await waitFor(
    async () => {
      const r = await get(`${urls[namespace]}/${name}/api/version`);
      return r.status === 200 && JSON.parse(r.body).image === image;
    },
    20_000,
    `${image} to serve`,
  );
}

it('creates labelled namespaces, isolation policies, flags and the example services', async () => {
  const core = new k8s.KubeConfig();
  core.loadFromString(sim.kubeconfig());
  const api = core.makeApiClient(k8s.CoreV1Api);
  const ns = await api.readNamespace({ name: 'production' });
  expect(ns.metadata?.labels).toMatchObject({ environment: 'prod' });
  const net = core.makeApiClient(k8s.NetworkingV1Api);
  const policies = await net.listNamespacedNetworkPolicy({
    namespace: 'staging',
  });
  expect(policies.items.map(p => p.metadata?.name).sort()).toEqual([
    'allow-same-environment',
    'default-deny-ingress',
  ]);
  const flags = await api.readNamespacedConfigMap({
    namespace: 'production',
    name: 'feature-flags',
  });
  expect(
    JSON.parse(flags.data!['flags.json']).flags['new-checkout'].defaultVariant,
  ).toBe('off');
  const deployments = await apps.listNamespacedDeployment({
    namespace: 'staging',
    labelSelector: 'backstage.io/kubernetes-id',
  });
  expect(deployments.items.map(d => d.metadata?.name).sort()).toEqual([
    'payments-api',
    'web-shop',
  ]);
});

it('answers every endpoint of a healthy workload', async () => {
  const base = `${urls.staging}/payments-api`;
  await waitFor(async () => (await get(`${base}/healthz`)).status === 200);
  expect(JSON.parse((await get(`${base}/api/version`)).body)).toMatchObject({
    version: '1.0.0',
    namespace: 'staging',
  });
  expect(JSON.parse((await get(`${base}/api/db-status`)).body)).toMatchObject({
    connected: true,
  });
  const action = await get(`${base}/api/test-action`, {
    method: 'POST',
    body: JSON.stringify({ amount: 5 }),
    headers: { 'Content-Type': 'application/json' },
  });
  expect(action.status).toBe(201);
  expect(JSON.parse(action.body)).toMatchObject({
    ok: true,
    received: { amount: 5 },
  });
  expect((await get(`${base}/nope`)).status).toBe(404);
  expect((await get(`${urls.staging}/unknown-service/healthz`)).status).toBe(
    503,
  );
});

it('serves Prometheus text that parses, with request counts and a 0.5 s bucket edge', async () => {
  await waitFor(async () =>
    (
      await get(`${urls.staging}/payments-api/metrics`)
    ).body.includes('status="200"'),
  );
  const text = (await get(`${urls.staging}/metrics`)).body;
  const families = parsePrometheusTextFormat(text);
  const requests = families.find((f: any) => f.name === 'http_requests_total');
  const durations = families.find(
    (f: any) => f.name === 'http_request_duration_seconds',
  );
  expect(requests.type).toBe('COUNTER');
  expect(
    requests.metrics.some(
      (m: any) =>
        m.labels.app === 'payments-api' &&
        m.labels.status === '200' &&
        Number(m.value) > 0,
    ),
  ).toBe(true);
  expect(durations.type).toBe('HISTOGRAM');
  expect(Object.keys(durations.metrics[0].buckets)).toContain('0.5');
});

it('produces the failures its image tags ask for', async () => {
  await setImage(
    'development',
    'payments-api',
    'registry.local/payments-api:1.1.0-unhealthy',
  );
  expect((await get(`${urls.development}/payments-api/healthz`)).status).toBe(
    503,
  );

  await setImage(
    'development',
    'web-shop',
    'registry.local/web-shop:2.4.0-errors',
  );
  const statuses = await Promise.all(
    Array.from({ length: 60 }, () =>
      get(`${urls.development}/web-shop/api/version`).then(r => r.status),
    ),
  );
  expect(statuses.filter(s => s === 500).length).toBeGreaterThan(0);
  expect(statuses.filter(s => s === 200).length).toBeGreaterThan(0);

  await setImage('staging', 'web-shop', 'registry.local/web-shop:2.4.0-slow');
  await get(`${urls.staging}/web-shop/api/version`);
  const text = (await get(`${urls.staging}/web-shop/metrics`)).body;
  expect(() => parsePrometheusTextFormat(text)).not.toThrow();
  // The parser drops the labels of histogram series, so read the samples.
  const sample = (name: string, extra = '') =>
    Number(
      text.match(
        new RegExp(
          `^${name}\\{[^}]*version="2\\.4\\.0-slow"${extra}[^}]*\\} (\\S+)$`,
          'm',
        ),
      )?.[1],
    );
  // Every slow request lands above the 0.5 s edge.
  expect(sample('http_request_duration_seconds_bucket', ',le="0\\.5"')).toBe(0);
  expect(sample('http_request_duration_seconds_count')).toBeGreaterThan(0);
});
