import { Watch } from '@kubernetes/client-node';

/**
 * One watch of the object `name` at `path` from `resourceVersion`: resolves
 * with what `judge` makes of the first ADDED or MODIFIED event it has an
 * answer for; with `onCancel()` when `signal` aborts; and with undefined
 * when the watch ends first (dropped, expired) or `until` passes, so the
 * caller reads the object again and decides whether to watch on.
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
}): Promise<T | undefined> {
  const { watch, path, name, resourceVersion, until, signal, judge } = options;
  return new Promise(resolve => {
    let controller: AbortController | undefined;
    let settled = false;
    const timer = setTimeout(
      () => finish(undefined),
      Math.max(0, until - Date.now()),
    );
    const cancelled = () => finish(options.onCancel?.());
    function finish(value: T | undefined) {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', cancelled);
      controller?.abort();
      resolve(value);
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
        () => finish(undefined),
      )
      .then(
        c => {
          controller = c;
          if (settled) c.abort();
        },
        () => finish(undefined),
      );
  });
}
