import { groups } from './discovery';

const gvPath = (group: string, version: string) =>
  group ? `apis/${group}/${version}` : `api/${version}`;
const HASH = 'simulator1';

/**
 * OpenAPI v3 discovery (`/openapi/v3`) and one document per group-version,
 * enough for kubectl's client-side validation of `create -f` / `apply -f`:
 * each kind is an object schema tagged with its group-version-kind, whose
 * spec and status keep unknown fields. Field-level validation is the
 * server's job here (422 Invalid).
 */
export function openApiV3Root() {
  return {
    paths: Object.fromEntries(
      groups().map(g => [
        gvPath(g.group, g.version),
        {
          serverRelativeURL: `/openapi/v3/${gvPath(
            g.group,
            g.version,
          )}?hash=${HASH}`,
        },
      ]),
    ),
  };
}

export function openApiV3Document(path: string) {
  const g = groups().find(x => gvPath(x.group, x.version) === path);
  if (!g) return undefined;
  const prefix = g.group
    ? `io.k8s.api.${g.group.replace('.k8s.io', '').split('.')[0]}.${g.version}`
    : `io.k8s.api.core.${g.version}`;
  const loose = {
    type: 'object',
    'x-kubernetes-preserve-unknown-fields': true,
  };
  const schemas: Record<string, unknown> = {};
  for (const r of g.resources) {
    const gvk = [{ group: r.group, version: r.version, kind: r.kind }];
    schemas[`${prefix}.${r.kind}`] = {
      type: 'object',
      description: `${r.kind} (kube-simulator)`,
      properties: {
        apiVersion: { type: 'string' },
        kind: { type: 'string' },
        metadata: loose,
        spec: loose,
        status: loose,
        data: loose,
        stringData: loose,
        binaryData: loose,
        type: { type: 'string' },
        immutable: { type: 'boolean' },
      },
      'x-kubernetes-group-version-kind': gvk,
    };
    schemas[`${prefix}.${r.kind}List`] = {
      type: 'object',
      properties: {
        apiVersion: { type: 'string' },
        kind: { type: 'string' },
        metadata: loose,
        items: { type: 'array', items: loose },
      },
      'x-kubernetes-group-version-kind': [{ ...gvk[0], kind: `${r.kind}List` }],
    };
  }
  // Operations that accept `fieldValidation`: kubectl then leaves field
  // validation to the server instead of asking for OpenAPI v2.
  const fieldValidation = {
    name: 'fieldValidation',
    in: 'query',
    schema: { type: 'string', uniqueItems: true },
  };
  const paths: Record<string, unknown> = {};
  for (const r of g.resources) {
    const gvk = { group: r.group, version: r.version, kind: r.kind };
    const collection = `/${path}/${
      r.namespaced ? 'namespaces/{namespace}/' : ''
    }${r.plural}`;
    const op = (action: string) => ({
      operationId: `${action}${r.kind}`,
      parameters: [fieldValidation],
      responses: { '200': { description: 'OK' } },
      'x-kubernetes-action': action,
      'x-kubernetes-group-version-kind': gvk,
    });
    paths[collection] = { post: op('post') };
    paths[`${collection}/{name}`] = { put: op('put'), patch: op('patch') };
  }
  return {
    openapi: '3.0.0',
    info: { title: 'Kubernetes (kube-simulator)', version: 'v1.32.4' },
    paths,
    components: { schemas },
  };
}
