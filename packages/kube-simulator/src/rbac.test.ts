import * as k8s from '@kubernetes/client-node';
import { KubeSimulator } from './KubeSimulator';
import { findResource } from './api/resources';

// Real servers: allow more than Jest's default 5 s per test.
jest.setTimeout(60_000);

/*
 * RBAC in the simulator through @kubernetes/client-node over HTTP:
 * service-account tokens from the TokenRequest API, Roles and ClusterRoles
 * bound in a namespace or cluster-wide, and the API server's 403 words.
 */
let sim: KubeSimulator;
let admin: k8s.KubeConfig;

const SA = 'system:serviceaccount:backstage:deployer';

beforeAll(async () => {
  sim = await KubeSimulator.start({ rbac: true });
  admin = new k8s.KubeConfig();
  admin.loadFromString(sim.kubeconfig());
  for (const name of ['backstage', 'staging', 'production']) {
    sim.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  }
  sim.apply({
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: { name: 'deployer', namespace: 'backstage' },
  });
  for (const namespace of ['staging', 'production']) {
    sim.apply({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'settings', namespace },
      data: { a: '1' },
    });
  }
});

afterAll(() => sim.stop());

async function tokenFor(name: string, namespace = 'backstage') {
  const core = admin.makeApiClient(k8s.CoreV1Api);
  const request = await core.createNamespacedServiceAccountToken({
    name,
    namespace,
    body: { spec: { audiences: [], expirationSeconds: 600 } },
  });
  return request.status!.token;
}

function clientFor(token: string) {
  const kc = new k8s.KubeConfig();
  kc.loadFromString(sim.kubeconfig('sa', token));
  return {
    core: kc.makeApiClient(k8s.CoreV1Api),
    apps: kc.makeApiClient(k8s.AppsV1Api),
  };
}

async function failure(p: Promise<unknown>) {
  try {
    await p;
  } catch (e) {
    const error = e as k8s.ApiException<string>;
    if (error.code === undefined) throw e;
    // client-node keeps no body for some codes (401 among them).
    return { code: error.code, ...(error.body ? JSON.parse(error.body) : {}) };
  }
  throw new Error('expected a failure');
}

const rbac = (kind: string, name: string, extra: object, namespace?: string) =>
  sim.apply({
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind,
    metadata: { name, ...(namespace && { namespace }) },
    ...extra,
  } as any);
const bindTo = (role: { kind: string; name: string }) => ({
  roleRef: { apiGroup: 'rbac.authorization.k8s.io', ...role },
  subjects: [
    { kind: 'ServiceAccount', name: 'deployer', namespace: 'backstage' },
  ],
});

it('issues tokens through the TokenRequest API and refuses unknown or orphaned ones', async () => {
  const token = await tokenFor('deployer');
  expect(token).toMatch(/^sa\./);
  expect(
    (await failure(clientFor('not-a-token').core.listNamespace())).code,
  ).toBe(401);
  expect(
    (
      await failure(
        admin.makeApiClient(k8s.CoreV1Api).createNamespacedServiceAccountToken({
          name: 'nobody',
          namespace: 'backstage',
          body: { spec: { audiences: [] } },
        }),
      )
    ).code,
  ).toBe(404);

  sim.apply({
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: { name: 'temporary', namespace: 'backstage' },
  });
  const orphan = await tokenFor('temporary');
  sim.objects.delete(
    findResource('', 'v1', 'serviceaccounts')!,
    'backstage',
    'temporary',
  );
  expect(
    (
      await failure(
        clientFor(orphan).core.readNamespacedConfigMap({
          name: 'settings',
          namespace: 'staging',
        }),
      )
    ).code,
  ).toBe(401);
});

it('denies what no binding grants, in the API server words', async () => {
  const { core, apps } = clientFor(await tokenFor('deployer'));
  expect(
    await failure(
      core.readNamespacedConfigMap({ name: 'settings', namespace: 'staging' }),
    ),
  ).toMatchObject({
    kind: 'Status',
    code: 403,
    reason: 'Forbidden',
    message: `configmaps "settings" is forbidden: User "${SA}" cannot get resource "configmaps" in API group "" in the namespace "staging"`,
    details: { name: 'settings', kind: 'configmaps' },
  });
  expect(
    (await failure(apps.listNamespacedDeployment({ namespace: 'staging' })))
      .message,
  ).toBe(
    `deployments.apps is forbidden: User "${SA}" cannot list resource "deployments" in API group "apps" in the namespace "staging"`,
  );
  expect((await failure(core.listNamespace())).message).toBe(
    `namespaces is forbidden: User "${SA}" cannot list resource "namespaces" in API group "" at the cluster scope`,
  );
  // Discovery stays open to every authenticated user (system:discovery).
  const discovery = await fetch(`${sim.url}/apis`, {
    headers: { Authorization: `Bearer ${await tokenFor('deployer')}` },
  });
  expect(discovery.status).toBe(200);
});

