type Sync = (namespace: string, name: string) => void;

/**
 * The controllers' work queue, as client-go's workqueue: objects are queued
 * by resource/namespace/name when anything they depend on changes, or after
 * a delay for time-based transitions (pods becoming ready, progress
 * deadlines, Jobs finishing). A key queued again before its sync runs is
 * synced once, with the state of that moment.
 */
export class WorkQueue {
  private readonly keys = new Set<string>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly syncs = new Map<string, Sync>();
  private scheduled = false;
  private stopped = false;

  /** Makes `sync` the handler of the queued objects of `resource` (a plural). */
  handle(resource: string, sync: Sync) {
    this.syncs.set(resource, sync);
  }

  enqueue(
    resource: string,
    namespace: string | undefined,
    name: string,
    delayMs = 0,
  ) {
    if (this.stopped) return;
    if (delayMs > 0) {
      const t = setTimeout(() => {
        this.timers.delete(t);
        this.enqueue(resource, namespace, name);
      }, delayMs);
      t.unref?.();
      this.timers.add(t);
      return;
    }
    this.keys.add(`${resource}/${namespace ?? ''}/${name}`);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.drain());
    }
  }

  stop() {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.keys.clear();
  }

  private drain() {
    this.scheduled = false;
    // Yield to I/O now and then, so that requests are answered while a large
    // rollout converges.
    let budget = 2000;
    while (this.keys.size && budget-- > 0 && !this.stopped) {
      const key = this.keys.values().next().value as string;
      this.keys.delete(key);
      const [resource, namespace, ...rest] = key.split('/');
      const name = rest.join('/');
      try {
        this.syncs.get(resource)?.(namespace, name);
      } catch {
        // A failed sync is retried, as a controller's work queue does.
        this.enqueue(resource, namespace, name, 200);
      }
    }
    if (this.keys.size && !this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.drain());
    }
  }
}
