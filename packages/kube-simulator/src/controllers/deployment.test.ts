import * as k8s from '@kubernetes/client-node';
import { KubeSimulator } from '../KubeSimulator';
import { waitFor } from '../testUtils/waitFor';

// Real servers and processes: allow more than Jest's default 5 s per test.
jest.setTimeout(60_000);

/*
 * The Deployment, ReplicaSet and pod controllers through client-node, the
 * way the promotion engine will drive them: outcomes as upstream's
 * pkg/controller/deployment produces them.
 */
let sim: KubeSimulator;
let apps: k8s.AppsV1Api;
let core: k8s.CoreV1Api;
const ns = 'staging';
const REVISION = 'deployment.kubernetes.io/revision';
const smp = k8s.setHeaderOptions(
  'Content-Type',
  k8s.PatchStrategy.StrategicMergePatch,
);
const merge = k8s.setHeaderOptions(
  'Content-Type',
  k8s.PatchStrategy.MergePatch,
);

beforeAll(async () => {
  sim = await KubeSimulator.start({ podReadyDelayMs: 20 });
  const kc = new k8s.KubeConfig();
  kc.loadFromString(sim.kubeconfig());
  apps = kc.makeApiClient(k8s.AppsV1Api);
  core = kc.makeApiClient(k8s.CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: ns } } });
});
afterAll(() => sim.stop());

async function create(
  name: string,
  image: string,
  spec: Partial<k8s.V1DeploymentSpec> = {},
) {
  return apps.createNamespacedDeployment({
    namespace: ns,
    body: {
      metadata: {
        name,
        annotations: { 'kubernetes.io/change-cause': `deploy ${image}` },
      },
      spec: {
        replicas: 4,
        selector: { matchLabels: { app: name } },
        template: {
          metadata: { labels: { app: name } },
          spec: { containers: [{ name, image }] },
        },
        ...spec,
      },
    },
  });
}

/** kubectl rollout status's rule (polymorphichelpers/rollout_status.go). */
async function rolledOut(name: string) {
  return waitFor(
    async () => {
      const d = await apps.readNamespacedDeployment({ namespace: ns, name });
      const s = d.status ?? {};
      const done =
        (d.metadata?.generation ?? 0) <= (s.observedGeneration ?? 0) &&
        (s.updatedReplicas ?? 0) === d.spec?.replicas &&
        (s.replicas ?? 0) === (s.updatedReplicas ?? 0) &&
        (s.availableReplicas ?? 0) === (s.updatedReplicas ?? 0);
      return done && d;
    },
    15_000,
    `${name} to roll out`,
  );
}

async function setImage(name: string, image: string) {
  return apps.patchNamespacedDeployment(
    {
      namespace: ns,
      name,
      body: {
        metadata: {
          annotations: { 'kubernetes.io/change-cause': `deploy ${image}` },
        },
        spec: { template: { spec: { containers: [{ name, image }] } } },
      },
    },
    smp,
  );
}

async function replicaSets(name: string) {
  const list = await apps.listNamespacedReplicaSet({
    namespace: ns,
    labelSelector: `app=${name}`,
  });
  return list.items.sort(
    (a, b) =>
      Number(a.metadata!.annotations![REVISION]) -
      Number(b.metadata!.annotations![REVISION]),
  );
}

