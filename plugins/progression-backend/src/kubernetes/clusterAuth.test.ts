import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { mockServices } from '@backstage/backend-test-utils';
import { ConfigReader } from '@backstage/config';
import {
  AzureIdentityStrategy,
  ServiceAccountStrategy,
} from '@backstage/plugin-kubernetes-backend';
import { KubeSimulator } from '@internal/kube-simulator';
import { CoreV1Api, KubeConfig, Watch } from '@kubernetes/client-node';
import { GoogleAuth } from 'google-auth-library';
import { readTestConfig } from '../__testUtils__/readTestConfig';
import { ClusterAuth } from './clusterAuth';
import { KubernetesWorkloads } from './KubernetesWorkloads';

/*
 * Each auth provider's credential, from the Kubernetes plugin's own
 * strategies, reaches the cluster (the simulator, over HTTPS) as the
 * header the strategy makes, on API calls and on watches. The simulator's
 * token webhook sees every token, as EKS's or GKE's authenticator would.
 * Stubbed at their boundary, because no cloud answers here: Google's
 * access-token exchange (GoogleAuth.getAccessToken) and Azure's token
 * credential (the TokenCredential AzureIdentityStrategy is given). AWS is
 * not stubbed: its token is a request presigned locally from the
 * environment's keys, which the test checks.
 */
jest.setTimeout(60_000);

let sim: KubeSimulator;
let caFile: string;
const seen: Array<string | undefined> = [];

beforeAll(async () => {
  sim = await KubeSimulator.start({
    tls: true,
    authenticateToken: token => {
      seen.push(token);
      return { name: token ? 'cloud-user' : 'system:anonymous' };
    },
  });
  sim.apply({
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: 'staging' },
  });
  caFile = path.join(
    fs.mkdtempSync(path.join(os.tmpdir(), 'cluster-ca-')),
    'ca.crt',
  );
  fs.writeFileSync(caFile, sim.caCertificate!);
});

afterAll(async () => {
  await sim.stop();
  fs.rmSync(path.dirname(caFile), { recursive: true, force: true });
});

beforeEach(() => {
  seen.length = 0;
});

/** One cluster in the Kubernetes plugin's config, as Progression reads it. */
function clusterFrom(cluster: object) {
  const config = readTestConfig(
    new ConfigReader({
      kubernetes: {
        clusterLocatorMethods: [
          {
            type: 'config',
            clusters: [{ name: 'c', url: sim.url, caFile, ...cluster }],
          },
        ],
      },
      progression: {
        pipelines: {
          p: {
            stages: [{ name: 'staging', cluster: 'c', namespace: 'staging' }],
          },
        },
      },
    }),
  );
  return config.clusters.get('c')!;
}

/** A read and a watch of the stage, as the engine makes them. */
async function callWith(
  cluster: ReturnType<typeof clusterFrom>,
  auth: ClusterAuth,
) {
  const workloads = new KubernetesWorkloads({ auth });
  const kc = workloads.kubeConfig(cluster);
  const list = await kc
    .makeApiClient(CoreV1Api)
    .listNamespacedConfigMap({ namespace: 'staging' });
  expect(list.items).toEqual([]);
  const watch = new Watch(kc);
  await new Promise<void>((resolve, reject) => {
    watch
      .watch(
        '/api/v1/namespaces/staging/configmaps',
        { timeoutSeconds: 1 },
        () => undefined,
        (err: unknown) => (err ? reject(err) : resolve()),
      )
      .catch(reject);
  });
}

it('sends a service account token as its bearer token', async () => {
  await callWith(
    clusterFrom({
      authProvider: 'serviceAccount',
      serviceAccountToken: 'sa-1',
    }),
    new ClusterAuth(),
  );
  expect(seen.length).toBeGreaterThanOrEqual(2);
  expect(new Set(seen)).toEqual(new Set(['sa-1']));
});

it("sends AWS's presigned STS request for the cluster, signed with the environment's keys", async () => {
  const saved = { ...process.env };
  Object.assign(process.env, {
    AWS_ACCESS_KEY_ID: 'AKIAIOSFODNN7EXAMPLE',
    AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
    AWS_REGION: 'eu-west-1',
  });
  delete process.env.AWS_PROFILE;
  try {
    await callWith(
      clusterFrom({
        authProvider: 'aws',
        authMetadata: { 'kubernetes.io/x-k8s-aws-id': 'prod-eks' },
      }),
      new ClusterAuth({ config: new ConfigReader({}) }),
    );
  } finally {
    process.env = saved;
  }
  const token = seen[0]!;
  expect(token).toMatch(/^k8s-aws-v1\./);
  const url = new URL(
    Buffer.from(token.slice('k8s-aws-v1.'.length), 'base64url').toString(),
  );
  expect(url.host).toBe('sts.eu-west-1.amazonaws.com');
  expect(url.searchParams.get('Action')).toBe('GetCallerIdentity');
  expect(url.searchParams.get('X-Amz-Credential')).toMatch(
    /^AKIAIOSFODNN7EXAMPLE\/\d{8}\/eu-west-1\/sts\/aws4_request$/,
  );
  expect(url.searchParams.get('X-Amz-SignedHeaders')).toBe('host;x-k8s-aws-id');
  expect(url.searchParams.get('X-Amz-Signature')).toMatch(/^[0-9a-f]{64}$/);
  // The secret key itself never travels.
  expect(token).not.toContain('wJalrXUtnFEMI');
});

