import { Watch } from '@kubernetes/client-node';

/**
 * The API server refused a watch (401 or 403): the account lacks the
 * verb, and no number of tries changes that. `code` makes it a lasting
 * failure for the engine.
 */
export class WatchRefusedError extends Error {
  name = 'WatchRefusedError';
  constructor(readonly code: number, resource: string, namespace: string) {
    super(
      `the API server answered ${code} ${
        code === 403 ? 'Forbidden' : 'Unauthorized'
      } to a watch: the account cannot watch resource "${resource}" in the namespace "${namespace}"`,
    );
  }
}

/** How long a failed watch waits before the caller reads again. */
const WATCH_RETRY_MS = 1000;

const statusOf = (e: unknown) =>
  (e as { statusCode?: unknown } | null)?.statusCode;

/**
 * One watch of the object `name` at `path` from `resourceVersion`: resolves
 * with what `judge` makes of the first ADDED or MODIFIED event it has an
 * answer for; with `onCancel()` when `signal` aborts; and with undefined
 * when the watch ends first (dropped, expired) or `until` passes, so the
 * caller reads the object again and decides whether to watch on. A watch
 * that fails (no connection, 5xx) resolves so only after a second, so
 * that a cluster that refuses watches is not asked again and again; one
 * the API server refuses (401, 403) rejects with a WatchRefusedError.
 */
export function watchOne<T, O = unknown>(options: {
  watch: Watch;
  path: string;
  name: string;
  resourceVersion: string | undefined;
  until: number;
  signal?: AbortSignal;
  judge: (object: O) => T | undefined;
  onCancel?: () => T | undefined;
  /** The resource and namespace watched, for a refusal's message. */
  what: { resource: string; namespace: string };
}): Promise<T | undefined> {
  const { watch, path, name, resourceVersion, until, signal, judge } = options;
  return new Promise((resolve, reject) => {
    let controller: AbortController | undefined;
    let settled = false;
    const timer = setTimeout(
      () => finish(undefined),
      Math.max(0, until - Date.now()),
    );
    const cancelled = () => finish(options.onCancel?.());
    function finish(value: T | undefined, error?: Error) {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', cancelled);
      controller?.abort();
      if (error) reject(error);
      else resolve(value);
    }
    /** The watch ended with `e`: refused, or failed and retried later. */
    function failed(e: unknown) {
      const code = statusOf(e);
      if (code === 401 || code === 403) {
        finish(
          undefined,
          new WatchRefusedError(
            code,
            options.what.resource,
            options.what.namespace,
          ),
        );
        return;
      }
      clearTimeout(timer);
      setTimeout(
        () => finish(undefined),
        Math.max(0, Math.min(WATCH_RETRY_MS, until - Date.now())),
      );
    }
    signal?.addEventListener('abort', cancelled);
    watch
      .watch(
        path,
        {
          fieldSelector: `metadata.name=${name}`,
          resourceVersion,
          allowWatchBookmarks: true,
        },
        (type, obj) => {
          if (type !== 'ADDED' && type !== 'MODIFIED') return;
          const answer = judge(obj as O);
          if (answer !== undefined) finish(answer);
        },
        (err: unknown) => (err ? failed(err) : finish(undefined)),
      )
      .then(c => {
        controller = c;
        if (settled) c.abort();
      }, failed);
  });
}
