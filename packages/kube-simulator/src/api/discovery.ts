import { RESOURCES, ResourceType } from './resources';

export const SERVER_VERSION = {
  major: '1',
  minor: '32',
  gitVersion: 'v1.32.4-progression-simulator',
  gitCommit: '0000000000000000000000000000000000000000',
  gitTreeState: 'clean',
  buildDate: '2026-01-01T00:00:00Z',
  goVersion: 'go1.23.8',
  compiler: 'gc',
  platform: 'linux/amd64',
};

const verbsOf = (t: ResourceType) =>
  t.derive
    ? ['get', 'list']
    : [
        'create',
        'delete',
        'deletecollection',
        'get',
        'list',
        'patch',
        'update',
        'watch',
      ];

export function groups(): Array<{
  group: string;
  version: string;
  resources: ResourceType[];
}> {
  const byKey = new Map<
    string,
    { group: string; version: string; resources: ResourceType[] }
  >();
  for (const r of RESOURCES) {
    const key = `${r.group}/${r.version}`;
    if (!byKey.has(key))
      byKey.set(key, { group: r.group, version: r.version, resources: [] });
    byKey.get(key)!.resources.push(r);
  }
  return [...byKey.values()];
}

/** GET /api/v1, /apis/{group}/{version}: APIResourceList. */
export function resourceList(group: string, version: string) {
  const g = groups().find(x => x.group === group && x.version === version);
  if (!g) return undefined;
  const resources = g.resources.flatMap(r => [
    {
      name: r.plural,
      singularName: r.singular,
      namespaced: r.namespaced,
      kind: r.kind,
      verbs: verbsOf(r),
      ...(r.shortNames.length && { shortNames: r.shortNames }),
      ...(r.categories && { categories: r.categories }),
    },
    ...r.subresources.map(sub => ({
      name: `${r.plural}/${sub}`,
      singularName: '',
      namespaced: r.namespaced,
      kind: sub === 'scale' ? 'Scale' : r.kind,
      ...(sub === 'scale' && { group: 'autoscaling', version: 'v1' }),
      verbs: sub === 'log' ? ['get'] : ['get', 'patch', 'update'],
    })),
  ]);
  return {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion: group ? `${group}/${version}` : version,
    resources,
  };
}

export function apiVersions(serverAddress: string) {
  return {
    kind: 'APIVersions',
    versions: ['v1'],
    serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }],
  };
}

export function apiGroupList() {
  return {
    kind: 'APIGroupList',
    apiVersion: 'v1',
    groups: groups()
      .filter(g => g.group)
      .map(g => {
        const gv = {
          groupVersion: `${g.group}/${g.version}`,
          version: g.version,
        };
        return { name: g.group, versions: [gv], preferredVersion: gv };
      }),
  };
}

/**
 * Aggregated discovery (apidiscovery.k8s.io/v2), which kubectl asks for
 * first; it saves one request per group.
 */
export function aggregatedDiscovery(core: boolean) {
  return {
    kind: 'APIGroupDiscoveryList',
    apiVersion: 'apidiscovery.k8s.io/v2',
    metadata: {},
    items: groups()
      .filter(g => (core ? !g.group : !!g.group))
      .map(g => ({
        metadata: { name: g.group, creationTimestamp: null },
        versions: [
          {
            version: g.version,
            freshness: 'Current',
            resources: g.resources.map(r => ({
              resource: r.plural,
              responseKind: {
                group: r.group,
                version: r.version,
                kind: r.kind,
              },
              scope: r.namespaced ? 'Namespaced' : 'Cluster',
              singularResource: r.singular,
              verbs: verbsOf(r),
              ...(r.shortNames.length && { shortNames: r.shortNames }),
              ...(r.categories && { categories: r.categories }),
              subresources: r.subresources.map(sub => ({
                subresource: sub,
                responseKind:
                  sub === 'scale'
                    ? { group: 'autoscaling', version: 'v1', kind: 'Scale' }
                    : { group: r.group, version: r.version, kind: r.kind },
                verbs: sub === 'log' ? ['get'] : ['get', 'patch', 'update'],
              })),
            })),
          },
        ],
      })),
  };
}
