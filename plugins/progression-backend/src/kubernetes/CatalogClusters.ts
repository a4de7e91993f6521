import { AuthService, LoggerService } from '@backstage/backend-plugin-api';
import { CATALOG_FILTER_EXISTS } from '@backstage/catalog-client';
import { Entity } from '@backstage/catalog-model';
import { CatalogService } from '@backstage/plugin-catalog-node';
import {
  ANNOTATION_KUBERNETES_API_SERVER,
  ANNOTATION_KUBERNETES_API_SERVER_CA,
  ANNOTATION_KUBERNETES_AUTH_PROVIDER,
  ANNOTATION_KUBERNETES_SKIP_TLS_VERIFY,
} from '@backstage/plugin-kubernetes-common';
import { ClusterConfig } from '@progression-io/backstage-plugin-progression-node';
import { BACKEND_AUTH_PROVIDERS } from './authProviders';

/**
 * A cluster from a catalog Resource of type kubernetes-cluster, by the
 * rules of the Kubernetes plugin's catalog locator: the API server, its CA
 * and the auth provider from the annotations, every other `kubernetes.io/`
 * annotation as the strategy's metadata. A service account token never
 * comes from the catalog (the plugin refuses the serviceAccount provider
 * there); undefined, with the reason, for a Resource a promotion cannot
 * use.
 */
export function clusterOfResource(
  entity: Entity,
): { cluster: ClusterConfig } | { problem: string } {
  const annotations = entity.metadata.annotations ?? {};
  const name = entity.metadata.name;
  const url = annotations[ANNOTATION_KUBERNETES_API_SERVER];
  const authProvider = annotations[ANNOTATION_KUBERNETES_AUTH_PROVIDER];
  let parsed: URL | undefined;
  try {
    parsed = new URL(url ?? '');
  } catch {
    parsed = undefined;
  }
  if (!parsed || !['http:', 'https:'].includes(parsed.protocol)) {
    return {
      problem: `${ANNOTATION_KUBERNETES_API_SERVER} is not an http(s) URL`,
    };
  }
  if (
    authProvider === 'serviceAccount' ||
    !(BACKEND_AUTH_PROVIDERS as readonly string[]).includes(authProvider)
  ) {
    return {
      problem: `auth provider '${authProvider}' cannot be used from the catalog by promotions; use one of ${BACKEND_AUTH_PROVIDERS.filter(
        p => p !== 'serviceAccount',
      ).join(', ')}`,
    };
  }
  const authMetadata: Record<string, string> = {};
  for (const [key, value] of Object.entries(annotations)) {
    if (key.startsWith('kubernetes.io/') && key !== 'serviceAccountToken') {
      authMetadata[key] = value;
    }
  }
  return {
    cluster: {
      name,
      url: parsed.toString().replace(/\/$/, ''),
      authProvider,
      authMetadata,
      caData: annotations[ANNOTATION_KUBERNETES_API_SERVER_CA],
      skipTLSVerify:
        annotations[ANNOTATION_KUBERNETES_SKIP_TLS_VERIFY] === 'true',
      source: 'catalog',
    },
  };
}

/**
 * Puts the clusters a locator found (`source`) into the map: added, and
 * replaced only when they changed (a new object: its KubeConfig is made
 * again); its clusters that are gone are removed. Clusters from
 * configuration win over found ones of the same name.
 */
export function syncClusters(
  clusters: Map<string, ClusterConfig>,
  source: ClusterConfig['source'],
  found: ClusterConfig[],
) {
  const seen = new Set<string>();
  for (const cluster of found) {
    const existing = clusters.get(cluster.name);
    if (existing && existing.source !== source) continue;
    seen.add(cluster.name);
    if (JSON.stringify(existing) !== JSON.stringify(cluster)) {
      clusters.set(cluster.name, cluster);
    }
  }
  for (const [name, cluster] of clusters) {
    if (cluster.source === source && !seen.has(name)) clusters.delete(name);
  }
}

/**
 * The catalog's clusters, read into the configured clusters' map (those
 * configured win over a catalog cluster of the same name) and kept up to
 * date by `refresh`: added, changed, and removed when their Resource is.
 */
export class CatalogClusters {
  private readonly problems = new Map<string, string>();

  constructor(
    private readonly options: {
      catalog: CatalogService;
      auth: AuthService;
      logger: LoggerService;
      clusters: Map<string, ClusterConfig>;
    },
  ) {}

  async refresh(): Promise<void> {
    const { catalog, auth, logger, clusters } = this.options;
    const { items } = await catalog.getEntities(
      {
        filter: {
          kind: 'Resource',
          'spec.type': 'kubernetes-cluster',
          [`metadata.annotations.${ANNOTATION_KUBERNETES_API_SERVER}`]:
            CATALOG_FILTER_EXISTS,
          [`metadata.annotations.${ANNOTATION_KUBERNETES_AUTH_PROVIDER}`]:
            CATALOG_FILTER_EXISTS,
        },
      },
      { credentials: await auth.getOwnServiceCredentials() },
    );
    const found: ClusterConfig[] = [];
    for (const entity of items) {
      const read = clusterOfResource(entity);
      const name = entity.metadata.name;
      if ('problem' in read) {
        if (this.problems.get(name) !== read.problem) {
          logger.warn(
            `Ignoring kubernetes-cluster Resource ${name}: ${read.problem}`,
          );
        }
        this.problems.set(name, read.problem);
        continue;
      }
      this.problems.delete(name);
      found.push(read.cluster);
    }
    syncClusters(clusters, 'catalog', found);
  }
}
