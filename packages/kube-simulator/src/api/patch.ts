import { applyPatch, Operation } from 'fast-json-patch';
import { ApiError } from './errors';

const isObject = (v: unknown): v is Record<string, any> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** RFC 7386 JSON merge patch. */
export function mergePatch(target: any, patch: any): any {
  if (!isObject(patch)) return structuredClone(patch);
  const result: Record<string, any> = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete result[k];
    else result[k] = mergePatch(result[k], v);
  }
  return result;
}

/** RFC 6902 JSON patch; a failing `test` or a bad path is 422 / 400. */
export function jsonPatch(target: any, ops: Operation[]): any {
  if (!Array.isArray(ops)) {
    throw ApiError.badRequest('a JSON patch must be an array of operations');
  }
  try {
    return applyPatch(structuredClone(target), ops, true, false).newDocument;
  } catch (e) {
    throw new ApiError(
      422,
      'Invalid',
      `the server rejected our request due to an error in our request: ${
        (e as Error).message
      }`,
    );
  }
}

/**
 * Merge keys of the lists the plugins and kubectl patch, from the
 * `patchMergeKey` tags of k8s.io/api/core/v1/types.go and apps/v1/types.go.
 * Other lists are replaced.
 */
const MERGE_KEYS: Record<string, string> = {
  containers: 'name',
  initContainers: 'name',
  ephemeralContainers: 'name',
  env: 'name',
  volumes: 'name',
  volumeMounts: 'mountPath',
  imagePullSecrets: 'name',
  conditions: 'type',
  ownerReferences: 'uid',
  hostAliases: 'ip',
  tolerations: 'key',
  topologySpreadConstraints: 'topologyKey',
};

function portsKey(item: any): string {
  return 'containerPort' in (item ?? {}) ? 'containerPort' : 'port';
}

/**
 * Strategic merge patch, as k8s.io/apimachinery/pkg/util/strategicpatch
 * applies it for the fields above: maps merge, `null` deletes, lists with a
 * merge key merge by it, `$patch: replace|delete`, `$retainKeys`,
 * `$setElementOrder/<list>` and `$deleteFromPrimitiveList/<list>`.
 */
export function strategicMergePatch(target: any, patch: any): any {
  if (!isObject(patch)) return structuredClone(patch);
  if (patch.$patch === 'replace') {
    const { $patch: _, ...rest } = patch;
    return structuredClone(rest);
  }
  if (patch.$patch === 'delete') return undefined;

  let result: Record<string, any> = isObject(target) ? { ...target } : {};
  const order: Record<string, any[]> = {};
  for (const [k, v] of Object.entries(patch)) {
    if (k === '$patch') continue;
    if (k === '$retainKeys') continue;
    if (k.startsWith('$setElementOrder/')) {
      order[k.slice('$setElementOrder/'.length)] = v as any[];
      continue;
    }
    if (k.startsWith('$deleteFromPrimitiveList/')) {
      const list = k.slice('$deleteFromPrimitiveList/'.length);
      result[list] = (result[list] ?? []).filter(
        (x: unknown) => !(v as unknown[]).includes(x),
      );
      continue;
    }
    if (v === null) {
      delete result[k];
    } else if (Array.isArray(v)) {
      const key = k === 'ports' ? portsKey(v[0]) : MERGE_KEYS[k];
      result[k] =
        key && Array.isArray(result[k])
          ? mergeList(result[k], v, key)
          : mergeOrReplaceList(v);
    } else if (isObject(v)) {
      const merged = strategicMergePatch(result[k], v);
      if (merged === undefined) delete result[k];
      else result[k] = merged;
    } else {
      result[k] = v;
    }
  }
  if (Array.isArray(patch.$retainKeys)) {
    const keep = new Set<string>(patch.$retainKeys);
    result = Object.fromEntries(
      Object.entries(result).filter(([k]) => keep.has(k)),
    );
  }
  for (const [list, wanted] of Object.entries(order)) {
    const key = list === 'ports' ? portsKey(wanted[0]) : MERGE_KEYS[list];
    if (!key || !Array.isArray(result[list])) continue;
    const position = (item: any) => {
      const i = wanted.findIndex(w => w?.[key] === item?.[key]);
      return i === -1 ? Number.MAX_SAFE_INTEGER : i;
    };
    result[list] = [...result[list]].sort((a, b) => position(a) - position(b));
  }
  return result;
}

function mergeOrReplaceList(items: any[]): any[] {
  return items
    .filter(i => !(isObject(i) && i.$patch === 'delete'))
    .map(i => (isObject(i) ? strategicMergePatch(undefined, i) : i));
}

function mergeList(current: any[], patch: any[], key: string): any[] {
  if (patch.some(i => isObject(i) && i.$patch === 'replace')) {
    return mergeOrReplaceList(
      patch.filter(i => !(isObject(i) && i.$patch === 'replace')),
    );
  }
  const result = current.map(i => structuredClone(i));
  for (const item of patch) {
    if (!isObject(item)) continue;
    const index = result.findIndex(r => r?.[key] === item[key]);
    if (item.$patch === 'delete') {
      if (index !== -1) result.splice(index, 1);
      continue;
    }
    if (index === -1) result.push(strategicMergePatch(undefined, item));
    else result[index] = strategicMergePatch(result[index], item);
  }
  return result;
}

export function applyPatchByContentType(
  contentType: string,
  target: any,
  body: any,
): any {
  const type = contentType.split(';')[0].trim();
  switch (type) {
    case 'application/json-patch+json':
      return jsonPatch(target, body);
    case 'application/merge-patch+json':
      return mergePatch(target, body);
    case 'application/strategic-merge-patch+json':
      return strategicMergePatch(target, body);
    case 'application/apply-patch+yaml':
      // Server-side apply is approximated by a strategic merge of the intent.
      return strategicMergePatch(target, body);
    default:
      throw ApiError.unsupportedMediaType(contentType);
  }
}
