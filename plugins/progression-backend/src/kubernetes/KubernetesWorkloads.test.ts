import { ConfigReader } from '@backstage/config';
import { KubeSimulator } from '@internal/kube-simulator';
import {
  DeployRecord,
  DeployRequest,
  DeployTarget,
} from '@progression-io/backstage-plugin-progression-node';
import { ClusterConfig } from '../config/readProgressionConfig';
import { readTestConfig } from '../__testUtils__/readTestConfig';
import { KubernetesDeployer } from './KubernetesDeployer';
import { KubernetesWorkloads, StageLocation } from './KubernetesWorkloads';
import { StageResources } from './StageResources';

/*
 * Against the project's Kubernetes API simulator over HTTP, through
 * @kubernetes/client-node: the plugin does not know it is a simulator.
 */
jest.setTimeout(60_000);

let sim: KubeSimulator;
let stage: StageLocation;
const workloads = new KubernetesWorkloads();

async function deploy(
  name: string,
  image: string,
  extra: Record<string, unknown> = {},
) {
  sim.apply({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name,
      namespace: 'staging',
      labels: { 'backstage.io/kubernetes-id': name },
    },
    spec: {
      replicas: 2,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: { containers: [{ name, image }] },
      },
      ...extra,
    },
  });
  const result = await workloads.waitForRollout(stage, name, {
    timeoutMs: 20_000,
  });
  expect(result.done).toBe(true);
}

beforeAll(async () => {
  sim = await KubeSimulator.start({
    podReadyDelayMs: 20,
    backOffMs: 50,
    token: 'test-token',
  });
  sim.apply({
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: 'staging' },
  });
  const cluster: ClusterConfig = {
    name: 'sim',
    url: sim.url,
    authProvider: 'serviceAccount',
    serviceAccountToken: 'test-token',
    skipTLSVerify: true,
    source: 'progression.clusters',
  };
  stage = { cluster, namespace: 'staging' };
});

afterAll(() => sim.stop());

it('reads the live workload by its backstage.io/kubernetes-id label', async () => {
  await deploy('payments-api', 'registry.local/payments-api:1.0.0');
  const live = await workloads.readLive(stage, 'payments-api');
  expect(live).toMatchObject({
    deployment: 'payments-api',
    container: 'payments-api',
    image: 'registry.local/payments-api:1.0.0',
    revision: 1,
    replicas: 2,
    readyReplicas: 2,
    rollout: { done: true },
  });
  await expect(workloads.readLive(stage, 'nope')).rejects.toMatchObject({
    name: 'NotFoundError',
  });
  await expect(
    workloads.readLive(stage, 'bad value,app=x'),
  ).rejects.toMatchObject({ name: 'InputError' });
});

it('sets the image with the promotion recorded, and waits for the rollout', async () => {
  await workloads.setImage(
    stage,
    'payments-api',
    'payments-api',
    'registry.local/payments-api:1.1.0',
    {
      changeCause: 'Progression: 1.1.0 to staging',
      promotionId: 'p-1',
    },
  );
  const result = await workloads.waitForRollout(stage, 'payments-api', {
    timeoutMs: 20_000,
  });
  expect(result).toEqual({
    done: true,
    failed: false,
    message: 'deployment "payments-api" successfully rolled out',
  });
  const live = await workloads.readLive(stage, 'payments-api');
  expect(live).toMatchObject({
    image: 'registry.local/payments-api:1.1.0',
    revision: 2,
    promotionId: 'p-1',
    changeCause: 'Progression: 1.1.0 to staging',
  });
});

it('reports a rollout that exceeds its progress deadline', async () => {
  await deploy('web-shop', 'registry.local/web-shop:2.0.0', {
    progressDeadlineSeconds: 1,
  });
  await workloads.setImage(
    stage,
    'web-shop',
    'web-shop',
    'registry.local/web-shop:2.1.0-unready',
    { changeCause: 'x', promotionId: 'p-2' },
  );
  const result = await workloads.waitForRollout(stage, 'web-shop', {
    timeoutMs: 20_000,
  });
  expect(result).toEqual({
    done: false,
    failed: true,
    message: 'deployment "web-shop" exceeded its progress deadline',
  });
});

