import { LoggerService } from '@backstage/backend-plugin-api';
import { v1 } from '@google-cloud/container';
import { ClusterConfig } from '@progression-io/backstage-plugin-progression-node';
import { GkeLocator } from '../config/types';
import { syncClusters } from './CatalogClusters';

type GkeCluster = {
  name?: string | null;
  endpoint?: string | null;
  resourceLabels?: Record<string, string> | null;
  masterAuth?: { clusterCaCertificate?: string | null } | null;
  controlPlaneEndpointsConfig?: {
    dnsEndpointConfig?: { endpoint?: string | null } | null;
  } | null;
};

/**
 * The clusters of the Kubernetes plugin's `gke` locators, listed through
 * Google's API (the `@google-cloud/container` client it uses) by its rules:
 * the resource labels to match, the public or DNS endpoint. Unlike the
 * plugin, the cluster's own CA from the listing is trusted, so TLS is
 * verified. Only `authProvider: googleServiceAccount` serves promotions
 * (the plugin's default, `google`, is the signed-in user's token): with
 * another, the locator is read and its clusters named as unusable.
 */
export class GkeClusters {
  constructor(
    private readonly options: {
      locators: GkeLocator[];
      clusters: Map<string, ClusterConfig>;
      logger: LoggerService;
      /** Google's client; made on first use otherwise. */
      client?: Pick<v1.ClusterManagerClient, 'listClusters'>;
    },
  ) {}

  private client?: Pick<v1.ClusterManagerClient, 'listClusters'>;

  async refresh(): Promise<void> {
    const { locators, clusters, logger } = this.options;
    this.client ??= this.options.client ?? new v1.ClusterManagerClient();
    const found: ClusterConfig[] = [];
    for (const locator of locators) {
      const parent = `projects/${locator.projectId}/locations/${locator.region}`;
      const [response] = await this.client.listClusters({ parent });
      for (const cluster of (response.clusters ?? []) as GkeCluster[]) {
        const labels = cluster.resourceLabels ?? {};
        if (
          !locator.matchingResourceLabels.every(
            ({ key, value }) => labels[key] === value,
          )
        ) {
          continue;
        }
        const dns =
          locator.endpointType === 'dns'
            ? cluster.controlPlaneEndpointsConfig?.dnsEndpointConfig?.endpoint
            : undefined;
        const host = dns ?? cluster.endpoint;
        if (!cluster.name || !host) {
          logger.warn(
            `Ignoring GKE cluster ${
              cluster.name ?? '(unnamed)'
            } of ${parent}: it has no endpoint`,
          );
          continue;
        }
        found.push({
          name: cluster.name,
          url: `https://${host}`,
          authProvider: locator.authProvider,
          caData: cluster.masterAuth?.clusterCaCertificate ?? undefined,
          skipTLSVerify: locator.skipTLSVerify,
          source: 'gke',
        });
      }
    }
    syncClusters(clusters, 'gke', found);
  }
}
