import crypto from 'node:crypto';
import { KubeObject, Store } from '../store/Store';
import { ApiError } from './errors';

/** Who made a request, as the API server's authenticator names them. */
export interface RequestUser {
  name: string;
  groups: string[];
  /** The cluster admin (the simulator's own token): not subject to RBAC. */
  admin?: boolean;
}

/** What a resource request asks to do, as RBAC sees it. */
export interface RequestAttributes {
  verb: string;
  apiGroup: string;
  resource: string;
  subresource?: string;
  namespace?: string;
  name?: string;
}

/**
 * The request's verb as RBAC names it: get, list and watch for reads (a
 * read of one object, of a collection, a watch), create, update, patch,
 * delete and deletecollection for writes.
 */
export function rbacVerb(
  method: string,
  named: boolean,
  url: URL,
): string | undefined {
  const watch = url.searchParams.get('watch');
  switch (method) {
    case 'GET':
    case 'HEAD':
      if (watch === 'true' || watch === '1') return 'watch';
      return named ? 'get' : 'list';
    case 'POST':
      return 'create';
    case 'PUT':
      return 'update';
    case 'PATCH':
      return 'patch';
    case 'DELETE':
      return named ? 'delete' : 'deletecollection';
    default:
      return undefined;
  }
}

interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  verbs?: string[];
  resourceNames?: string[];
}

type Role = KubeObject & { rules?: PolicyRule[] };
type Binding = KubeObject & {
  subjects?: Subject[];
  roleRef?: { kind: string; name: string };
};

interface Subject {
  kind: string;
  name: string;
  namespace?: string;
}

const has = (list: string[] | undefined, value: string) =>
  !!list && (list.includes('*') || list.includes(value));

/** Whether one rule of a Role or ClusterRole allows the request. */
function ruleAllows(rule: PolicyRule, a: RequestAttributes) {
  const resource = a.subresource
    ? `${a.resource}/${a.subresource}`
    : a.resource;
  return (
    has(rule.verbs, a.verb) &&
    has(rule.apiGroups, a.apiGroup) &&
    (has(rule.resources, resource) ||
      (!!a.subresource &&
        (rule.resources ?? []).includes(`*/${a.subresource}`))) &&
    // resourceNames cannot restrict list, watch, create or deletecollection
    // (the name is not known), as the real authorizer has it.
    (!rule.resourceNames?.length ||
      (!!a.name && rule.resourceNames.includes(a.name)))
  );
}

function subjectMatches(subject: Subject, user: RequestUser) {
  switch (subject.kind) {
    case 'ServiceAccount':
      return (
        user.name ===
        `system:serviceaccount:${subject.namespace}:${subject.name}`
      );
    case 'User':
      return user.name === subject.name;
    case 'Group':
      return user.groups.includes(subject.name);
    default:
      return false;
  }
}

/**
 * Kubernetes RBAC over the simulator's store: Roles, ClusterRoles,
 * RoleBindings and ClusterRoleBindings, evaluated at each request as the
 * API server's RBAC authorizer does (allow rules only; a RoleBinding may
 * name a ClusterRole, whose rules then apply in the binding's namespace;
 * no aggregation).
 */
export class RbacAuthorizer {
  private readonly tokens = new Map<
    string,
    { namespace: string; name: string }
  >();

  constructor(private readonly store: Store) {}

  /** A bearer token for a ServiceAccount (the TokenRequest API). */
  issueToken(namespace: string, name: string): string {
    if (!this.store.get('serviceaccounts', namespace, name)) {
      throw ApiError.notFound('serviceaccounts', name);
    }
    const token = `sa.${crypto.randomBytes(24).toString('base64url')}`;
    this.tokens.set(token, { namespace, name });
    return token;
  }

  /**
   * The user a service-account token stands for; none for another token
   * or when the ServiceAccount has been deleted since.
   */
  userOf(token: string): RequestUser | undefined {
    const account = this.tokens.get(token);
    if (!account) return undefined;
    if (!this.store.get('serviceaccounts', account.namespace, account.name)) {
      this.tokens.delete(token);
      return undefined;
    }
    return {
      name: `system:serviceaccount:${account.namespace}:${account.name}`,
      groups: [
        'system:serviceaccounts',
        `system:serviceaccounts:${account.namespace}`,
        'system:authenticated',
      ],
    };
  }

  allows(user: RequestUser, a: RequestAttributes): boolean {
    if (user.admin) return true;
    // RBAC kinds keep their fields at the top level, not under spec.
    const rulesOf = (binding: Binding, namespace?: string) => {
      const ref = binding.roleRef;
      if (!ref) return [];
      const role =
        ref.kind === 'ClusterRole'
          ? this.store.get('clusterroles', undefined, ref.name)
          : this.store.get('roles', namespace, ref.name);
      return ((role as Role | undefined)?.rules ?? []) as PolicyRule[];
    };
    const grants = (binding: Binding, namespace?: string) =>
      (binding.subjects ?? []).some(s => subjectMatches(s, user)) &&
      rulesOf(binding, namespace).some(rule => ruleAllows(rule, a));
    const clusterWide = this.store.list('clusterrolebindings', undefined);
    if (
      clusterWide.some(
        b => (b as Binding).roleRef?.kind === 'ClusterRole' && grants(b),
      )
    ) {
      return true;
    }
    if (!a.namespace) return false;
    return this.store
      .list('rolebindings', a.namespace)
      .some(b => grants(b, a.namespace));
  }
}

/** The 403 the API server answers, word for word. */
export function forbidden(user: RequestUser, a: RequestAttributes): ApiError {
  const qualified = a.apiGroup ? `${a.resource}.${a.apiGroup}` : a.resource;
  const what = a.name ? `${qualified} "${a.name}"` : qualified;
  const resource = a.subresource
    ? `${a.resource}/${a.subresource}`
    : a.resource;
  const where = a.namespace
    ? `in the namespace "${a.namespace}"`
    : 'at the cluster scope';
  return new ApiError(
    403,
    'Forbidden',
    `${what} is forbidden: User "${user.name}" cannot ${a.verb} resource "${resource}" in API group "${a.apiGroup}" ${where}`,
    {
      ...(a.name && { name: a.name }),
      ...(a.apiGroup && { group: a.apiGroup }),
      kind: a.resource,
    },
  );
}