it('rolls back to the previous revision as kubectl rollout undo does', async () => {
  const undo = await workloads.rollBack(stage, 'payments-api');
  expect(undo).toMatchObject({
    fromRevision: 2,
    toRevision: 1,
    image: 'registry.local/payments-api:1.0.0',
    skipped: false,
  });
  expect(
    (
      await workloads.waitForRollout(stage, 'payments-api', {
        timeoutMs: 20_000,
      })
    ).done,
  ).toBe(true);
  const live = await workloads.readLive(stage, 'payments-api');
  // The old ReplicaSet is reused and takes revision 3; its change-cause comes back.
  expect(live).toMatchObject({
    image: 'registry.local/payments-api:1.0.0',
    revision: 3,
  });
  expect(live.promotionId).toBe('p-1');
  const replicaSets = sim.store.list(
    'replicasets',
    'staging',
    rs => rs.metadata.labels?.app === 'payments-api',
  );
  expect(replicaSets).toHaveLength(2);
});

it('rolls back to a named earlier image, and skips when it is already live', async () => {
  const toImage = await workloads.rollBack(stage, 'payments-api', {
    toImage: 'registry.local/payments-api:1.1.0',
  });
  expect(toImage).toMatchObject({
    toRevision: 2,
    image: 'registry.local/payments-api:1.1.0',
    skipped: false,
  });
  await workloads.waitForRollout(stage, 'payments-api', { timeoutMs: 20_000 });
  expect((await workloads.readLive(stage, 'payments-api')).revision).toBe(4);
  const again = await workloads.rollBack(stage, 'payments-api', {
    toRevision: 4,
  });
  expect(again.skipped).toBe(true);
  await expect(
    workloads.rollBack(stage, 'payments-api', {
      toImage: 'registry.local/payments-api:9.9.9',
    }),
  ).rejects.toMatchObject({ name: 'NotFoundError' });
});

it('keeps waiting across a dropped watch', async () => {
  await workloads.setImage(
    stage,
    'payments-api',
    'payments-api',
    'registry.local/payments-api:1.2.0',
    { changeCause: 'x', promotionId: 'p-3' },
  );
  sim.injectFaults({ dropWatchesAfterMs: 5 });
  try {
    const result = await workloads.waitForRollout(stage, 'payments-api', {
      timeoutMs: 20_000,
    });
    expect(result.done).toBe(true);
  } finally {
    sim.clearFaults();
  }
});

it('gives up at the timeout', async () => {
  await workloads.setImage(
    stage,
    'web-shop',
    'web-shop',
    'registry.local/web-shop:2.2.0-unready',
    { changeCause: 'x', promotionId: 'p-4' },
  );
  sim.apply({
    ...sim.store.get('deployments', 'staging', 'web-shop')!,
    spec: {
      ...sim.store.get('deployments', 'staging', 'web-shop')!.spec,
      progressDeadlineSeconds: 600,
    },
  });
  const timedOut = await workloads.waitForRollout(stage, 'web-shop', {
    timeoutMs: 300,
  });
  expect(timedOut).toMatchObject({
    done: false,
    failed: true,
    message: expect.stringContaining('did not finish rolling out'),
  });
});

it('rejects with the reason of an abort, which is no outcome of the rollout', async () => {
  const controller = new AbortController();
  const reason = new Error('the worker is stopping');
  setTimeout(() => controller.abort(reason), 50);
  await expect(
    workloads.waitForRollout(stage, 'web-shop', {
      timeoutMs: 20_000,
      readyTimeoutMs: 10_000,
      signal: controller.signal,
    }),
  ).rejects.toBe(reason);
  await expect(
    workloads.waitForRollout(stage, 'web-shop', {
      timeoutMs: 20_000,
      signal: controller.signal,
    }),
  ).rejects.toBe(reason);
});