it('rolls out a new ReplicaSet per template, revisions counting up, never below minimum availability', async () => {
  await create('web', 'web:1.0.0');
  const d1 = await rolledOut('web');
  expect(d1.metadata?.annotations?.[REVISION]).toBe('1');
  expect(
    d1.status?.conditions?.find(c => c.type === 'Available'),
  ).toMatchObject({ status: 'True', reason: 'MinimumReplicasAvailable' });
  expect(
    d1.status?.conditions?.find(c => c.type === 'Progressing'),
  ).toMatchObject({ status: 'True', reason: 'NewReplicaSetAvailable' });

  // Watch availability while rolling: maxUnavailable 25% of 4 = 1.
  let minAvailable = Infinity;
  const sub = sim.store.subscribe(e => {
    if (
      e.resource === 'deployments' &&
      e.object.metadata.name === 'web' &&
      e.object.status?.observedGeneration === 2
    ) {
      minAvailable = Math.min(
        minAvailable,
        e.object.status?.availableReplicas ?? 0,
      );
    }
  });
  await setImage('web', 'web:1.1.0');
  const d2 = await rolledOut('web');
  sub();
  expect(minAvailable).toBeGreaterThanOrEqual(3);
  expect(d2.metadata?.annotations?.[REVISION]).toBe('2');

  const rs = await replicaSets('web');
  expect(
    rs.map(r => [r.metadata?.annotations?.[REVISION], r.spec?.replicas]),
  ).toEqual([
    ['1', 0],
    ['2', 4],
  ]);
  expect(rs[1].metadata?.labels?.['pod-template-hash']).toBeTruthy();
  expect(rs[1].metadata?.annotations?.['kubernetes.io/change-cause']).toBe(
    'deploy web:1.1.0',
  );
  const pods = await core.listNamespacedPod({
    namespace: ns,
    labelSelector: 'app=web',
  });
  expect(pods.items.map(p => p.spec?.containers[0].image)).toEqual(
    Array(4).fill('web:1.1.0'),
  );
});

it('rolls back by reusing the old ReplicaSet, which takes the next revision (kubectl rollout undo)', async () => {
  const [first] = await replicaSets('web');
  // What kubectl rollout undo sends: the old template minus pod-template-hash.
  const template = structuredClone(first.spec!.template!);
  delete template.metadata!.labels!['pod-template-hash'];
  await apps.patchNamespacedDeployment({
    namespace: ns,
    name: 'web',
    body: [
      { op: 'replace', path: '/spec/template', value: template },
      {
        op: 'replace',
        path: '/metadata/annotations',
        value: { ...first.metadata!.annotations, [REVISION]: undefined },
      },
    ],
  });
  const d = await rolledOut('web');
  expect(d.metadata?.annotations?.[REVISION]).toBe('3');
  const rs = await replicaSets('web');
  expect(rs.map(r => r.metadata?.name)).toEqual([
    rs[0].metadata?.name,
    first.metadata?.name,
  ]);
  expect(rs[1].metadata?.annotations).toMatchObject({
    [REVISION]: '3',
    'deployment.kubernetes.io/revision-history': '1',
  });
  expect(rs[1].spec?.replicas).toBe(4);
  expect(d.spec?.template.spec?.containers[0].image).toBe('web:1.0.0');
});

it('keeps only revisionHistoryLimit old ReplicaSets', async () => {
  await create('api', 'api:1', { replicas: 1, revisionHistoryLimit: 2 });
  await rolledOut('api');
  for (const v of ['2', '3', '4', '5']) {
    await setImage('api', `api:${v}`);
    await rolledOut('api');
  }
  const rs = await waitFor(async () => {
    const r = await replicaSets('api');
    return r.length === 3 && r;
  });
  expect(rs.map(r => r.metadata?.annotations?.[REVISION])).toEqual([
    '3',
    '4',
    '5',
  ]);
});

it('reports ProgressDeadlineExceeded when pods never become ready', async () => {
  await create('stuck', 'stuck:1', { replicas: 2, progressDeadlineSeconds: 1 });
  await rolledOut('stuck');
  await setImage('stuck', 'stuck:2-unready');
  const d = await waitFor(
    async () => {
      const x = await apps.readNamespacedDeployment({
        namespace: ns,
        name: 'stuck',
      });
      return (
        x.status?.conditions?.find(c => c.type === 'Progressing')?.reason ===
          'ProgressDeadlineExceeded' && x
      );
    },
    15_000,
    'the progress deadline',
  );
  expect(
    d.status?.conditions?.find(c => c.type === 'Progressing'),
  ).toMatchObject({
    status: 'False',
    message: expect.stringMatching(
      /^ReplicaSet "stuck-[a-z0-9]+" has timed out progressing\.$/,
    ),
  });
  // The old pods stay: maxUnavailable keeps the service up.
  expect(d.status?.availableReplicas).toBeGreaterThanOrEqual(1);
});

