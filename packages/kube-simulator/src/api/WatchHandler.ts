import http from 'node:http';
import { ApiError } from './errors';
import { Faults } from './Faults';
import { parseFieldSelector } from './fieldSelector';
import { matchesLabelSelector, parseLabelSelector } from './labelSelector';
import { ResourceType, apiVersionOf } from './resources';
import { KubeObject, Store, StoreEvent } from '../store/Store';

export interface WatchHandlerOptions {
  store: Store;
  faults: Faults;
  /** How often a watch that asked for bookmarks gets one. */
  bookmarkIntervalMs?: number;
}

/**
 * The API server's watches (`?watch=true`) and the connections they hold
 * open, so that the server can end or cut them all.
 */
export class WatchHandler {
  private readonly connections = new Set<http.ServerResponse>();

  constructor(private readonly options: WatchHandlerOptions) {}

  get count() {
    return this.connections.size;
  }

  /** Ends every open watch, as a server that shuts down does. */
  endAll() {
    for (const res of this.connections) res.end();
    this.connections.clear();
  }

  /** Cuts every open watch, as a dropped connection would. */
  dropAll() {
    for (const res of this.connections) res.destroy();
    this.connections.clear();
  }

  /**
   * A watch: newline-delimited JSON events. Without a resourceVersion (or
   * "0") it starts with ADDED events for what exists; with one it replays
   * what happened since, or answers 410 Gone (as an ERROR event) when that
   * history is no longer kept.
   */
  serve(
    type: ResourceType,
    namespace: string | undefined,
    url: URL,
    res: http.ServerResponse,
  ) {
    const { store } = this.options;
    const requirements = parseLabelSelector(
      url.searchParams.get('labelSelector') ?? '',
    );
    const fields = parseFieldSelector(url.searchParams.get('fieldSelector'));
    const matches = (o: KubeObject) =>
      (!type.namespaced ||
        namespace === undefined ||
        o.metadata.namespace === namespace) &&
      matchesLabelSelector(requirements, o.metadata.labels) &&
      fields(o);

    res.writeHead(200, {
      'Content-Type': 'application/json',
      'Transfer-Encoding': 'chunked',
      'Cache-Control': 'no-cache',
    });
    // Send the headers now: clients (kubectl's rollout status among them)
    // wait for them before they treat the watch as open.
    res.flushHeaders();
    const send = (event: unknown) => res.write(`${JSON.stringify(event)}\n`);

    const rvParam = url.searchParams.get('resourceVersion');
    const since = rvParam && rvParam !== '0' ? Number(rvParam) : undefined;
    if (
      since !== undefined &&
      (Number.isNaN(since) || !store.eventsSince(since))
    ) {
      send({
        type: 'ERROR',
        object: ApiError.gone(
          `too old resource version: ${rvParam} (${store.oldestResumableVersion})`,
        ).toStatus(),
      });
      res.end();
      return;
    }
    if (since === undefined) {
      for (const o of store
        .list(type.plural, type.namespaced ? namespace : undefined)
        .filter(matches)) {
        send({ type: 'ADDED', object: o });
      }
    } else {
      for (const e of store.eventsSince(since)!) {
        if (e.resource === type.plural && matches(e.object))
          send({ type: e.type, object: e.object });
      }
    }

    this.connections.add(res);
    const unsubscribe = store.subscribe((e: StoreEvent) => {
      if (e.resource === type.plural && matches(e.object)) {
        send({ type: e.type, object: e.object });
      }
    });
    const timers: NodeJS.Timeout[] = [];
    const end = () => {
      unsubscribe();
      timers.forEach(t => clearTimeout(t));
      this.connections.delete(res);
      if (!res.writableEnded) res.end();
    };
    res.on('close', end);
    const timeout = Number(url.searchParams.get('timeoutSeconds'));
    if (timeout > 0) timers.push(setTimeout(end, timeout * 1000));
    const drop = this.options.faults.dropWatchesAfterMs;
    if (drop !== undefined)
      timers.push(
        setTimeout(() => {
          end();
          res.destroy();
        }, drop),
      );
    if (url.searchParams.get('allowWatchBookmarks') === 'true') {
      const interval = setInterval(() => {
        send({
          type: 'BOOKMARK',
          object: {
            kind: type.kind,
            apiVersion: apiVersionOf(type),
            metadata: { resourceVersion: String(store.currentResourceVersion) },
          },
        });
      }, this.options.bookmarkIntervalMs ?? 30_000);
      timers.push(interval as unknown as NodeJS.Timeout);
      res.on('close', () => clearInterval(interval));
    }
  }
}
