import {
  ConfigurationOptions,
  Observable,
  RequestContext,
  ResponseContext,
} from '@kubernetes/client-node';
import { StageLocation } from '@progression-io/backstage-plugin-progression-node';
import { withTimeout } from '../util/withTimeout';

/**
 * One call to a stage's cluster, `what` in words (for the error when it
 * does not answer): `send` makes it with the options it is given, which
 * carry the signal that aborts it. Aborted and failed after the caller's
 * time limit; rejected with `signal`'s reason when it aborts first.
 */
export type ClusterRequest = <T>(
  stage: StageLocation,
  what: string,
  send: (options: ConfigurationOptions) => Promise<T>,
  signal?: AbortSignal,
) => Promise<T>;

/** Cluster access whose every call is bounded in time: KubernetesWorkloads. */
export interface BoundedClusterAccess {
  readonly request: ClusterRequest;
}

/** The bound when nobody configured one. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

/**
 * `options` (or none) with a middleware that changes each request with
 * `change` before it is sent.
 */
export function beforeSend(
  change: (context: RequestContext) => void,
  options?: ConfigurationOptions,
): ConfigurationOptions {
  return {
    ...options,
    middleware: [
      ...(options?.middleware ?? []),
      {
        pre: (context: RequestContext) => {
          change(context);
          return new Observable(Promise.resolve(context));
        },
        post: (context: ResponseContext) =>
          new Observable(Promise.resolve(context)),
      },
    ],
    middlewareMergeStrategy: 'append',
  };
}

/** Options that make a client-node call send `signal` with its request. */
const abortable = (signal: AbortSignal) =>
  beforeSend(context => context.setSignal(signal));

/**
 * Cluster calls that fail after `timeoutMs`, naming the call, the
 * namespace and the cluster: a cluster that never answers cannot hold a
 * promotion, a gate or a page.
 */
export function boundedRequest(timeoutMs: number): ClusterRequest {
  return (stage, what, send, signal) =>
    withTimeout(
      abort => send(abortable(abort)),
      timeoutMs,
      `${what} in namespace ${stage.namespace} of cluster ${
        stage.cluster.name
      }: no answer in ${timeoutMs / 1000} s`,
      signal,
    );
}

function isBounded(access: object): access is BoundedClusterAccess {
  return (
    typeof (access as Partial<BoundedClusterAccess>).request === 'function'
  );
}

/**
 * The bounded caller of a cluster access. Gates get KubernetesWorkloads
 * typed as the -node StageWorkloads, which does not show `request`: its
 * own caller (with the configured time limit) is used when it is there,
 * and another implementation's calls get the default limit.
 */
export function requestOf(access: object): ClusterRequest {
  return isBounded(access)
    ? access.request.bind(access)
    : boundedRequest(DEFAULT_REQUEST_TIMEOUT_MS);
}