it('grants a ClusterRole bound in one namespace there only, by verb, subresource and name', async () => {
  rbac('ClusterRole', 'reader', {
    rules: [
      { apiGroups: [''], resources: ['configmaps'], verbs: ['get'] },
      { apiGroups: [''], resources: ['namespaces'], verbs: ['get'] },
      { apiGroups: [''], resources: ['pods/log'], verbs: ['get'] },
      {
        apiGroups: [''],
        resources: ['secrets'],
        verbs: ['get', 'list'],
        resourceNames: ['allowed'],
      },
    ],
  });
  rbac(
    'RoleBinding',
    'reader',
    bindTo({ kind: 'ClusterRole', name: 'reader' }),
    'staging',
  );
  const { core } = clientFor(await tokenFor('deployer'));
  const cm = await core.readNamespacedConfigMap({
    name: 'settings',
    namespace: 'staging',
  });
  expect(cm.data).toEqual({ a: '1' });
  expect(
    (
      await failure(
        core.readNamespacedConfigMap({
          name: 'settings',
          namespace: 'production',
        }),
      )
    ).code,
  ).toBe(403);
  // Only get was granted.
  expect(
    (
      await failure(
        core.patchNamespacedConfigMap({
          name: 'settings',
          namespace: 'staging',
          body: { data: { a: '2' } },
        }),
      )
    ).message,
  ).toContain('cannot patch resource "configmaps"');
  // A namespace's own object is in that namespace for RBAC.
  expect((await core.readNamespace({ name: 'staging' })).metadata?.name).toBe(
    'staging',
  );
  expect((await failure(core.readNamespace({ name: 'production' }))).code).toBe(
    403,
  );
  // resourceNames narrows get; list cannot be narrowed by name.
  sim.apply({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'allowed', namespace: 'staging' },
    stringData: { k: 'v' },
  });
  sim.apply({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'other', namespace: 'staging' },
    stringData: { k: 'v' },
  });
  expect(
    (await core.readNamespacedSecret({ name: 'allowed', namespace: 'staging' }))
      .metadata?.name,
  ).toBe('allowed');
  expect(
    (
      await failure(
        core.readNamespacedSecret({ name: 'other', namespace: 'staging' }),
      )
    ).code,
  ).toBe(403);
  expect(
    (await failure(core.listNamespacedSecret({ namespace: 'staging' }))).code,
  ).toBe(403);
  // A subresource is its own resource: pods/log, not pods.
  expect(
    (await failure(core.listNamespacedPod({ namespace: 'staging' }))).message,
  ).toContain('cannot list resource "pods"');
});

it('grants cluster-wide through a ClusterRoleBinding, and a watch needs watch', async () => {
  rbac('ClusterRole', 'deployment-reader', {
    rules: [
      { apiGroups: ['apps'], resources: ['deployments'], verbs: ['list'] },
    ],
  });
  rbac(
    'ClusterRoleBinding',
    'deployment-reader',
    bindTo({ kind: 'ClusterRole', name: 'deployment-reader' }),
  );
  const token = await tokenFor('deployer');
  const { apps } = clientFor(token);
  for (const namespace of ['staging', 'production']) {
    expect((await apps.listNamespacedDeployment({ namespace })).items).toEqual(
      [],
    );
  }
  const watch = await fetch(
    `${sim.url}/apis/apps/v1/namespaces/staging/deployments?watch=true&timeoutSeconds=1`,
    { headers: { Authorization: `Bearer ${token}` } },
  );
  expect(watch.status).toBe(403);
  expect((await watch.json()).message).toContain(
    'cannot watch resource "deployments" in API group "apps"',
  );
  // Every request is recorded as RBAC saw it.
  expect(sim.access.at(-1)).toMatchObject({
    user: SA,
    verb: 'watch',
    apiGroup: 'apps',
    resource: 'deployments',
    namespace: 'staging',
    allowed: false,
  });
});

it('lets every token do anything without rbac, as before', async () => {
  const open = await KubeSimulator.start();
  try {
    open.apply({
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: 'anyone', namespace: 'default' },
    });
    const kc = new k8s.KubeConfig();
    kc.loadFromString(
      open.kubeconfig('sa', open.serviceAccountToken('default', 'anyone')),
    );
    const list = await kc.makeApiClient(k8s.CoreV1Api).listNamespace();
    expect(list.items.map(n => n.metadata?.name)).toContain('default');
  } finally {
    await open.stop();
  }
});
