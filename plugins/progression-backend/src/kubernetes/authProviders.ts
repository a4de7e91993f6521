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

/**
 * Why a promotion cannot use a cluster with `authProvider`, or undefined
 * when it can.
 */
export function authProviderProblem(authProvider: string): string | undefined {
  if ((BACKEND_AUTH_PROVIDERS as readonly string[]).includes(authProvider)) {
    return undefined;
  }
  const instead = USER_AUTH_PROVIDERS[authProvider];
  if (instead) {
    return `'${authProvider}' sends the signed-in user's own token from the browser, and a promotion runs in the backend without one; use '${instead}'`;
  }
  return `'${authProvider}' is not supported; use one of ${BACKEND_AUTH_PROVIDERS.join(
    ', ',
  )}`;
}