describe('fails fast on new pods that cannot come up', () => {
  /*
   * The Deployments keep the default 600 s progress deadline and the waits
   * a 20 s timeout: a failed result naming the pod's reason comes from the
   * pods, not from either deadline.
   */
  async function rollOut(name: string, image: string, readyTimeoutMs = 60_000) {
    await deploy(name, `registry.local/${name}:1.0.0`);
    await workloads.setImage(stage, name, name, image, {
      changeCause: 'x',
      promotionId: `p-${name}`,
    });
    return workloads.waitForRollout(stage, name, {
      timeoutMs: 20_000,
      readyTimeoutMs,
    });
  }
  const podName = (deployment: string) =>
    new RegExp(`^${deployment}-[a-z0-9]+-[a-z0-9]{5}$`);

  it('a crash loop, after its restarts', async () => {
    const result = await rollOut(
      'crasher',
      'registry.local/crasher:2.0.0-crashloop',
    );
    expect(result).toMatchObject({
      done: false,
      failed: true,
      pod: {
        name: expect.stringMatching(podName('crasher')),
        container: 'crasher',
        reason: 'CrashLoopBackOff',
        message: expect.stringContaining('restarting failed container=crasher'),
      },
    });
    expect(result.pod!.restartCount).toBeGreaterThanOrEqual(2);
    expect(result.message).toBe(
      `pod ${
        result.pod!.name
      }: container crasher is in CrashLoopBackOff after ${
        result.pod!.restartCount
      } restarts (last exit code 1, Error)`,
    );
  });

  it('an image that cannot be pulled', async () => {
    const image = 'registry.local/puller:2.0.0-badimage';
    const result = await rollOut('puller', image);
    expect(result).toMatchObject({
      done: false,
      failed: true,
      pod: {
        name: expect.stringMatching(podName('puller')),
        container: 'puller',
        reason: expect.stringMatching(/^(ErrImagePull|ImagePullBackOff)$/),
      },
    });
    expect(result.message).toMatch(
      new RegExp(
        `^pod ${
          result.pod!.name
        }: container puller cannot pull image "${image}" \\((ErrImagePull|ImagePullBackOff): `,
      ),
    );
  });

  it('a container that stays unready past the ready timeout', async () => {
    const result = await rollOut(
      'sleeper',
      'registry.local/sleeper:2.0.0-unready',
      2_000,
    );
    expect(result).toMatchObject({
      done: false,
      failed: true,
      pod: {
        name: expect.stringMatching(podName('sleeper')),
        container: 'sleeper',
        reason: 'NotReady',
        message: 'containers with unready status: [sleeper]',
      },
    });
    expect(result.message).toMatch(
      /^pod sleeper-\S+: container sleeper has not been ready for [\d.]+ s since it started \(readyTimeout 2 s; its readiness probe is failing\)$/,
    );
  });

  it('a ConfigMap the container needs that does not exist', async () => {
    await deploy('configured', 'registry.local/configured:1.0.0');
    const current = sim.store.get('deployments', 'staging', 'configured')!;
    const template = structuredClone(current.spec.template);
    template.spec.containers[0].env = [
      {
        name: 'MODE',
        valueFrom: {
          configMapKeyRef: { name: 'missing-settings', key: 'mode' },
        },
      },
    ];
    sim.apply({ ...current, spec: { ...current.spec, template } });
    const result = await workloads.waitForRollout(stage, 'configured', {
      timeoutMs: 20_000,
      readyTimeoutMs: 60_000,
    });
    expect(result).toMatchObject({
      done: false,
      failed: true,
      message: expect.stringMatching(
        /^pod configured-\S+: container configured cannot start \(CreateContainerConfigError: configmap "missing-settings" not found\)$/,
      ),
      pod: { reason: 'CreateContainerConfigError' },
    });
  });

  it('but not on a healthy release, whose rollout succeeds', async () => {
    const result = await rollOut(
      'healthy',
      'registry.local/healthy:2.0.0',
      2_000,
    );
    expect(result).toEqual({
      done: true,
      failed: false,
      message: 'deployment "healthy" successfully rolled out',
    });
  });

  it('nor on the old pods when rolling back from a crash loop', async () => {
    const undo = await workloads.rollBack(stage, 'crasher');
    expect(undo.image).toBe('registry.local/crasher:1.0.0');
    const result = await workloads.waitForRollout(stage, 'crasher', {
      timeoutMs: 20_000,
      readyTimeoutMs: 2_000,
    });
    expect(result.done).toBe(true);
  });
});