it("sends Google's access token for the configured service account", async () => {
  const getAccessToken = jest
    .spyOn(GoogleAuth.prototype, 'getAccessToken')
    .mockResolvedValue('ya29.stubbed-access-token');
  try {
    await callWith(
      clusterFrom({ authProvider: 'googleServiceAccount' }),
      new ClusterAuth({
        config: new ConfigReader({
          kubernetes: {
            googleServiceAccountCredentials: JSON.stringify({
              type: 'service_account',
              client_email: 'progression@project.iam.gserviceaccount.com',
              private_key: 'not-used-the-exchange-is-stubbed',
            }),
          },
        }),
      }),
    );
    // One credential for the read and the watch: reused, not asked twice.
    expect(getAccessToken).toHaveBeenCalledTimes(1);
  } finally {
    getAccessToken.mockRestore();
  }
  expect(new Set(seen)).toEqual(new Set(['ya29.stubbed-access-token']));
});

it("sends Azure's AKS token from the credential it is given", async () => {
  const getToken = jest.fn(async (scope: string | string[]) => ({
    token: `azure-token-for-${scope}`,
    expiresOnTimestamp: Date.now() + 3_600_000,
  }));
  await callWith(
    clusterFrom({ authProvider: 'azure' }),
    new ClusterAuth({
      overrides: {
        azure: new AzureIdentityStrategy(mockServices.logger.mock(), {
          getToken,
        }),
      },
    }),
  );
  // The AKS server application's scope, as the Kubernetes plugin asks it.
  expect(new Set(seen)).toEqual(
    new Set(['azure-token-for-6dae42f8-4368-4678-94ff-3960e28e3630/.default']),
  );
});

it('sends no credential through a local kubectl proxy', async () => {
  const cluster = clusterFrom({ authProvider: 'localKubectlProxy' });
  await callWith(cluster, new ClusterAuth());
  expect(new Set(seen)).toEqual(new Set([undefined]));
});

it("sends the in-cluster service account's token when no token is configured", async () => {
  // In a pod, the token is the file the kubelet mounts (and rotates) at
  // /var/run/secrets/kubernetes.io/serviceaccount/token. Here the strategy
  // runs unchanged, with client-node's KubeConfig reading that path under
  // a temporary folder: the file system is the boundary stubbed.
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'in-cluster-'));
  const dir = path.join(root, 'var/run/secrets/kubernetes.io/serviceaccount');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'token'), 'mounted-token-1');
  class InClusterKubeConfig extends KubeConfig {
    loadFromCluster() {
      super.loadFromCluster(root);
    }
  }
  const strategy = new ServiceAccountStrategy();
  (strategy as any).injectedKubernetesClient = {
    KubeConfig: InClusterKubeConfig,
  };
  try {
    await callWith(
      clusterFrom({ authProvider: 'serviceAccount' }),
      new ClusterAuth({ overrides: { serviceAccount: strategy } }),
    );
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
  expect(new Set(seen)).toEqual(new Set(['mounted-token-1']));
});

it('fails the call, naming the cluster and provider, when no credential can be had', async () => {
  // No token and not in a cluster: the in-cluster account's token file is
  // not there.
  const workloads = new KubernetesWorkloads({ auth: new ClusterAuth() });
  const cluster = clusterFrom({ authProvider: 'serviceAccount' });
  await expect(
    workloads
      .kubeConfig(cluster)
      .makeApiClient(CoreV1Api)
      .listNamespacedConfigMap({ namespace: 'staging' }),
  ).rejects.toThrow(
    /cannot get a credential for cluster c \(authProvider serviceAccount\): .*\/var\/run\/secrets\/kubernetes.io\/serviceaccount/,
  );
  expect(seen).toEqual([]);
});

it("trusts the cluster's CA from caData or caFile, and refuses a server it cannot verify", async () => {
  const token = { authProvider: 'serviceAccount', serviceAccountToken: 't' };
  await callWith(clusterFrom(token), new ClusterAuth());
  const caData = Buffer.from(sim.caCertificate!).toString('base64');
  await callWith(
    clusterFrom({ ...token, caFile: undefined, caData }),
    new ClusterAuth(),
  );
  const workloads = new KubernetesWorkloads({ auth: new ClusterAuth() });
  const unverified = clusterFrom({ ...token, caFile: undefined });
  await expect(
    workloads
      .kubeConfig(unverified)
      .makeApiClient(CoreV1Api)
      .listNamespacedConfigMap({ namespace: 'staging' }),
  ).rejects.toThrow(/certificate/);
});
