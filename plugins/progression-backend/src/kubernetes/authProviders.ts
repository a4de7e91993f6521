/**
 * The Kubernetes plugin's auth providers that act as the backend itself,
 * which is what a promotion does: it runs in the backend, long after the
 * request that started it.
 */
export const BACKEND_AUTH_PROVIDERS = [
  'serviceAccount',
  'aws',
  'azure',
  'googleServiceAccount',
  'localKubectlProxy',
] as const;

/**
 * The Kubernetes plugin's providers that send the signed-in user's own
 * token from the browser: a promotion has no user's browser behind it.
 */
export const USER_AUTH_PROVIDERS: Record<string, string> = {
  google: 'googleServiceAccount',
  aks: 'azure',
  oidc: 'serviceAccount',
};
