/**
 * Runs `work` with a signal that aborts when `ms` pass or `signal` aborts,
 * and settles then whether or not `work` heeds it: a call that never
 * answers cannot hold its caller. Rejects with an Error (`TimeoutError`)
 * carrying `message` when the time is up, with `signal.reason` when the
 * caller aborted.
 */
export function withTimeout<T>(
  work: (signal: AbortSignal) => Promise<T>,
  ms: number,
  message: string,
  signal?: AbortSignal,
): Promise<T> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const controller = new AbortController();
    const timer = setTimeout(() => {
      const error = new Error(message);
      error.name = 'TimeoutError';
      controller.abort(error);
    }, ms);
    const cancelled = () => controller.abort(signal!.reason);
    const settled = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', cancelled);
    };
    signal?.addEventListener('abort', cancelled);
    controller.signal.addEventListener('abort', () => {
      settled();
      reject(controller.signal.reason);
    });
    work(controller.signal).then(
      value => {
        settled();
        resolve(value);
      },
      error => {
        settled();
        reject(controller.signal.aborted ? controller.signal.reason : error);
      },
    );
  });
}
