import { KubeConfig } from '@kubernetes/client-node';
import { ClusterConfig } from '@internal/backstage-plugin-progression-node';

/** One KubeConfig per configured cluster, service-account token auth. */
export function clusterKubeConfig(cluster: ClusterConfig): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromClusterAndUser(
    {
      name: cluster.name,
      server: cluster.url,
      caData: cluster.caData,
      skipTLSVerify: cluster.skipTLSVerify,
    },
    { name: `progression-${cluster.name}`, token: cluster.serviceAccountToken },
  );
  return kc;
}