it('fails a cluster call that does not answer in time, naming it', async () => {
  const impatient = new KubernetesWorkloads({ requestTimeoutMs: 100 });
  sim.injectFaults({ latencyMs: 1_000 });
  try {
    await expect(impatient.readLive(stage, 'payments-api')).rejects.toThrow(
      'list Deployments labelled backstage.io/kubernetes-id=payments-api in namespace staging of cluster sim: no answer in 0.1 s',
    );
  } finally {
    sim.clearFaults();
  }
});

it("bounds the calls for the stage's other resources and Jobs the same way, naming the call", async () => {
  const impatient = new KubernetesWorkloads({ requestTimeoutMs: 100 });
  const resources = new StageResources(impatient);
  sim.injectFaults({ latencyMs: 1_000 });
  try {
    await expect(resources.listNetworkPolicies(stage)).rejects.toThrow(
      'list NetworkPolicies in namespace staging of cluster sim: no answer in 0.1 s',
    );
    await expect(
      resources.secretKeys(stage, 'payments-api-db-credentials'),
    ).rejects.toThrow(
      'read Secret payments-api-db-credentials in namespace staging of cluster sim: no answer in 0.1 s',
    );
    const run = await impatient.runJob(stage, {
      name: 'progression-migrate-slow0001',
      promotionId: 'slow-0001',
      kubernetesId: 'payments-api',
      container: 'migration',
      image: 'registry.local/payments-api:1.0.0',
      command: ['./migrate'],
      timeoutMs: 10_000,
      backoffLimit: 0,
    });
    expect(run).toMatchObject({
      status: 'error',
      error:
        'cannot run the job: create Job progression-migrate-slow0001 in namespace staging of cluster sim: no answer in 0.1 s',
    });
  } finally {
    sim.clearFaults();
  }
});

