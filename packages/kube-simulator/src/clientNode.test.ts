import * as k8s from '@kubernetes/client-node';
import { KubeSimulator } from './KubeSimulator';
import { waitFor } from './testUtils/waitFor';

// Real servers and processes: allow more than Jest's default 5 s per test.
jest.setTimeout(60_000);

/*
 * The simulator through @kubernetes/client-node 1.4.0 over real HTTP, the
 * way the Progression backend talks to a cluster.
 */
let sim: KubeSimulator;
let kc: k8s.KubeConfig;
let core: k8s.CoreV1Api;
let apps: k8s.AppsV1Api;

const ns = 'team-a';
const deploymentBody = (
  name: string,
  image: string,
  replicas = 2,
): k8s.V1Deployment => ({
  metadata: { name, labels: { app: name } },
  spec: {
    replicas,
    selector: { matchLabels: { app: name } },
    template: {
      metadata: { labels: { app: name } },
      spec: { containers: [{ name, image }] },
    },
  },
});

async function statusOf(p: Promise<unknown>) {
  try {
    await p;
    return 200;
  } catch (e) {
    return (e as k8s.ApiException<string>).code;
  }
}

async function errorBody(p: Promise<unknown>) {
  try {
    await p;
  } catch (e) {
    return JSON.parse((e as k8s.ApiException<string>).body);
  }
  throw new Error('expected an error');
}

beforeAll(async () => {
  sim = await KubeSimulator.start({
    podReadyDelayMs: 30,
    watchHistory: 200,
    bookmarkIntervalMs: 200,
  });
  kc = new k8s.KubeConfig();
  kc.loadFromString(sim.kubeconfig());
  core = kc.makeApiClient(k8s.CoreV1Api);
  apps = kc.makeApiClient(k8s.AppsV1Api);
  await core.createNamespace({
    body: { metadata: { name: ns, labels: { environment: 'dev' } } },
  });
});

afterAll(async () => {
  await sim.stop();
});

describe('authentication', () => {
  it('answers 401 as a Status without or with a wrong token', async () => {
    const attempts: Record<string, string>[] = [
      {},
      { Authorization: 'Bearer wrong' },
    ];
    for (const headers of attempts) {
      const res = await fetch(`${sim.url}/api/v1/namespaces`, { headers });
      expect(res.status).toBe(401);
      expect(await res.json()).toMatchObject({
        kind: 'Status',
        code: 401,
        reason: 'Unauthorized',
      });
    }
  });

  it('serves /version to anyone, as a real cluster does', async () => {
    const res = await fetch(`${sim.url}/version`);
    expect(await res.json()).toMatchObject({ major: '1', minor: '32' });
  });
});