it('does not roll out while paused, and scales through /scale', async () => {
  await create('paused', 'p:1', { replicas: 1 });
  await rolledOut('paused');
  await apps.patchNamespacedDeployment(
    { namespace: ns, name: 'paused', body: { spec: { paused: true } } },
    merge,
  );
  await setImage('paused', 'p:2');
  await new Promise(r => setTimeout(r, 200));
  expect((await replicaSets('paused')).length).toBe(1);
  const paused = await apps.readNamespacedDeployment({
    namespace: ns,
    name: 'paused',
  });
  expect(
    paused.status?.conditions?.find(c => c.type === 'Progressing')?.reason,
  ).toBe('DeploymentPaused');

  await apps.patchNamespacedDeployment(
    { namespace: ns, name: 'paused', body: { spec: { paused: false } } },
    merge,
  );
  await rolledOut('paused');
  expect((await replicaSets('paused')).length).toBe(2);

  const scale = await apps.replaceNamespacedDeploymentScale({
    namespace: ns,
    name: 'paused',
    body: { metadata: { name: 'paused' }, spec: { replicas: 3 } },
  });
  expect(scale.spec?.replicas).toBe(3);
  const scaled = await rolledOut('paused');
  expect(scaled.status?.readyReplicas).toBe(3);
});

it('replaces all pods at once with the Recreate strategy', async () => {
  await create('batchy', 'b:1', {
    replicas: 2,
    strategy: { type: 'Recreate' },
  });
  await rolledOut('batchy');
  let mixed = false;
  const sub = sim.store.subscribe(e => {
    if (e.resource !== 'pods' || e.object.metadata.labels?.app !== 'batchy')
      return;
    const images = new Set(
      sim.store
        .list('pods', ns, p => p.metadata.labels?.app === 'batchy')
        .map(p => p.spec.containers[0].image),
    );
    if (images.size > 1) mixed = true;
  });
  await setImage('batchy', 'b:2');
  const d = await rolledOut('batchy');
  sub();
  expect(mixed).toBe(false);
  expect(d.metadata?.annotations?.[REVISION]).toBe('2');
});

it('deletes owned ReplicaSets and pods with their Deployment', async () => {
  await apps.deleteNamespacedDeployment({ namespace: ns, name: 'paused' });
  await waitFor(
    async () =>
      (
        await core.listNamespacedPod({
          namespace: ns,
          labelSelector: 'app=paused',
        })
      ).items.length === 0,
  );
  expect((await replicaSets('paused')).length).toBe(0);
});

it('runs Jobs to Complete or Failed (after backoffLimit retries) with readable logs', async () => {
  const batch = new k8s.KubeConfig();
  batch.loadFromString(sim.kubeconfig());
  const jobs = batch.makeApiClient(k8s.BatchV1Api);
  const job = (name: string, image: string) =>
    jobs.createNamespacedJob({
      namespace: ns,
      body: {
        metadata: { name },
        spec: {
          backoffLimit: 1,
          template: {
            spec: {
              restartPolicy: 'Never',
              containers: [
                { name: 'migrate', image, command: ['migrate', 'up'] },
              ],
            },
          },
        },
      },
    });
  await job('ok', 'api:2');
  await job('bad', 'api:2-failing-migration');
  const finished = async (name: string) =>
    waitFor(
      async () => {
        const j = await jobs.readNamespacedJob({ namespace: ns, name });
        return (
          j.status?.conditions?.find(
            c =>
              (c.type === 'Complete' || c.type === 'Failed') &&
              c.status === 'True',
          ) && j
        );
      },
      15_000,
      `job ${name}`,
    );
  const ok = await finished('ok');
  const bad = await finished('bad');
  expect(ok.status).toMatchObject({ succeeded: 1 });
  expect(ok.status?.conditions?.map(c => c.type)).toContain('Complete');
  expect(bad.status).toMatchObject({ failed: 2 });
  expect(bad.status?.conditions?.find(c => c.type === 'Failed')).toMatchObject({
    reason: 'BackoffLimitExceeded',
  });

  const pods = await core.listNamespacedPod({
    namespace: ns,
    labelSelector: 'job-name=bad',
  });
  expect(pods.items).toHaveLength(2);
  const log = await core.readNamespacedPodLog({
    namespace: ns,
    name: pods.items[0].metadata!.name!,
  });
  expect(log).toContain('ERROR: migration failed');
});
