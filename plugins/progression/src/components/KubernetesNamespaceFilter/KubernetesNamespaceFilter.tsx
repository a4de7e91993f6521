import { ReactNode, useMemo } from 'react';
import { useLocation } from 'react-router-dom';
import { Link } from '@backstage/core-components';
import { ApiProvider } from '@backstage/core-app-api';
import { ApiHolder, ApiRef, useApiHolder } from '@backstage/core-plugin-api';
import {
  KubernetesApi,
  kubernetesApiRef,
} from '@backstage/plugin-kubernetes-react';
import Alert from '@material-ui/lab/Alert';

type ObjectsByEntity = Awaited<ReturnType<KubernetesApi['getObjectsByEntity']>>;

/** What a stage card's Pods link asks for: `?namespace=…[&cluster=…]`. */
export interface KubernetesScope {
  namespace: string;
  cluster?: string;
}

/** The query a stage card's link to the Kubernetes tab carries. */
export function kubernetesScopeQuery(scope: KubernetesScope): string {
  const query = new URLSearchParams({ namespace: scope.namespace });
  if (scope.cluster) query.set('cluster', scope.cluster);
  return `?${query}`;
}

const inNamespace = (object: unknown, namespace: string) =>
  (object as { metadata?: { namespace?: string } } | undefined)?.metadata
    ?.namespace === namespace;

/**
 * Only the scope's namespace, in every list the tab shows; and only its
 * cluster when the Kubernetes plugin knows a cluster of that name
 * (Progression's `progression.clusters` may name them differently).
 */
export function scopeObjects(
  response: ObjectsByEntity,
  scope: KubernetesScope,
): ObjectsByEntity {
  const byCluster = response.items.some(
    item => item.cluster.name === scope.cluster,
  );
  return {
    items: response.items
      .filter(item => !byCluster || item.cluster.name === scope.cluster)
      .map(item => ({
        ...item,
        resources: item.resources.map(fetched => ({
          ...fetched,
          resources: (fetched.resources as unknown[]).filter(object =>
            inNamespace(object, scope.namespace),
          ),
        })) as typeof item.resources,
        podMetrics: item.podMetrics.filter(metrics =>
          inNamespace(metrics.pod, scope.namespace),
        ),
      })),
  };
}

/** The Kubernetes plugin's API, answering for one namespace only. */
class ScopedKubernetesApi implements KubernetesApi {
  constructor(
    private readonly api: KubernetesApi,
    private readonly scope: KubernetesScope,
  ) {}
  async getObjectsByEntity(
    request: Parameters<KubernetesApi['getObjectsByEntity']>[0],
  ) {
    return scopeObjects(await this.api.getObjectsByEntity(request), this.scope);
  }
  async getWorkloadsByEntity(
    request: Parameters<KubernetesApi['getWorkloadsByEntity']>[0],
  ) {
    return scopeObjects(
      await this.api.getWorkloadsByEntity(request),
      this.scope,
    );
  }
  async getCustomObjectsByEntity(
    request: Parameters<KubernetesApi['getCustomObjectsByEntity']>[0],
  ) {
    return scopeObjects(
      await this.api.getCustomObjectsByEntity(request),
      this.scope,
    );
  }
  getClusters() {
    return this.api.getClusters();
  }
  getCluster(clusterName: string) {
    return this.api.getCluster(clusterName);
  }
  proxy(options: Parameters<KubernetesApi['proxy']>[0]) {
    return this.api.proxy(options);
  }
}

/**
 * Wraps the Kubernetes plugin's entity tab so that a stage card's Pods link
 * (`?namespace=staging`) shows that stage's namespace only, with a line
 * saying so and a link back to every namespace. Without the query it
 * changes nothing. Every other API comes from the app as before.
 *
 * @public
 */
export function KubernetesNamespaceFilter(props: { children: ReactNode }) {
  const { search, pathname } = useLocation();
  const parent = useApiHolder();
  const query = new URLSearchParams(search);
  const namespace = query.get('namespace') ?? undefined;
  const cluster = query.get('cluster') ?? undefined;
  const holder = useMemo<ApiHolder | undefined>(() => {
    const api = parent.get(kubernetesApiRef);
    if (!namespace || !api) return undefined;
    const scoped = new ScopedKubernetesApi(api, { namespace, cluster });
    return {
      get<T>(ref: ApiRef<T>) {
        return ref.id === kubernetesApiRef.id
          ? (scoped as unknown as T)
          : parent.get(ref);
      },
    };
  }, [parent, namespace, cluster]);
  if (!holder) return <>{props.children}</>;
  return (
    <>
      <Alert severity="info" data-testid="kubernetes-namespace-filter">
        Namespace <strong>{namespace}</strong>
        {cluster && (
          <>
            {' '}
            of cluster <strong>{cluster}</strong>
          </>
        )}{' '}
        only. <Link to={pathname}>Show every namespace</Link>
      </Alert>
      <ApiProvider apis={holder}>{props.children}</ApiProvider>
    </>
  );
}
