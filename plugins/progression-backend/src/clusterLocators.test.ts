import { mockServices, startTestBackend } from '@backstage/backend-test-utils';
import { Entity } from '@backstage/catalog-model';
import { AuthorizeResult } from '@backstage/plugin-permission-common';
import { KubeSimulator, installDemo } from '@internal/kube-simulator';
import request from 'supertest';
import { progressionPlugin } from './plugin';
import { catalogServiceMock } from '@backstage/plugin-catalog-node/testUtils';
import { component } from './__testUtils__/entities';
import { clusterOfResource } from './kubernetes/CatalogClusters';
import { GkeClusters } from './kubernetes/GkeClusters';
import { ClusterConfig } from '@progression-io/backstage-plugin-progression-node';
import { v1 } from '@google-cloud/container';
import { GoogleAuth } from 'google-auth-library';

/*
 * Clusters from the catalog and from GKE, as the Kubernetes plugin's catalog locator
 * finds them: a Resource of type kubernetes-cluster names the API server
 * and the auth provider in its annotations. Here the Resource points at the
 * simulator behind a local kubectl proxy's anonymous access (the
 * simulator's token webhook lets anonymous requests in). Through the REST
 * API: a release flows into a stage on that cluster, and a stage whose
 * cluster the catalog does not hold fails, saying so, once its retries are
 * spent. The catalog and the permission policy are Backstage's test
 * doubles.
 */
jest.setTimeout(120_000);

let sim: KubeSimulator;
let demo: Awaited<ReturnType<typeof installDemo>>;
const seen: Array<string | undefined> = [];

beforeAll(async () => {
  sim = await KubeSimulator.start({
    podReadyDelayMs: 20,
    authenticateToken: token => {
      seen.push(token);
      return token ? undefined : { name: 'system:anonymous' };
    },
  });
  demo = await installDemo(sim, { anyPorts: true, trafficIntervalMs: 60_000 });
});

afterAll(async () => {
  await demo?.stop();
  await sim?.stop();
});

const clusterResource = (name: string, annotations: Record<string, string>) =>
  ({
    apiVersion: 'backstage.io/v1alpha1',
    kind: 'Resource',
    metadata: { name, namespace: 'default', annotations },
    spec: { type: 'kubernetes-cluster', owner: 'platform' },
  } as Entity);

it('reads a cluster from a Resource as the Kubernetes plugin does, and never a token', () => {
  expect(
    clusterOfResource(
      clusterResource('eks-prod', {
        'kubernetes.io/api-server': 'https://eks.example.com/',
        'kubernetes.io/api-server-certificate-authority': 'Q0E=',
        'kubernetes.io/auth-provider': 'aws',
        'kubernetes.io/x-k8s-aws-id': 'prod',
        serviceAccountToken: 'must-not-be-read',
      }),
    ),
  ).toEqual({
    cluster: {
      name: 'eks-prod',
      url: 'https://eks.example.com',
      authProvider: 'aws',
      authMetadata: {
        'kubernetes.io/api-server': 'https://eks.example.com/',
        'kubernetes.io/api-server-certificate-authority': 'Q0E=',
        'kubernetes.io/auth-provider': 'aws',
        'kubernetes.io/x-k8s-aws-id': 'prod',
      },
      caData: 'Q0E=',
      skipTLSVerify: false,
      source: 'catalog',
    },
  });
  expect(
    clusterOfResource(
      clusterResource('sa', {
        'kubernetes.io/api-server': 'https://k8s.example.com',
        'kubernetes.io/auth-provider': 'serviceAccount',
      }),
    ),
  ).toEqual({
    problem: expect.stringContaining(
      "auth provider 'serviceAccount' cannot be used from the catalog",
    ),
  });
  expect(
    clusterOfResource(
      clusterResource('bad', {
        'kubernetes.io/api-server': 'ftp://k8s.example.com',
        'kubernetes.io/auth-provider': 'aws',
      }),
    ),
  ).toEqual({ problem: 'kubernetes.io/api-server is not an http(s) URL' });
});

