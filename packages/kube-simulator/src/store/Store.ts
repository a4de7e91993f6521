import { ApiError } from '../api/errors';

/** A stored Kubernetes object: metadata plus whatever the kind has. */
export type KubeObject = {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    generation?: number;
    creationTimestamp?: string;
    deletionTimestamp?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: Array<{
      apiVersion: string;
      kind: string;
      name: string;
      uid: string;
      controller?: boolean;
      blockOwnerDeletion?: boolean;
    }>;
    [key: string]: unknown;
  };
  [key: string]: any;
};

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface StoreEvent {
  type: WatchEventType;
  resource: string;
  object: KubeObject;
  resourceVersion: number;
}

type Listener = (event: StoreEvent) => void;

/** How many events are kept for watches that resume; older ones get 410. */
const DEFAULT_HISTORY = 20_000;

/**
 * The simulator's etcd: objects by resource, namespace and name, one global
 * resourceVersion counter, and a bounded history of events so that a watch
 * can resume from a resourceVersion (or get 410 Gone when it is too old).
 */
export class Store {
  private readonly objects = new Map<string, Map<string, KubeObject>>();
  private readonly history: StoreEvent[] = [];
  private readonly listeners = new Set<Listener>();
  private revision = 1;
  private uidCounter = 0;

  constructor(private readonly historyLimit = DEFAULT_HISTORY) {}

  get currentResourceVersion(): number {
    return this.revision;
  }

  /** The oldest resourceVersion a watch can still resume from. */
  get oldestResumableVersion(): number {
    return this.history.length
      ? this.history[0].resourceVersion - 1
      : this.revision;
  }

  private bucket(resource: string) {
    let map = this.objects.get(resource);
    if (!map) {
      map = new Map();
      this.objects.set(resource, map);
    }
    return map;
  }

  private static key(namespace: string | undefined, name: string) {
    return `${namespace ?? ''}/${name}`;
  }

  get(resource: string, namespace: string | undefined, name: string) {
    const obj = this.objects.get(resource)?.get(Store.key(namespace, name));
    return obj ? structuredClone(obj) : undefined;
  }

  list(
    resource: string,
    namespace?: string,
    predicate?: (o: KubeObject) => boolean,
  ): KubeObject[] {
    const all = [...(this.objects.get(resource)?.values() ?? [])];
    return all
      .filter(
        o => namespace === undefined || o.metadata.namespace === namespace,
      )
      .filter(o => !predicate || predicate(o))
      .sort((a, b) =>
        `${a.metadata.namespace ?? ''}/${a.metadata.name}`.localeCompare(
          `${b.metadata.namespace ?? ''}/${b.metadata.name}`,
        ),
      )
      .map(o => structuredClone(o));
  }

  newUid(): string {
    this.uidCounter += 1;
    const hex = this.uidCounter.toString(16).padStart(12, '0');
    return `00000000-0000-4000-8000-${hex}`;
  }

  create(resource: string, obj: KubeObject): KubeObject {
    const map = this.bucket(resource);
    const key = Store.key(obj.metadata.namespace, obj.metadata.name);
    if (map.has(key)) {
      throw ApiError.alreadyExists(resource, obj.metadata.name);
    }
    const stored = structuredClone(obj);
    stored.metadata.uid ??= this.newUid();
    stored.metadata.creationTimestamp ??= new Date().toISOString();
    return this.commit(resource, 'ADDED', stored, key);
  }

  /**
   * Replaces an object. With `expectedResourceVersion` set the write is a
   * compare-and-set: a stale version is a 409 Conflict.
   */
  update(
    resource: string,
    obj: KubeObject,
    expectedResourceVersion?: string,
  ): KubeObject {
    const map = this.bucket(resource);
    const key = Store.key(obj.metadata.namespace, obj.metadata.name);
    const existing = map.get(key);
    if (!existing) {
      throw ApiError.notFound(resource, obj.metadata.name);
    }
    if (
      expectedResourceVersion &&
      expectedResourceVersion !== existing.metadata.resourceVersion
    ) {
      throw ApiError.conflict(
        resource,
        obj.metadata.name,
        'the object has been modified; please apply your changes to the latest version and try again',
      );
    }
    const stored = structuredClone(obj);
    stored.metadata.uid = existing.metadata.uid;
    stored.metadata.creationTimestamp = existing.metadata.creationTimestamp;
    return this.commit(resource, 'MODIFIED', stored, key);
  }

  delete(resource: string, namespace: string | undefined, name: string) {
    const map = this.bucket(resource);
    const key = Store.key(namespace, name);
    const existing = map.get(key);
    if (!existing) {
      throw ApiError.notFound(resource, name);
    }
    map.delete(key);
    this.revision += 1;
    existing.metadata.resourceVersion = String(this.revision);
    this.emit({
      type: 'DELETED',
      resource,
      object: existing,
      resourceVersion: this.revision,
    });
    return structuredClone(existing);
  }

  private commit(
    resource: string,
    type: WatchEventType,
    stored: KubeObject,
    key: string,
  ): KubeObject {
    this.revision += 1;
    stored.metadata.resourceVersion = String(this.revision);
    this.bucket(resource).set(key, stored);
    this.emit({
      type,
      resource,
      object: stored,
      resourceVersion: this.revision,
    });
    return structuredClone(stored);
  }

  private emit(event: StoreEvent) {
    this.history.push(event);
    if (this.history.length > this.historyLimit) {
      this.history.splice(0, this.history.length - this.historyLimit);
    }
    for (const listener of [...this.listeners]) {
      listener(event);
    }
  }

  /** Events after `resourceVersion`, or undefined when they are no longer kept. */
  eventsSince(resourceVersion: number): StoreEvent[] | undefined {
    if (resourceVersion < this.oldestResumableVersion) {
      return undefined;
    }
    return this.history.filter(e => e.resourceVersion > resourceVersion);
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
