import { ApiError } from './errors';
import { ResourceType, apiVersionOf } from './resources';
import { KubeObject, Store } from '../store/Store';

const stable = (v: unknown): string =>
  JSON.stringify(v, (_, value) =>
    value && typeof value === 'object' && !Array.isArray(value)
      ? Object.fromEntries(
          Object.entries(value).sort(([a], [b]) => a.localeCompare(b)),
        )
      : value,
  );

/** Deep equality by canonical JSON (key order does not matter). */
export const deepEqual = (a: unknown, b: unknown) => stable(a) === stable(b);

/**
 * The write path every request and controller goes through: defaults,
 * validation, generation and status rules as the API server applies them
 * (k8s.io/apiserver/pkg/registry/generic/registry/store.go and each kind's
 * strategy.go in pkg/registry/).
 */
export class ObjectService {
  constructor(readonly store: Store) {}

  private prepare(type: ResourceType, obj: KubeObject, namespace?: string) {
    obj.apiVersion = apiVersionOf(type);
    obj.kind = type.kind;
    obj.metadata ??= {} as KubeObject['metadata'];
    if (type.namespaced) {
      if (
        namespace &&
        obj.metadata.namespace &&
        obj.metadata.namespace !== namespace
      ) {
        throw ApiError.badRequest(
          `the namespace of the provided object does not match the namespace sent on the request`,
        );
      }
      obj.metadata.namespace = namespace ?? obj.metadata.namespace ?? 'default';
    } else {
      delete obj.metadata.namespace;
    }
    type.defaults?.(obj);
    const problems = type.validate?.(obj) ?? [];
    if (problems.length) {
      throw ApiError.invalid(type.kind, obj.metadata?.name ?? '', problems);
    }
  }

  create(
    type: ResourceType,
    input: KubeObject,
    namespace?: string,
  ): KubeObject {
    const obj = structuredClone(input);
    obj.metadata ??= {} as KubeObject['metadata'];
    if (!obj.metadata.name && typeof obj.metadata.generateName === 'string') {
      obj.metadata.name = `${obj.metadata.generateName}${randomSuffix()}`;
    }
    if (type.namespaced) {
      const ns = namespace ?? obj.metadata.namespace ?? 'default';
      if (!this.store.get('namespaces', undefined, ns)) {
        throw ApiError.notFound('namespaces', ns);
      }
    }
    delete obj.metadata.resourceVersion;
    delete obj.metadata.creationTimestamp;
    delete obj.metadata.deletionTimestamp;
    // The uid exists before defaulting: a Job's selector is built from it.
    obj.metadata.uid = this.store.newUid();
    this.prepare(type, obj, namespace);
    if (type.hasGeneration) obj.metadata.generation = 1;
    return this.store.create(type.plural, obj);
  }

  /**
   * Replaces the object (PUT). `subresource` is `status` for writes that may
   * change only the status; other writes may not change it.
   */
  update(
    type: ResourceType,
    input: KubeObject,
    namespace: string | undefined,
    name: string,
    subresource?: 'status',
  ): KubeObject {
    const existing = this.store.get(type.plural, namespace, name);
    if (!existing) throw ApiError.notFound(type.plural, name);
    if (input.metadata?.name && input.metadata.name !== name) {
      throw ApiError.badRequest(
        `the name of the object (${input.metadata.name}) does not match the name on the URL (${name})`,
      );
    }
    const obj = structuredClone(input);
    obj.metadata = { ...obj.metadata, name };
    if (subresource === 'status') {
      // Only status (and nothing else) changes through /status.
      const status = obj.status;
      Object.assign(obj, structuredClone(existing), { status });
      obj.metadata = {
        ...existing.metadata,
        resourceVersion: input.metadata?.resourceVersion,
      };
    } else if (type.hasStatus) {
      obj.status = existing.status;
    }
    this.prepare(type, obj, namespace);
    if (type.hasGeneration) {
      const counted = (o: KubeObject) =>
        type.generationCountsStatus ? { ...o, metadata: undefined } : o.spec;
      obj.metadata.generation =
        (existing.metadata.generation ?? 1) +
        (subresource !== 'status' && !deepEqual(counted(existing), counted(obj))
          ? 1
          : 0);
    }
    // Keep server-owned metadata.
    obj.metadata.uid = existing.metadata.uid;
    obj.metadata.creationTimestamp = existing.metadata.creationTimestamp;
    if (
      deepEqual(
        {
          ...existing,
          metadata: { ...existing.metadata, resourceVersion: undefined },
        },
        { ...obj, metadata: { ...obj.metadata, resourceVersion: undefined } },
      )
    ) {
      // A no-op write keeps the resourceVersion, as the API server does.
      const rv = input.metadata?.resourceVersion;
      if (rv && rv !== existing.metadata.resourceVersion) {
        throw ApiError.conflict(
          type.plural,
          name,
          'the object has been modified; please apply your changes to the latest version and try again',
        );
      }
      return existing;
    }
    return this.store.update(
      type.plural,
      obj,
      input.metadata?.resourceVersion || undefined,
    );
  }

  /** Reads, changes and writes back, retrying on a concurrent write. */
  mutate(
    type: ResourceType,
    namespace: string | undefined,
    name: string,
    change: (o: KubeObject) => KubeObject | void,
    subresource?: 'status',
  ): KubeObject {
    for (let attempt = 0; ; attempt++) {
      const current = this.store.get(type.plural, namespace, name);
      if (!current) throw ApiError.notFound(type.plural, name);
      const draft = structuredClone(current);
      const changed = change(draft) ?? draft;
      changed.metadata.resourceVersion = current.metadata.resourceVersion;
      try {
        return this.update(type, changed, namespace, name, subresource);
      } catch (e) {
        if (!(e instanceof ApiError && e.reason === 'Conflict') || attempt > 5)
          throw e;
      }
    }
  }

  delete(
    type: ResourceType,
    namespace: string | undefined,
    name: string,
  ): KubeObject {
    return this.store.delete(type.plural, namespace, name);
  }
}

const ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';
export function randomSuffix(length = 5): string {
  let s = '';
  for (let i = 0; i < length; i++) {
    s += ALPHABET[Math.floor(Math.random() * ALPHABET.length)];
  }
  return s;
}