it('promotes into a stage on a catalog cluster, and fails a stage whose cluster the catalog lacks, saying so', async () => {
  const smoke = { checks: [{ path: '/healthz', assert: "status = 'ok'" }] };
  const url = (ns: string) =>
    `${demo.servers.find(s => s.namespace === ns)!.url}/{{ kubernetesId }}`;
  const { server } = await startTestBackend({
    features: [
      progressionPlugin,
      catalogServiceMock.factory({
        entities: [
          component('payments-api'),
          component('orders-api', { pipeline: 'elsewhere' }),
          clusterResource('from-catalog', {
            'kubernetes.io/api-server': sim.url,
            'kubernetes.io/auth-provider': 'localKubectlProxy',
            // The simulator here speaks plain HTTP, as kubectl proxy does.
            'kubernetes.io/skip-tls-verify': 'true',
          }),
        ],
      }),
      mockServices.rootConfig.factory({
        data: {
          kubernetes: { clusterLocatorMethods: [{ type: 'catalog' }] },
          progression: {
            worker: { retry: { initialDelay: '100ms', budget: '1s' } },
            pipelines: {
              standard: {
                stages: [
                  {
                    name: 'development',
                    cluster: 'from-catalog',
                    namespace: 'development',
                    url: url('development'),
                    autoPromote: true,
                    gates: { smoke },
                  },
                ],
              },
              elsewhere: {
                stages: [
                  {
                    name: 'development',
                    cluster: 'not-in-the-catalog',
                    namespace: 'development',
                    autoPromote: true,
                  },
                ],
              },
            },
          },
        },
      }),
      mockServices.permissions.factory({ result: AuthorizeResult.ALLOW }),
    ],
  });
  const outcome = async (entity: string, version: string) => {
    const base = `/api/progression/v1/entities/component/default/${entity}`;
    expect(
      (
        await request(server)
          .post(`${base}/releases`)
          .send({ version, image: `registry.local/${entity}:${version}` })
      ).status,
    ).toBe(201);
    for (let i = 0; i < 800; i++) {
      const list = await request(server).get(`${base}/promotions`);
      const promotion = list.body.items[0];
      if (['succeeded', 'failed', 'rolled-back'].includes(promotion?.state)) {
        return (
          await request(server).get(
            `/api/progression/v1/promotions/${promotion.id}`,
          )
        ).body;
      }
      await new Promise(r => setTimeout(r, 25));
    }
    throw new Error(`no outcome for ${entity}`);
  };

  const good = await outcome('payments-api', '3.0.0');
  expect(good.promotion.state).toBe('succeeded');
  expect(
    sim.store.get('deployments', 'development', 'payments-api')!.spec.template
      .spec.containers[0].image,
  ).toBe('registry.local/payments-api:3.0.0');
  // The requests came without a credential, as through kubectl proxy.
  expect(seen.length).toBeGreaterThan(0);
  expect(new Set(seen)).toEqual(new Set([undefined]));

  const lost = await outcome('orders-api', '1.0.0');
  expect(lost.promotion.state).toBe('failed');
  expect(JSON.stringify(lost.steps)).toContain(
    'cluster not-in-the-catalog is not configured, and the catalog has no usable Resource of type kubernetes-cluster named not-in-the-catalog',
  );
});