describe('CRUD', () => {
  it('creates, reads, lists, updates and deletes ConfigMaps', async () => {
    const created = await core.createNamespacedConfigMap({
      namespace: ns,
      body: {
        metadata: { name: 'flags', labels: { kind: 'flags' } },
        data: { a: '1' },
      },
    });
    expect(created.metadata?.uid).toBeTruthy();
    expect(created.metadata?.resourceVersion).toBeTruthy();

    const read = await core.readNamespacedConfigMap({
      namespace: ns,
      name: 'flags',
    });
    expect(read.data).toEqual({ a: '1' });

    const list = await core.listNamespacedConfigMap({
      namespace: ns,
      labelSelector: 'kind=flags',
    });
    expect(list.items.map(i => i.metadata?.name)).toEqual(['flags']);
    expect(
      (
        await core.listNamespacedConfigMap({
          namespace: ns,
          labelSelector: 'kind notin (flags)',
        })
      ).items,
    ).toEqual([]);
    expect(
      (
        await core.listNamespacedConfigMap({
          namespace: ns,
          fieldSelector: 'metadata.name=flags',
        })
      ).items,
    ).toHaveLength(1);

    const updated = await core.replaceNamespacedConfigMap({
      namespace: ns,
      name: 'flags',
      body: { ...read, data: { a: '2' } },
    });
    expect(updated.data).toEqual({ a: '2' });
    expect(Number(updated.metadata!.resourceVersion)).toBeGreaterThan(
      Number(read.metadata!.resourceVersion),
    );

    await core.deleteNamespacedConfigMap({ namespace: ns, name: 'flags' });
    expect(
      await statusOf(
        core.readNamespacedConfigMap({ namespace: ns, name: 'flags' }),
      ),
    ).toBe(404);
  });

  it('answers 409 Conflict to an update with a stale resourceVersion', async () => {
    const cm = await core.createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { name: 'cas' }, data: { v: '1' } },
    });
    await core.replaceNamespacedConfigMap({
      namespace: ns,
      name: 'cas',
      body: { ...cm, data: { v: '2' } },
    });
    const body = await errorBody(
      core.replaceNamespacedConfigMap({
        namespace: ns,
        name: 'cas',
        body: { ...cm, data: { v: '3' } },
      }),
    );
    expect(body).toMatchObject({
      kind: 'Status',
      code: 409,
      reason: 'Conflict',
    });
  });

  it('answers Status errors with the right codes', async () => {
    expect(
      await errorBody(
        core.readNamespacedSecret({ namespace: ns, name: 'nope' }),
      ),
    ).toMatchObject({ code: 404, reason: 'NotFound' });
    await core.createNamespacedSecret({
      namespace: ns,
      body: { metadata: { name: 'db' }, stringData: { password: 'x' } },
    });
    expect(
      await errorBody(
        core.createNamespacedSecret({
          namespace: ns,
          body: { metadata: { name: 'db' } },
        }),
      ),
    ).toMatchObject({ code: 409, reason: 'AlreadyExists' });
    expect(
      await errorBody(
        apps.createNamespacedDeployment({
          namespace: ns,
          body: { metadata: { name: 'Bad_Name' }, spec: {} as any },
        }),
      ),
    ).toMatchObject({ code: 422, reason: 'Invalid' });
    expect(
      await errorBody(
        core.createNamespacedConfigMap({
          namespace: 'missing',
          body: { metadata: { name: 'x' } },
        }),
      ),
    ).toMatchObject({ code: 404 });
  });

  it('stores stringData base64-encoded and returns no stringData', async () => {
    const secret = await core.readNamespacedSecret({
      namespace: ns,
      name: 'db',
    });
    expect(secret.data).toEqual({
      password: Buffer.from('x').toString('base64'),
    });
    expect(secret.stringData).toBeUndefined();
  });

  it('answers metadata only when asked for PartialObjectMetadata, as the API server does', async () => {
    const get = (path: string, accept: string) =>
      fetch(`${sim.url}${path}`, {
        headers: { Authorization: `Bearer ${sim.token}`, Accept: accept },
      });
    const one = await get(
      `/api/v1/namespaces/${ns}/secrets/db`,
      'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json',
    );
    expect(one.headers.get('content-type')).toBe(
      'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1',
    );
    const body = await one.json();
    expect(body).toEqual({
      kind: 'PartialObjectMetadata',
      apiVersion: 'meta.k8s.io/v1',
      metadata: expect.objectContaining({ name: 'db', namespace: ns }),
    });
    expect(JSON.stringify(body)).not.toContain(
      Buffer.from('x').toString('base64'),
    );
    const list = await (
      await get(
        `/api/v1/namespaces/${ns}/secrets`,
        'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1',
      )
    ).json();
    expect(list.kind).toBe('PartialObjectMetadataList');
    expect(list.items.map((i: any) => [i.kind, i.metadata.name])).toEqual([
      ['PartialObjectMetadata', 'db'],
    ]);
    // Without the parameter, the object.
    const whole = await (
      await get(`/api/v1/namespaces/${ns}/secrets/db`, 'application/json')
    ).json();
    expect(whole.kind).toBe('Secret');
    expect(whole.data.password).toBeDefined();
  });

  it('computes PodMetrics from running pods, refuses writes to them, and leaves pods alone', async () => {
    await apps.createNamespacedDeployment({
      namespace: ns,
      body: deploymentBody('metered', 'example/metered:1', 1),
    });
    const running = await waitFor(async () => {
      const pods = await core.listNamespacedPod({
        namespace: ns,
        labelSelector: 'app=metered',
      });
      const pod = pods.items.find(p => p.status?.phase === 'Running');
      if (!pod) throw new Error('no running pod yet');
      return pod;
    });
    const metrics = kc.makeApiClient(k8s.CustomObjectsApi);
    const list = (await metrics.listNamespacedCustomObject({
      group: 'metrics.k8s.io',
      version: 'v1beta1',
      namespace: ns,
      plural: 'pods',
    })) as any;
    expect(list.kind).toBe('PodMetricsList');
    const mine = list.items.find(
      (m: any) => m.metadata.name === running.metadata!.name,
    );
    expect(mine.containers).toEqual([
      {
        name: 'metered',
        usage: {
          cpu: expect.stringMatching(/^\d+m$/),
          memory: expect.stringMatching(/^\d+Mi$/),
        },
      },
    ]);
    const podMetrics = {
      apiVersion: 'metrics.k8s.io/v1beta1',
      kind: 'PodMetrics',
      metadata: { name: running.metadata!.name!, namespace: ns },
    };
    expect(
      await statusOf(
        metrics.createNamespacedCustomObject({
          group: 'metrics.k8s.io',
          version: 'v1beta1',
          namespace: ns,
          plural: 'pods',
          body: podMetrics,
        }),
      ),
    ).toBe(405);
    // Same plural as pods: applying it directly must not overwrite the pod.
    expect(() => sim.apply(podMetrics)).toThrow(/computed by the simulator/);
    const pod = await core.readNamespacedPod({
      namespace: ns,
      name: running.metadata!.name!,
    });
    expect(pod.kind ?? 'Pod').toBe('Pod');
    expect(pod.spec?.containers[0].image).toBe('example/metered:1');
    await apps.deleteNamespacedDeployment({ namespace: ns, name: 'metered' });
  });

  it('applies server-side defaults and generation rules', async () => {
    const d = await apps.createNamespacedDeployment({
      namespace: ns,
      body: deploymentBody('defaults', 'web:1.0.0'),
    });
    expect(d.metadata?.generation).toBe(1);
    expect(d.spec?.revisionHistoryLimit).toBe(10);
    expect(d.spec?.progressDeadlineSeconds).toBe(600);
    expect(d.spec?.strategy).toEqual({
      type: 'RollingUpdate',
      rollingUpdate: { maxSurge: '25%', maxUnavailable: '25%' },
    });
    expect(d.spec?.template.spec?.containers[0]).toMatchObject({
      imagePullPolicy: 'IfNotPresent',
      terminationMessagePolicy: 'File',
    });
    expect(d.spec?.template.spec).toMatchObject({
      restartPolicy: 'Always',
      dnsPolicy: 'ClusterFirst',
      schedulerName: 'default-scheduler',
    });

    const labelsOnly = await apps.patchNamespacedDeployment(
      {
        namespace: ns,
        name: 'defaults',
        body: { metadata: { labels: { touched: 'yes' } } },
      },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    expect(labelsOnly.metadata?.generation).toBe(1);
    const specChange = await apps.patchNamespacedDeployment(
      { namespace: ns, name: 'defaults', body: { spec: { replicas: 3 } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    expect(specChange.metadata?.generation).toBe(2);
    const observed = await waitFor(async () => {
      const x = await apps.readNamespacedDeployment({
        namespace: ns,
        name: 'defaults',
      });
      return x.status?.observedGeneration === 2 && x;
    });
    expect(observed.status?.observedGeneration).toBe(2);
  });
});

describe('patch', () => {
  it('applies strategic merge, merge and JSON patches', async () => {
    await apps.createNamespacedDeployment({
      namespace: ns,
      body: deploymentBody('patchy', 'web:1.0.0', 1),
    });
    const smp = await apps.patchNamespacedDeployment(
      {
        namespace: ns,
        name: 'patchy',
        body: {
          metadata: {
            annotations: { 'kubernetes.io/change-cause': 'to 1.1.0' },
          },
          spec: {
            template: {
              spec: { containers: [{ name: 'patchy', image: 'web:1.1.0' }] },
            },
          },
        },
      },
      k8s.setHeaderOptions(
        'Content-Type',
        k8s.PatchStrategy.StrategicMergePatch,
      ),
    );
    expect(smp.spec?.template.spec?.containers).toHaveLength(1);
    expect(smp.spec?.template.spec?.containers[0].image).toBe('web:1.1.0');

    const merge = await apps.patchNamespacedDeployment(
      {
        namespace: ns,
        name: 'patchy',
        body: {
          metadata: { annotations: { 'kubernetes.io/change-cause': null } },
        },
      },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    expect(
      merge.metadata?.annotations?.['kubernetes.io/change-cause'],
    ).toBeUndefined();

    // client-node's default for patch is a JSON patch.
    const json = await apps.patchNamespacedDeployment({
      namespace: ns,
      name: 'patchy',
      body: [
        {
          op: 'replace',
          path: '/spec/template/spec/containers/0/image',
          value: 'web:1.2.0',
        },
      ],
    });
    expect(json.spec?.template.spec?.containers[0].image).toBe('web:1.2.0');
  });

  it('refuses an unknown patch type with 415', async () => {
    const res = await fetch(
      `${sim.url}/apis/apps/v1/namespaces/${ns}/deployments/patchy`,
      {
        method: 'PATCH',
        headers: {
          Authorization: `Bearer ${sim.token}`,
          'Content-Type': 'text/plain',
        },
        body: '{}',
      },
    );
    expect(res.status).toBe(415);
  });
});

describe('watch', () => {
  it('streams events, resumes from a resourceVersion, and answers 410 when it is too old', async () => {
    const watch = new k8s.Watch(kc);
    const path = `/api/v1/namespaces/${ns}/configmaps`;
    const list = await core.listNamespacedConfigMap({ namespace: ns });
    const from = list.metadata!.resourceVersion!;

    const seen: string[] = [];
    const ended = new Promise<unknown>(resolve => {
      watch
        .watch(
          path,
          { resourceVersion: from, labelSelector: 'watched=yes' },
          (type, obj) => seen.push(`${type} ${obj.metadata.name}`),
          resolve,
        )
        .then(ac => {
          waitFor(() => seen.length >= 3 && seen).then(
            () => ac.abort(),
            () => ac.abort(),
          );
        });
    });
    await core.createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { name: 'w1', labels: { watched: 'yes' } } },
    });
    await core.createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { name: 'ignored' } },
    });
    await core.patchNamespacedConfigMap(
      { namespace: ns, name: 'w1', body: { data: { x: '1' } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    await core.deleteNamespacedConfigMap({ namespace: ns, name: 'w1' });
    await ended;
    expect(seen).toEqual(['ADDED w1', 'MODIFIED w1', 'DELETED w1']);

    // Resume: a new watch from the same version replays what happened since.
    const replayed: string[] = [];
    await new Promise<void>(resolve => {
      watch.watch(
        path,
        {
          resourceVersion: from,
          labelSelector: 'watched=yes',
          timeoutSeconds: 1,
        },
        type => replayed.push(type),
        () => resolve(),
      );
    });
    expect(replayed).toEqual(['ADDED', 'MODIFIED', 'DELETED']);

    // Push the history past its limit (200 events); the old version is gone.
    for (let i = 0; i < 210; i++) {
      await core.createNamespacedConfigMap({
        namespace: ns,
        body: { metadata: { name: `filler-${i}` } },
      });
    }
    const errors: any[] = [];
    await new Promise<void>(resolve => {
      watch.watch(
        path,
        { resourceVersion: from },
        (type, obj) => type === 'ERROR' && errors.push(obj),
        () => resolve(),
      );
    });
    expect(errors[0]).toMatchObject({
      kind: 'Status',
      code: 410,
      reason: 'Expired',
    });
  });

  it('sends bookmarks and ends at timeoutSeconds', async () => {
    const res = await fetch(
      `${sim.url}/api/v1/namespaces/${ns}/secrets?watch=true&allowWatchBookmarks=true&timeoutSeconds=1`,
      {
        headers: { Authorization: `Bearer ${sim.token}` },
      },
    );
    const lines = (await res.text())
      .trim()
      .split('\n')
      .map(l => JSON.parse(l));
    expect(lines[0]).toMatchObject({
      type: 'ADDED',
      object: { metadata: { name: 'db' } },
    });
    // The stream ended by itself after a second, with bookmarks meanwhile.
    const bookmark = lines.find(l => l.type === 'BOOKMARK');
    expect(bookmark).toMatchObject({
      object: {
        kind: 'Secret',
        metadata: { resourceVersion: expect.any(String) },
      },
    });
  });
});