describe('the entity a Deployment belongs to', () => {
  const owner = {
    entityRef: 'component:default/bound-api',
    name: 'bound-api',
    namespace: 'default',
    kubernetesId: 'bound-api',
  };
  // Its owners pointed its backstage.io/kubernetes-id at bound-api's workload.
  const intruder = {
    entityRef: 'component:default/evil-api',
    name: 'evil-api',
    namespace: 'default',
    kubernetesId: 'bound-api',
  };
  const refusal =
    'Deployment bound-api in namespace staging belongs to component:default/bound-api (annotation progression.backstage.io/entity-ref); component:default/evil-api may not deploy to it — give evil-api a backstage.io/kubernetes-id of its own';
  const deployer = new KubernetesDeployer(workloads);
  const annotations = () =>
    sim.store.get('deployments', 'staging', 'bound-api')!.metadata
      .annotations ?? {};
  const image = () =>
    sim.store.get('deployments', 'staging', 'bound-api')!.spec.template.spec
      .containers[0].image;

  function target(entity: typeof owner): DeployTarget {
    const config = readTestConfig(
      new ConfigReader({
        progression: {
          clusters: [
            {
              name: 'sim',
              url: sim.url,
              serviceAccountToken: 'test-token',
              skipTLSVerify: true,
            },
          ],
          pipelines: {
            standard: {
              stages: [
                { name: 'staging', cluster: 'sim', namespace: 'staging' },
              ],
            },
          },
        },
      }),
    );
    return {
      entity,
      stage: config.pipelines.get('standard')!.stages[0],
      location: stage,
      workloads,
    };
  }

  function request(
    kind: DeployRequest['kind'],
    version: string,
    promotionId: string,
  ): DeployRequest {
    return {
      promotionId,
      kind,
      release: {
        id: `r-${version}`,
        version,
        image: `registry.local/bound-api:${version}`,
      },
      changeCause: `Progression: ${version} to staging`,
    };
  }

  it('is adopted by the first promotion, with its patch', async () => {
    await deploy('bound-api', 'registry.local/bound-api:1.0.0');
    expect((await workloads.readLive(stage, 'bound-api')).entityRef).toBe(
      undefined,
    );
    const planned = await deployer.plan(
      target(owner),
      request('promotion', '1.1.0', 'p-bound-1'),
    );
    expect(planned.applied).toBe(false);
    await deployer.apply(
      target(owner),
      planned.record,
      request('promotion', '1.1.0', 'p-bound-1'),
    );
    await workloads.waitForRollout(stage, 'bound-api', { timeoutMs: 20_000 });
    expect(await workloads.readLive(stage, 'bound-api')).toMatchObject({
      image: 'registry.local/bound-api:1.1.0',
      entityRef: 'component:default/bound-api',
      promotionId: 'p-bound-1',
    });
  });

  it('stays through kubectl rollout undo, whatever the old ReplicaSet says', async () => {
    // The revision rolled back to carries a binding of its own (one that
    // was changed since): undo brings back its template, not its owner.
    const [first] = sim.store.list(
      'replicasets',
      'staging',
      rs =>
        rs.metadata.labels?.app === 'bound-api' &&
        rs.metadata.annotations?.['deployment.kubernetes.io/revision'] === '1',
    );
    sim.apply({
      ...first,
      metadata: {
        ...first.metadata,
        annotations: {
          ...first.metadata.annotations,
          'progression.backstage.io/entity-ref': 'component:default/old-owner',
        },
      },
    });
    const undo = await workloads.rollBack(stage, 'bound-api');
    expect(undo).toMatchObject({ toRevision: 1, skipped: false });
    await workloads.waitForRollout(stage, 'bound-api', { timeoutMs: 20_000 });
    expect(image()).toBe('registry.local/bound-api:1.0.0');
    expect(annotations()['progression.backstage.io/entity-ref']).toBe(
      'component:default/bound-api',
    );
  });

  it("refuses another entity's promotion, undo and on-demand rollback, changing nothing", async () => {
    const before = { image: image(), annotations: annotations() };
    await expect(
      deployer.plan(target(intruder), request('promotion', '6.6.6', 'p-evil')),
    ).rejects.toMatchObject({ name: 'NotAllowedError', message: refusal });
    const record: DeployRecord = {
      cluster: 'sim',
      namespace: 'staging',
      deployment: 'bound-api',
      container: 'bound-api',
      fromImage: 'registry.local/bound-api:1.1.0',
      fromRevision: 2,
      toImage: 'registry.local/bound-api:1.0.0',
    };
    await expect(
      deployer.rollBack(target(intruder), record),
    ).rejects.toMatchObject({ name: 'NotAllowedError', message: refusal });
    await expect(
      deployer.apply(
        target(intruder),
        { ...record, toImage: 'registry.local/bound-api:1.1.0' },
        request('rollback', '1.1.0', 'p-evil-rollback'),
      ),
    ).rejects.toMatchObject({ name: 'NotAllowedError', message: refusal });
    expect({ image: image(), annotations: annotations() }).toEqual(before);

    // Its own entity still may, whatever the case of its ref.
    await expect(
      deployer.plan(
        target({ ...owner, entityRef: 'Component:default/bound-api' }),
        request('promotion', '1.2.0', 'p-bound-2'),
      ),
    ).resolves.toMatchObject({ applied: false });
  });

  it('refuses a Deployment that Argo CD manages, naming the Application', async () => {
    const live = sim.store.get('deployments', 'staging', 'bound-api')!;
    sim.apply({
      ...live,
      metadata: {
        ...live.metadata,
        annotations: {
          ...live.metadata.annotations,
          'argocd.argoproj.io/tracking-id':
            'bound-api-staging:apps/Deployment:staging/bound-api',
        },
      },
    });
    const before = image();
    const message =
      'Deployment bound-api in namespace staging is managed by Argo CD Application bound-api-staging; Progression does not patch what Argo CD manages — give stage staging deploy.kind: argocd to promote through Git and Argo CD';
    await expect(
      deployer.plan(target(owner), request('promotion', '1.3.0', 'p-argo')),
    ).rejects.toMatchObject({ name: 'NotAllowedError', message });
    expect(image()).toBe(before);
    expect((await workloads.readLive(stage, 'bound-api')).managedBy).toEqual({
      tool: 'argocd',
      application: 'bound-api-staging',
    });
  });
});