describe('GKE clusters (the gke locator)', () => {
  const listed = (sim2: KubeSimulator) => ({
    clusters: [
      {
        name: 'gke-dev',
        endpoint: new URL(sim2.url).host,
        resourceLabels: { team: 'payments' },
        masterAuth: {
          clusterCaCertificate: Buffer.from(sim2.caCertificate!).toString(
            'base64',
          ),
        },
      },
      {
        name: 'gke-other-team',
        endpoint: '10.0.0.9',
        resourceLabels: { team: 'search' },
      },
    ],
  });

  it('lists the clusters of each locator by its labels and endpoint type, with their CA', async () => {
    const clusters = new Map<string, ClusterConfig>();
    const listClusters = jest.fn(async () => [
      {
        clusters: [
          {
            name: 'a',
            endpoint: '34.1.1.1',
            controlPlaneEndpointsConfig: {
              dnsEndpointConfig: { endpoint: 'a.gke.goog' },
            },
            resourceLabels: { env: 'prod' },
            masterAuth: { clusterCaCertificate: 'Q0E=' },
          },
          { name: 'b', endpoint: '34.1.1.2', resourceLabels: { env: 'dev' } },
        ],
      },
    ]);
    const gke = new GkeClusters({
      locators: [
        {
          projectId: 'p',
          region: 'europe-west1',
          authProvider: 'googleServiceAccount',
          skipTLSVerify: false,
          matchingResourceLabels: [{ key: 'env', value: 'prod' }],
          endpointType: 'dns',
        },
      ],
      clusters,
      logger: mockServices.logger.mock(),
      client: { listClusters } as any,
    });
    await gke.refresh();
    expect(listClusters).toHaveBeenCalledWith({
      parent: 'projects/p/locations/europe-west1',
    });
    expect([...clusters.values()]).toEqual([
      {
        name: 'a',
        url: 'https://a.gke.goog',
        authProvider: 'googleServiceAccount',
        caData: 'Q0E=',
        skipTLSVerify: false,
        source: 'gke',
      },
    ]);
    // Gone from the listing: gone from the clusters.
    listClusters.mockResolvedValueOnce([{ clusters: [] }] as any);
    await gke.refresh();
    expect(clusters.size).toBe(0);
  });

  it('promotes into a stage on a GKE cluster, over verified TLS with the service account token', async () => {
    // Stubbed at their boundary, as no Google answers here: GKE's cluster
    // listing and the access-token exchange.
    const sim2 = await KubeSimulator.start({
      tls: true,
      podReadyDelayMs: 20,
      authenticateToken: token =>
        token === 'ya29.gke-stub' ? { name: 'progression@gcp' } : undefined,
    });
    const list = jest
      .spyOn(v1.ClusterManagerClient.prototype, 'listClusters')
      .mockImplementation((async () => [listed(sim2)]) as any);
    const token = jest
      .spyOn(GoogleAuth.prototype, 'getAccessToken')
      .mockResolvedValue('ya29.gke-stub');
    try {
      sim2.apply({
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: 'dev' },
      });
      sim2.apply({
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: {
          name: 'search-api',
          namespace: 'dev',
          labels: { 'backstage.io/kubernetes-id': 'search-api' },
        },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: 'search-api' } },
          template: {
            metadata: { labels: { app: 'search-api' } },
            spec: {
              containers: [{ name: 'search-api', image: 'search-api:1' }],
            },
          },
        },
      });
      const { server } = await startTestBackend({
        features: [
          progressionPlugin,
          catalogServiceMock.factory({
            entities: [component('search-api', { pipeline: 'gke' })],
          }),
          mockServices.rootConfig.factory({
            data: {
              kubernetes: {
                clusterLocatorMethods: [
                  {
                    type: 'gke',
                    projectId: 'payments-project',
                    authProvider: 'googleServiceAccount',
                    matchingResourceLabels: [
                      { key: 'team', value: 'payments' },
                    ],
                  },
                ],
              },
              progression: {
                pipelines: {
                  gke: {
                    stages: [
                      {
                        name: 'dev',
                        cluster: 'gke-dev',
                        namespace: 'dev',
                        autoPromote: true,
                      },
                    ],
                  },
                },
              },
            },
          }),
          mockServices.permissions.factory({ result: AuthorizeResult.ALLOW }),
        ],
      });
      const base = '/api/progression/v1/entities/component/default/search-api';
      await request(server)
        .post(`${base}/releases`)
        .send({ version: '2.0.0', image: 'search-api:2' })
        .expect(201);
      let state: string | undefined;
      for (
        let i = 0;
        i < 800 && !['succeeded', 'failed'].includes(state!);
        i++
      ) {
        await new Promise(r => setTimeout(r, 25));
        state = (await request(server).get(`${base}/promotions`)).body.items[0]
          ?.state;
      }
      expect(state).toBe('succeeded');
      expect(
        sim2.store.get('deployments', 'dev', 'search-api')!.spec.template.spec
          .containers[0].image,
      ).toBe('search-api:2');
      expect(list).toHaveBeenCalledWith({
        parent: 'projects/payments-project/locations/-',
      });
    } finally {
      list.mockRestore();
      token.mockRestore();
      await sim2.stop();
    }
  });
});