describe('faults', () => {
  afterEach(() => sim.clearFaults());

  it('injects 5xx, conflicts and latency, and clears them', async () => {
    sim.injectFaults({ failNext: 1, failStatus: 503 });
    expect(await statusOf(core.listNamespace())).toBe(503);
    expect(await statusOf(core.listNamespace())).toBe(200);

    sim.injectFaults({ conflictNext: 1 });
    const cm = await core.createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { name: 'faulty' } },
    });
    expect(
      await statusOf(
        core.replaceNamespacedConfigMap({
          namespace: ns,
          name: 'faulty',
          body: cm,
        }),
      ),
    ).toBe(409);
    expect(
      await statusOf(
        core.replaceNamespacedConfigMap({
          namespace: ns,
          name: 'faulty',
          body: cm,
        }),
      ),
    ).toBe(200);
  });

  it('cuts watches after dropWatchesAfterMs and still answers with latency added', async () => {
    sim.injectFaults({ dropWatchesAfterMs: 50, latencyMs: 20 });
    const watch = new k8s.Watch(kc);
    const ended = await new Promise<unknown>(resolve => {
      watch.watch(
        `/api/v1/namespaces/${ns}/services`,
        {},
        () => undefined,
        resolve,
      );
    });
    expect(ended).toBeDefined();
    expect((await core.listNamespace()).items.length).toBeGreaterThan(0);
  });

  it('drops watch connections', async () => {
    const watch = new k8s.Watch(kc);
    const done = new Promise<void>(resolve => {
      watch.watch(
        `/api/v1/namespaces/${ns}/pods`,
        {},
        () => undefined,
        () => resolve(),
      );
    });
    await waitFor(() => sim.openWatches > 0);
    sim.dropWatches();
    await done;
    expect(sim.openWatches).toBe(0);
  });
});
