import * as k8s from '@kubernetes/client-node';
import { KubeSimulator } from '../KubeSimulator';
import { waitFor } from '../testUtils/waitFor';

// Real servers and processes: allow more than Jest's default 5 s per test.
jest.setTimeout(60_000);

/*
 * The simulated kubelet through client-node: pods that cannot start or
 * stay up report what a real kubelet reports (waiting reasons and their
 * messages, last termination states, restart counts, readiness conditions).
 */
let sim: KubeSimulator;
let apps: k8s.AppsV1Api;
let core: k8s.CoreV1Api;
const ns = 'kubelet';

beforeAll(async () => {
  sim = await KubeSimulator.start({ podReadyDelayMs: 20, backOffMs: 100 });
  const kc = new k8s.KubeConfig();
  kc.loadFromString(sim.kubeconfig());
  apps = kc.makeApiClient(k8s.AppsV1Api);
  core = kc.makeApiClient(k8s.CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: ns } } });
});
afterAll(() => sim.stop());

async function deploy(name: string, container: k8s.V1Container) {
  await apps.createNamespacedDeployment({
    namespace: ns,
    body: {
      metadata: { name },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: name } },
        template: {
          metadata: { labels: { app: name } },
          spec: { containers: [container] },
        },
      },
    },
  });
}

/** The Deployment's one pod, once it exists and `check` holds for it. */
function podOf(name: string, check: (pod: k8s.V1Pod) => boolean) {
  return waitFor(
    async () =>
      (
        await core.listNamespacedPod({
          namespace: ns,
          labelSelector: `app=${name}`,
        })
      ).items.find(check),
    20_000,
    `a pod of ${name}`,
  );
}

const condition = (pod: k8s.V1Pod, type: string) =>
  pod.status?.conditions?.find(c => c.type === type);

it('restarts a crash-looping container with back-off and reports CrashLoopBackOff', async () => {
  await deploy('crasher', { name: 'app', image: 'crasher:1.0.0-crashloop' });
  const pod = await podOf(
    'crasher',
    p =>
      (p.status?.containerStatuses?.[0].restartCount ?? 0) >= 2 &&
      p.status?.containerStatuses?.[0].state?.waiting?.reason ===
        'CrashLoopBackOff',
  );
  const status = pod.status!.containerStatuses![0];
  // The real node's delays, doubling from 10 s: 20 s at the second back-off.
  expect(status.state!.waiting!.message).toMatch(
    new RegExp(
      `^back-off (20s|40s|1m20s) restarting failed container=app pod=${
        pod.metadata!.name
      }_${ns}\\(${pod.metadata!.uid}\\)$`,
    ),
  );
  expect(status.lastState?.terminated).toMatchObject({
    exitCode: 1,
    reason: 'Error',
  });
  expect(status.ready).toBe(false);
  // getPhase: a container that restarts keeps its pod Running.
  expect(pod.status!.phase).toBe('Running');
  expect(condition(pod, 'Ready')).toMatchObject({
    status: 'False',
    reason: 'ContainersNotReady',
    message: 'containers with unready status: [app]',
  });
  const log = await core.readNamespacedPodLog({
    namespace: ns,
    name: pod.metadata!.name!,
    container: 'app',
  });
  expect(log).toContain('exiting with status 1');
  expect(
    log.match(/starting crasher:1\.0\.0-crashloop/g)!.length,
  ).toBeGreaterThanOrEqual(3);
  const deployment = await apps.readNamespacedDeployment({
    namespace: ns,
    name: 'crasher',
  });
  expect(deployment.status?.readyReplicas ?? 0).toBe(0);
});

it('reports ErrImagePull, then ImagePullBackOff, for an image that cannot be pulled', async () => {
  await deploy('puller', { name: 'app', image: 'registry.local/x:2-badimage' });
  const failed = await podOf(
    'puller',
    p =>
      p.status?.containerStatuses?.[0].state?.waiting?.reason ===
      'ErrImagePull',
  );
  expect(failed.status!.containerStatuses![0].state!.waiting!.message).toBe(
    'rpc error: code = NotFound desc = failed to pull and unpack image "registry.local/x:2-badimage": failed to resolve reference "registry.local/x:2-badimage": registry.local/x:2-badimage: not found',
  );
  const backingOff = await podOf(
    'puller',
    p =>
      p.status?.containerStatuses?.[0].state?.waiting?.reason ===
      'ImagePullBackOff',
  );
  const status = backingOff.status!.containerStatuses![0];
  expect(status.state!.waiting!.message).toBe(
    'Back-off pulling image "registry.local/x:2-badimage"',
  );
  expect(status).toMatchObject({ ready: false, restartCount: 0 });
  expect(status.lastState).toBeUndefined();
  expect(backingOff.status!.phase).toBe('Pending');
  expect(backingOff.status!.startTime).toBeDefined();
});

it('runs an unready container without ever reporting it ready', async () => {
  await deploy('sleepy', { name: 'app', image: 'sleepy:3-unready' });
  const pod = await podOf('sleepy', p => p.status?.phase === 'Running');
  const status = pod.status!.containerStatuses![0];
  expect(status).toMatchObject({ ready: false, started: true });
  expect(status.state?.running?.startedAt).toBeDefined();
  for (const type of ['Ready', 'ContainersReady'])
    expect(condition(pod, type)).toMatchObject({
      status: 'False',
      reason: 'ContainersNotReady',
      message: 'containers with unready status: [app]',
    });
  const log = await core.readNamespacedPodLog({
    namespace: ns,
    name: pod.metadata!.name!,
  });
  expect(log).toContain('Readiness probe failed');
});

it('waits with CreateContainerConfigError while a ConfigMap or Secret it needs is missing', async () => {
  await deploy('configured', {
    name: 'app',
    image: 'configured:1.0.0',
    env: [
      {
        name: 'MODE',
        valueFrom: { configMapKeyRef: { name: 'app-settings', key: 'mode' } },
      },
      {
        name: 'OPTIONAL',
        valueFrom: {
          secretKeyRef: { name: 'nowhere', key: 'x', optional: true },
        },
      },
    ],
    envFrom: [{ secretRef: { name: 'app-credentials' } }],
  });
  const waiting = (message: string) =>
    podOf(
      'configured',
      p =>
        p.status?.containerStatuses?.[0].state?.waiting?.reason ===
          'CreateContainerConfigError' &&
        p.status.containerStatuses[0].state.waiting.message === message,
    );
  expect(
    (await waiting('secret "app-credentials" not found')).status!.phase,
  ).toBe('Pending');
  await core.createNamespacedSecret({
    namespace: ns,
    body: { metadata: { name: 'app-credentials' }, stringData: { a: 'b' } },
  });
  await waiting('configmap "app-settings" not found');
  await core.createNamespacedConfigMap({
    namespace: ns,
    body: { metadata: { name: 'app-settings' }, data: { other: 'x' } },
  });
  await waiting(`couldn't find key mode in ConfigMap ${ns}/app-settings`);
  await core.patchNamespacedConfigMap(
    {
      namespace: ns,
      name: 'app-settings',
      body: { data: { mode: 'fast' } },
    },
    k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
  );
  const running = await podOf(
    'configured',
    p => condition(p, 'Ready')?.status === 'True',
  );
  expect(running.status!.containerStatuses![0]).toMatchObject({
    ready: true,
    restartCount: 0,
  });
});
