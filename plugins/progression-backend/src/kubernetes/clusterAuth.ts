import { LoggerService } from '@backstage/backend-plugin-api';
import { Config, ConfigReader } from '@backstage/config';
import { KubeConfig, User } from '@kubernetes/client-node';
import {
  AnonymousStrategy,
  AwsIamStrategy,
  AzureIdentityStrategy,
  GoogleServiceAccountStrategy,
  ServiceAccountStrategy,
} from '@backstage/plugin-kubernetes-backend';
import { ANNOTATION_KUBERNETES_AUTH_PROVIDER } from '@backstage/plugin-kubernetes-common';
import {
  AuthenticationStrategy,
  ClusterDetails,
  KubernetesCredential,
} from '@backstage/plugin-kubernetes-node';
import { ClusterConfig } from '@progression-io/backstage-plugin-progression-node';
import { authProviderProblem } from './authProviders';

/** Creates the strategy of an auth provider, on first use. */
type StrategyFactory = () => AuthenticationStrategy;

/**
 * The Kubernetes plugin's own authentication strategies, by auth provider,
 * as its backend builds them (`@backstage/plugin-kubernetes-backend`): no
 * credential code of Progression's. Each is made when a cluster first
 * uses it. `overrides` replaces some (tests stub a cloud's token provider
 * at its boundary this way).
 */
export class ClusterAuth {
  private readonly made = new Map<string, AuthenticationStrategy>();
  private readonly factories: Record<string, StrategyFactory>;

  constructor(
    options: {
      config?: Config;
      logger?: LoggerService;
      overrides?: Record<string, AuthenticationStrategy>;
    } = {},
  ) {
    const config = options.config ?? new ConfigReader({});
    this.factories = {
      serviceAccount: () => new ServiceAccountStrategy(),
      aws: () => new AwsIamStrategy({ config }),
      azure: () => {
        if (!options.logger) {
          throw new Error('the azure auth provider needs a logger');
        }
        return new AzureIdentityStrategy(options.logger);
      },
      googleServiceAccount: () => new GoogleServiceAccountStrategy({ config }),
      localKubectlProxy: () => new AnonymousStrategy(),
    };
    for (const [provider, strategy] of Object.entries(
      options.overrides ?? {},
    )) {
      this.made.set(provider, strategy);
    }
  }

  /** The strategy of `provider`; an error naming it when there is none. */
  strategy(provider: string): AuthenticationStrategy {
    let strategy = this.made.get(provider);
    if (!strategy) {
      const factory = this.factories[provider];
      if (!factory) {
        throw new Error(
          authProviderProblem(provider) ??
            `unsupported auth provider '${provider}'`,
        );
      }
      strategy = factory();
      this.made.set(provider, strategy);
    }
    return strategy;
  }
}

/** A cluster as the Kubernetes plugin's strategies take it. */
export function clusterDetails(cluster: ClusterConfig): ClusterDetails {
  return {
    name: cluster.name,
    url: cluster.url,
    skipTLSVerify: cluster.skipTLSVerify,
    caData: cluster.caData,
    caFile: cluster.caFile,
    authMetadata: {
      [ANNOTATION_KUBERNETES_AUTH_PROVIDER]: cluster.authProvider,
      ...cluster.authMetadata,
      ...(cluster.serviceAccountToken && {
        serviceAccountToken: cluster.serviceAccountToken,
      }),
    },
  };
}

/** How long a credential is reused before the strategy is asked again. */
const CREDENTIAL_REUSE_MS = 60_000;

/**
 * One KubeConfig per cluster whose every request (API calls and watches)
 * carries the credential its auth provider's strategy gives. A credential
 * is reused for a minute, well inside every provider's lifetime (EKS
 * tokens last 15 minutes, Azure's and Google's an hour, and the strategies
 * renew their own ahead of that): some strategies build a client per call.
 * A strategy that fails fails the request, naming the cluster and provider.
 */
export function clusterKubeConfig(
  cluster: ClusterConfig,
  auth: ClusterAuth,
): KubeConfig {
  const details = clusterDetails(cluster);
  const userName = `progression-${cluster.name}`;
  let reused:
    | { at: number; credential: Promise<KubernetesCredential> }
    | undefined;
  const credential = () => {
    if (!reused || Date.now() - reused.at >= CREDENTIAL_REUSE_MS) {
      const current = {
        at: Date.now(),
        credential: Promise.resolve()
          .then(() =>
            auth.strategy(cluster.authProvider).getCredential(details, {}),
          )
          .catch(e => {
            // Not kept: the next request asks again.
            if (reused === current) reused = undefined;
            throw new Error(
              `cannot get a credential for cluster ${
                cluster.name
              } (authProvider ${cluster.authProvider}): ${
                (e as Error)?.message ?? e
              }`,
            );
          }),
      };
      reused = current;
    }
    return reused.credential;
  };
  const kc = new KubeConfig();
  kc.loadFromClusterAndUser(
    {
      name: cluster.name,
      server: cluster.url,
      caData: cluster.caData,
      caFile: cluster.caFile,
      skipTLSVerify: cluster.skipTLSVerify,
    },
    { name: userName },
  );
  kc.addAuthenticator({
    isAuthProvider: (user: User) => user.name === userName,
    applyAuthentication: async (_user, opts) => {
      const given = await credential();
      if (given.type === 'bearer token') {
        opts.headers = {
          ...opts.headers,
          Authorization: `Bearer ${given.token}`,
        };
      } else if (given.type === 'x509 client certificate') {
        opts.cert = given.cert;
        opts.key = given.key;
      }
    },
  });
  return kc;
}
