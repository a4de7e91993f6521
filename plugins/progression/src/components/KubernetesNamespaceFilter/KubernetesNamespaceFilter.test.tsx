import { renderInTestApp } from '@backstage/frontend-test-utils';
import { useApi } from '@backstage/core-plugin-api';
import {
  KubernetesApi,
  kubernetesApiRef,
} from '@backstage/plugin-kubernetes-react';
import { screen } from '@testing-library/react';
import { useAsync } from 'react-use';
import {
  KubernetesNamespaceFilter,
  kubernetesScopeQuery,
  scopeObjects,
} from './KubernetesNamespaceFilter';

const pod = (namespace: string, name: string) => ({
  metadata: { namespace, name },
});

type Response = Awaited<ReturnType<KubernetesApi['getObjectsByEntity']>>;

const response = {
  items: ['local', 'edge'].map(cluster => ({
    cluster: { name: cluster },
    errors: [],
    resources: [
      {
        type: 'pods',
        resources: [
          pod('development', `${cluster}-dev-pod`),
          pod('staging', `${cluster}-staging-pod`),
        ],
      },
      { type: 'services', resources: [pod('staging', `${cluster}-svc`)] },
    ],
    podMetrics: [
      { pod: pod('development', `${cluster}-dev-pod`) },
      { pod: pod('staging', `${cluster}-staging-pod`) },
    ],
  })),
} as unknown as Response;

const names = (r: Response) =>
  r.items.flatMap(item =>
    item.resources.flatMap(fetched =>
      (fetched.resources as Array<{ metadata: { name: string } }>).map(
        object => object.metadata.name,
      ),
    ),
  );

describe('scopeObjects', () => {
  it("keeps the namespace's objects and metrics of the named cluster only", () => {
    const scoped = scopeObjects(response, {
      namespace: 'staging',
      cluster: 'local',
    });
    expect(scoped.items.map(i => i.cluster.name)).toEqual(['local']);
    expect(names(scoped)).toEqual(['local-staging-pod', 'local-svc']);
    expect(scoped.items[0].podMetrics).toHaveLength(1);
    expect(scoped.items[0].resources.map(r => r.type)).toEqual([
      'pods',
      'services',
    ]);
  });

  it('keeps every cluster when none is named as the Kubernetes plugin names them', () => {
    const scoped = scopeObjects(response, {
      namespace: 'development',
      cluster: 'progression-only-name',
    });
    expect(names(scoped)).toEqual(['local-dev-pod', 'edge-dev-pod']);
  });

  it('writes the query a stage card links with', () => {
    expect(kubernetesScopeQuery({ namespace: 'staging', cluster: 'a b' })).toBe(
      '?namespace=staging&cluster=a+b',
    );
  });
});

function PodNames() {
  const api = useApi(kubernetesApiRef);
  const { value } = useAsync(
    () => api.getObjectsByEntity({ entity: {} as any, auth: {} }),
    [api],
  );
  return <div data-testid="pods">{value ? names(value).join(',') : '…'}</div>;
}

describe('KubernetesNamespaceFilter', () => {
  const kubernetesApi = {
    getObjectsByEntity: jest.fn(async () => response),
  } as unknown as KubernetesApi;

  it('answers for the namespace of the link, and says so', async () => {
    await renderInTestApp(
      <KubernetesNamespaceFilter>
        <PodNames />
      </KubernetesNamespaceFilter>,
      {
        apis: [[kubernetesApiRef, kubernetesApi]],
        initialRouteEntries: ['/kubernetes?namespace=staging&cluster=edge'],
      },
    );
    expect(
      await screen.findByText('edge-staging-pod,edge-svc'),
    ).toBeInTheDocument();
    expect(screen.getByTestId('kubernetes-namespace-filter')).toHaveTextContent(
      'Namespace staging of cluster edge only. Show every namespace',
    );
  });

  it('changes nothing without the query', async () => {
    await renderInTestApp(
      <KubernetesNamespaceFilter>
        <PodNames />
      </KubernetesNamespaceFilter>,
      {
        apis: [[kubernetesApiRef, kubernetesApi]],
        initialRouteEntries: ['/kubernetes'],
      },
    );
    expect(
      await screen.findByText(
        'local-dev-pod,local-staging-pod,local-svc,edge-dev-pod,edge-staging-pod,edge-svc',
      ),
    ).toBeInTheDocument();
    expect(screen.queryByTestId('kubernetes-namespace-filter')).toBeNull();
  });
});
