import http from 'node:http';
import https from 'node:https';
import { AddressInfo } from 'node:net';
import { ApiError } from './errors';
import {
  aggregatedDiscovery,
  apiGroupList,
  apiVersions,
  resourceList,
  SERVER_VERSION,
} from './discovery';
import { Faults } from './Faults';
import { openApiV3Document, openApiV3Root } from './openapi';
import { parseFieldSelector } from './fieldSelector';
import { matchesLabelSelector, parseLabelSelector } from './labelSelector';
import { ObjectService } from './ObjectService';
import { applyPatchByContentType } from './patch';
import { findResource, ResourceType, apiVersionOf } from './resources';
import { WatchHandler } from './WatchHandler';
import {
  forbidden,
  RbacAuthorizer,
  rbacVerb,
  RequestAttributes,
  RequestUser,
} from './rbac';
import { KubeObject } from '../store/Store';
import { PodLogs } from '../controllers/PodLogs';

export interface ApiServerOptions {
  objects: ObjectService;
  logs: PodLogs;
  faults: Faults;
  /** The admin's token: a cluster admin, never subject to RBAC. */
  token: string;
  /** Service-account tokens and, when `enforceRbac`, their permissions. */
  accounts: RbacAuthorizer;
  /**
   * Check each request by a service-account token against the Roles,
   * ClusterRoles and their bindings (403 Forbidden otherwise). Without
   * it, any known token may do anything.
   */
  enforceRbac?: boolean;
  /** Other tokens' users (a token webhook); see KubeSimulatorOptions. */
  authenticateToken?: (
    token: string | undefined,
  ) => { name: string; groups?: string[] } | undefined;
  /** How often a watch that asked for bookmarks gets one. */
  bookmarkIntervalMs?: number;
  /** Serve HTTPS with this key and certificate (PEM) instead of HTTP. */
  tls?: { key: string; cert: string };
}

interface Route {
  type: ResourceType;
  namespace?: string;
  name?: string;
  subresource?: string;
}

const MAX_BODY = 8 * 1024 * 1024;

/**
 * The form an `Accept` header asks for, the first the server knows of its
 * comma-separated choices (as the API server's content negotiation picks):
 * a Table (kubectl get), PartialObjectMetadata (metadata only: a Secret's
 * data stays on the server) or the object.
 */
function representation(
  accept: string,
): 'Table' | 'PartialObjectMetadata' | 'Object' {
  for (const choice of accept.split(',')) {
    const as = /;\s*as=([A-Za-z]+)/.exec(choice)?.[1];
    if (as === 'Table') return 'Table';
    if (as === 'PartialObjectMetadata' || as === 'PartialObjectMetadataList') {
      return 'PartialObjectMetadata';
    }
    if (!as && /application\/json|\*\/\*/.test(choice)) return 'Object';
  }
  return 'Object';
}

function partialObjectMetadata(o: KubeObject) {
  return {
    kind: 'PartialObjectMetadata',
    apiVersion: 'meta.k8s.io/v1',
    metadata: o.metadata,
  };
}

/**
 * The HTTP face of the simulator: Kubernetes REST paths, verbs, discovery,
 * tables, watches and `Status` errors.
 */
export class ApiServer {
  private server?: http.Server | https.Server;
  private readonly watches: WatchHandler;
  /** Requests answered, by method (watches included), for benchmarks. */
  readonly requests: Record<string, number> = {};
  /**
   * Reads of single objects, by resource and the form asked for
   * (`secrets Object`, `secrets PartialObjectMetadata`, `pods Table`), so
   * that a test can tell whether a client saw a Secret's values.
   */
  readonly reads: Record<string, number> = {};
  /**
   * The last 10,000 resource requests by service-account tokens, as RBAC
   * sees them, with whether they were allowed: what a client needs.
   */
  readonly access: Array<
    RequestAttributes & { user: string; allowed: boolean }
  > = [];

  constructor(private readonly options: ApiServerOptions) {
    this.watches = new WatchHandler({
      store: options.objects.store,
      faults: options.faults,
      bookmarkIntervalMs: options.bookmarkIntervalMs,
    });
  }

  async listen(port = 0, host = '127.0.0.1'): Promise<string> {
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
      this.handle(req, res).catch(e => this.fail(res, e));
    };
    this.server = this.options.tls
      ? https.createServer(
          { key: this.options.tls.key, cert: this.options.tls.cert },
          handler,
        )
      : http.createServer(handler);
    this.server.keepAliveTimeout = 5000;
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, host, () => resolve());
    });
    const address = this.server.address() as AddressInfo;
    return `${this.options.tls ? 'https' : 'http'}://${host}:${address.port}`;
  }

  async close(): Promise<void> {
    this.watches.endAll();
    if (!this.server) return;
    this.server.closeAllConnections?.();
    await new Promise<void>(resolve => this.server!.close(() => resolve()));
  }

  /** Ends every open watch, as a dropped connection would. */
  dropWatches() {
    this.watches.dropAll();
  }

  get openWatches() {
    return this.watches.count;
  }

  private fail(res: http.ServerResponse, e: unknown) {
    const error =
      e instanceof ApiError
        ? e
        : new ApiError(
            500,
            'InternalError',
            `Internal error occurred: ${(e as Error)?.message ?? e}`,
          );
    if (res.headersSent) {
      res.end();
      return;
    }
    this.json(res, error.code, error.toStatus());
  }

  /** Answers `body`; `as` names a meta.k8s.io form in the Content-Type, as the API server does. */
  private json(
    res: http.ServerResponse,
    code: number,
    body: unknown,
    as?: string,
  ) {
    const text = JSON.stringify(body);
    res.writeHead(code, {
      'Content-Type': as
        ? `application/json;as=${as};g=meta.k8s.io;v=v1`
        : 'application/json',
      'Content-Length': Buffer.byteLength(text),
    });
    res.end(text);
  }

  private async readBody(req: http.IncomingMessage): Promise<any> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += chunk.length;
      if (size > MAX_BODY)
        throw new ApiError(
          413,
          'RequestEntityTooLarge',
          'request body too large',
        );
      chunks.push(chunk);
    }
    const text = Buffer.concat(chunks).toString('utf8');
    const type = req.headers['content-type'] ?? 'application/json';
    if (type.includes('protobuf')) {
      throw ApiError.unsupportedMediaType(type);
    }
    if (!text) return undefined;
    try {
      return JSON.parse(text);
    } catch {
      throw ApiError.badRequest(`the request body is not valid JSON`);
    }
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse) {
    const { faults, token, accounts } = this.options;
    const auth = req.headers.authorization ?? '';
    const bearer = auth.startsWith('Bearer ') ? auth.slice(7) : '';
    const user: RequestUser | undefined =
      bearer === token
        ? { name: 'kubernetes-admin', groups: ['system:masters'], admin: true }
        : accounts.userOf(bearer) ?? this.webhookUser(bearer || undefined);
    const publicInfo =
      req.method === 'GET' &&
      /^\/(version|healthz|readyz|livez)\/?(\?|$)/.test(req.url ?? '');
    // Anyone may read /version and the health checks, as on a real cluster
    // (the system:public-info-viewer role); everything else needs a token.
    if (!user && !publicInfo) {
      throw ApiError.unauthorized();
    }
    if (faults.latencyMs) {
      await new Promise(r => setTimeout(r, faults.latencyMs));
    }
    const method = req.method ?? 'GET';
    this.requests[method] = (this.requests[method] ?? 0) + 1;
    if (method === 'GET' && req.url === '/simulator/requests') {
      return this.json(res, 200, this.requests);
    }
    if (method === 'GET' && req.url === '/simulator/reads') {
      return this.json(res, 200, this.reads);
    }
    const injected = faults.takeFailure(method);
    if (injected) {
      throw new ApiError(
        injected.status,
        injected.reason,
        injected.status === 409
          ? 'Operation cannot be fulfilled: the object has been modified; please apply your changes to the latest version and try again (injected fault)'
          : 'Internal error occurred: injected fault',
      );
    }

    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    const accept = String(req.headers.accept ?? '');

    if (method === 'GET') {
      if (path === '/version') return this.json(res, 200, SERVER_VERSION);
      if (path === '/healthz' || path === '/readyz' || path === '/livez') {
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        return res.end('ok');
      }
      if (path === '/api') {
        if (accept.includes('as=APIGroupDiscoveryList')) {
          return this.discoveryJson(res, aggregatedDiscovery(true));
        }
        return this.json(res, 200, apiVersions(url.host));
      }
      if (path === '/apis') {
        if (accept.includes('as=APIGroupDiscoveryList')) {
          return this.discoveryJson(res, aggregatedDiscovery(false));
        }
        return this.json(res, 200, apiGroupList());
      }
      if (path === '/api/v1')
        return this.json(res, 200, resourceList('', 'v1'));
      if (path === '/openapi/v3') return this.json(res, 200, openApiV3Root());
      if (path.startsWith('/openapi/v3/')) {
        const doc = openApiV3Document(path.slice('/openapi/v3/'.length));
        if (doc) return this.json(res, 200, doc);
      }
      const gv = path.match(/^\/apis\/([^/]+)\/([^/]+)$/);
      if (gv) {
        const list = resourceList(gv[1], gv[2]);
        if (list) return this.json(res, 200, list);
      }
      const g = path.match(/^\/apis\/([^/]+)$/);
      if (g) {
        const group = apiGroupList().groups.find(x => x.name === g[1]);
        if (group)
          return this.json(res, 200, {
            kind: 'APIGroup',
            apiVersion: 'v1',
            ...group,
          });
      }
    }

    const route = this.route(path);
    if (!route) {
      throw new ApiError(
        404,
        'NotFound',
        'the server could not find the requested resource',
      );
    }
    this.authorize(user!, route, method, url);
    return this.serve(route, method, url, req, res);
  }

  /** The user the token webhook names for `token`, if there is one. */
  private webhookUser(token: string | undefined): RequestUser | undefined {
    const found = this.options.authenticateToken?.(token);
    return (
      found && {
        name: found.name,
        groups: [...(found.groups ?? []), 'system:authenticated'],
      }
    );
  }

  /**
   * RBAC for a resource request by a service account (discovery and the
   * other non-resource paths are open to every authenticated user, as the
   * system:discovery role makes them).
   */
  private authorize(user: RequestUser, route: Route, method: string, url: URL) {
    if (user.admin) return;
    const verb = rbacVerb(method, !!route.name, url);
    if (!verb) return;
    // A Namespace's own path names its namespace, as the real server reads
    // it (a RoleBinding there may grant get on it).
    const ownNamespace =
      route.type.plural === 'namespaces' ? route.name : undefined;
    const attributes: RequestAttributes = {
      verb,
      apiGroup: route.type.group,
      resource: route.type.plural,
      subresource: route.subresource,
      namespace: route.type.namespaced ? route.namespace : ownNamespace,
      name: route.name,
    };
    const allowed =
      !this.options.enforceRbac ||
      this.options.accounts.allows(user, attributes);
    this.access.push({ ...attributes, user: user.name, allowed });
    if (this.access.length > 10_000) this.access.shift();
    if (!allowed) throw forbidden(user, attributes);
  }

  private discoveryJson(res: http.ServerResponse, body: unknown) {
    const text = JSON.stringify(body);
    res.writeHead(200, {
      'Content-Type':
        'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList',
      'Content-Length': Buffer.byteLength(text),
    });
    res.end(text);
  }

  private route(path: string): Route | undefined {
    const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
    let group: string;
    let version: string;
    let rest: string[];
    if (parts[0] === 'api' && parts.length >= 2) {
      group = '';
      version = parts[1];
      rest = parts.slice(2);
    } else if (parts[0] === 'apis' && parts.length >= 3) {
      group = parts[1];
      version = parts[2];
      rest = parts.slice(3);
    } else {
      return undefined;
    }
    if (rest.length === 0) return undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      const type = findResource(group, version, rest[2]);
      if (type?.namespaced) {
        if (rest.length > 5) return undefined;
        return {
          type,
          namespace: rest[1],
          name: rest[3],
          subresource: rest[4],
        };
      }
    }
    const type = findResource(group, version, rest[0]);
    if (!type || rest.length > 3) return undefined;
    return { type, name: rest[1], subresource: rest[2] };
  }

  private async serve(
    route: Route,
    method: string,
    url: URL,
    req: http.IncomingMessage,
    res: http.ServerResponse,
  ) {
    const { objects } = this.options;
    const { type, namespace, name, subresource } = route;
    if (subresource && !type.subresources.includes(subresource)) {
      throw new ApiError(
        404,
        'NotFound',
        'the server could not find the requested resource',
      );
    }
    const accept = String(req.headers.accept ?? '');
    if (type.derive) {
      return this.serveDerived(type, namespace, name, method, url, res);
    }

    if (!name) {
      if (method === 'GET') {
        const watch = url.searchParams.get('watch');
        if (watch === 'true' || watch === '1') {
          return this.watches.serve(type, namespace, url, res);
        }
        return this.list(type, namespace, url, accept, res);
      }
      if (method === 'POST') {
        const body = await this.readBody(req);
        if (!body || typeof body !== 'object')
          throw ApiError.badRequest('empty request body');
        this.checkKind(type, body);
        if (this.isDryRun(url)) {
          return this.json(res, 201, body);
        }
        return this.json(res, 201, objects.create(type, body, namespace));
      }
      if (method === 'DELETE') {
        const items = this.filter(type, namespace, url);
        for (const item of items)
          objects.delete(type, item.metadata.namespace, item.metadata.name);
        return this.json(res, 200, {
          kind: `${type.kind}List`,
          apiVersion: apiVersionOf(type),
          metadata: {},
          items,
        });
      }
      throw ApiError.methodNotAllowed(
        `${method} is not supported on a collection`,
      );
    }

    if (subresource === 'log') {
      if (method !== 'GET') throw ApiError.methodNotAllowed('log is read-only');
      const pod = objects.store.get('pods', namespace, name);
      if (!pod) throw ApiError.notFound('pods', name);
      let text = this.options.logs.read(
        namespace ?? '',
        name,
        url.searchParams.get('container') ?? undefined,
      );
      const tail = Number(url.searchParams.get('tailLines'));
      if (tail > 0) {
        const lines = text.split('\n');
        if (lines[lines.length - 1] === '') lines.pop();
        text = lines.slice(-tail).join('\n') + (lines.length ? '\n' : '');
      }
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      return res.end(text);
    }

    if (subresource === 'token') {
      // TokenRequest: a bearer token for the ServiceAccount.
      if (method !== 'POST') {
        throw ApiError.methodNotAllowed('token requests are created');
      }
      // kubectl create token sends protobuf, which the simulator does not
      // decode: its spec is left at the defaults (tokens here never expire).
      const protobuf = String(req.headers['content-type'] ?? '').includes(
        'protobuf',
      );
      if (protobuf) req.resume();
      const body = protobuf ? undefined : await this.readBody(req);
      const issued = this.options.accounts.issueToken(namespace!, name!);
      const seconds = Number(body?.spec?.expirationSeconds) || 3600;
      return this.json(res, 201, {
        kind: 'TokenRequest',
        apiVersion: 'authentication.k8s.io/v1',
        metadata: { name, namespace },
        spec: { ...body?.spec, expirationSeconds: seconds },
        status: {
          token: issued,
          expirationTimestamp: new Date(
            Date.now() + seconds * 1000,
          ).toISOString(),
        },
      });
    }

    if (subresource === 'scale') {
      return this.scale(type, namespace!, name, method, req, res, url);
    }

    const statusOnly =
      subresource === 'status' ? ('status' as const) : undefined;
    switch (method) {
      case 'GET': {
        const obj = objects.store.get(type.plural, namespace, name);
        if (!obj) throw ApiError.notFound(type.plural, name);
        const form = representation(accept);
        this.reads[`${type.plural} ${form}`] =
          (this.reads[`${type.plural} ${form}`] ?? 0) + 1;
        if (form === 'Table') {
          return this.json(
            res,
            200,
            this.table(type, [obj], url, String(obj.metadata.resourceVersion)),
          );
        }
        if (form === 'PartialObjectMetadata') {
          return this.json(res, 200, partialObjectMetadata(obj), form);
        }
        return this.json(res, 200, obj);
      }
      case 'PUT': {
        const body = await this.readBody(req);
        if (!body || typeof body !== 'object')
          throw ApiError.badRequest('empty request body');
        this.checkKind(type, body);
        if (this.isDryRun(url)) return this.json(res, 200, body);
        return this.json(
          res,
          200,
          objects.update(type, body, namespace, name, statusOnly),
        );
      }
      case 'PATCH': {
        const body = await this.readBody(req);
        const contentType = String(req.headers['content-type'] ?? '');
        const current = objects.store.get(type.plural, namespace, name);
        if (!current) throw ApiError.notFound(type.plural, name);
        const patched = applyPatchByContentType(contentType, current, body);
        if (!patched || typeof patched !== 'object')
          throw ApiError.badRequest('the patch removed the whole object');
        // A patch applies to the version it read, unless it names one itself.
        const named =
          (body && !Array.isArray(body) && body.metadata?.resourceVersion) ||
          undefined;
        patched.metadata = {
          ...patched.metadata,
          resourceVersion: named ?? current.metadata.resourceVersion,
        };
        if (this.isDryRun(url)) return this.json(res, 200, patched);
        return this.json(
          res,
          200,
          objects.update(type, patched, namespace, name, statusOnly),
        );
      }
      case 'DELETE': {
        if (subresource)
          throw ApiError.methodNotAllowed('cannot delete a subresource');
        const deleted = objects.delete(type, namespace, name);
        return this.json(res, 200, deleted);
      }
      default:
        throw ApiError.methodNotAllowed(`${method} is not supported`);
    }
  }

  private isDryRun(url: URL) {
    return url.searchParams.getAll('dryRun').includes('All');
  }

  private checkKind(type: ResourceType, body: KubeObject) {
    if (body.kind && body.kind !== type.kind) {
      throw ApiError.badRequest(
        `the kind of the provided object (${body.kind}) does not match the resource (${type.kind})`,
      );
    }
  }

  private filter(
    type: ResourceType,
    namespace: string | undefined,
    url: URL,
    objects: KubeObject[] = this.options.objects.store.list(
      type.plural,
      type.namespaced ? namespace : undefined,
    ),
  ): KubeObject[] {
    const labelSelector = url.searchParams.get('labelSelector');
    const fieldSelector = url.searchParams.get('fieldSelector');
    const requirements = labelSelector ? parseLabelSelector(labelSelector) : [];
    const fields = parseFieldSelector(fieldSelector);
    return objects
      .filter(o => matchesLabelSelector(requirements, o.metadata.labels))
      .filter(o => fields(o));
  }

  /** Get and list of a kind computed at every read (the metrics API). */
  private serveDerived(
    type: ResourceType,
    namespace: string | undefined,
    name: string | undefined,
    method: string,
    url: URL,
    res: http.ServerResponse,
  ) {
    const watch = url.searchParams.get('watch');
    if (method !== 'GET' || watch === 'true' || watch === '1') {
      throw ApiError.methodNotAllowed(
        `${method}${watch ? ' (watch)' : ''} is not supported on ${
          type.plural
        }.${type.group}`,
      );
    }
    const all = type.derive!(this.options.objects.store).filter(
      o => !namespace || o.metadata.namespace === namespace,
    );
    if (name) {
      const obj = all.find(o => o.metadata.name === name);
      if (!obj) throw ApiError.notFound(`${type.plural}.${type.group}`, name);
      return this.json(res, 200, obj);
    }
    return this.json(res, 200, {
      kind: `${type.kind}List`,
      apiVersion: apiVersionOf(type),
      metadata: {
        resourceVersion: String(
          this.options.objects.store.currentResourceVersion,
        ),
      },
      items: this.filter(type, namespace, url, all),
    });
  }

  private list(
    type: ResourceType,
    namespace: string | undefined,
    url: URL,
    accept: string,
    res: http.ServerResponse,
  ) {
    const items = this.filter(type, namespace, url);
    const resourceVersion = String(
      this.options.objects.store.currentResourceVersion,
    );
    const form = representation(accept);
    if (form === 'Table') {
      return this.json(res, 200, this.table(type, items, url, resourceVersion));
    }
    if (form === 'PartialObjectMetadata') {
      return this.json(
        res,
        200,
        {
          kind: 'PartialObjectMetadataList',
          apiVersion: 'meta.k8s.io/v1',
          metadata: { resourceVersion },
          items: items.map(partialObjectMetadata),
        },
        'PartialObjectMetadataList',
      );
    }
    return this.json(res, 200, {
      kind: `${type.kind}List`,
      apiVersion: apiVersionOf(type),
      metadata: { resourceVersion },
      items,
    });
  }

  /** The Table kubectl asks for (`Accept: ...;as=Table;g=meta.k8s.io;v=v1`). */
  private table(
    type: ResourceType,
    items: KubeObject[],
    url: URL,
    resourceVersion: string,
  ) {
    const includeObject = url.searchParams.get('includeObject') ?? 'Metadata';
    return {
      kind: 'Table',
      apiVersion: 'meta.k8s.io/v1',
      metadata: { resourceVersion },
      columnDefinitions: type.columns.map(c => ({
        name: c.name,
        type: c.type,
        format: c.format ?? '',
        description: c.description,
        priority: c.priority ?? 0,
      })),
      rows: items.map(o => ({
        cells: type.columns.map(c => c.cell(o)),
        object: this.tableRowObject(o, includeObject),
      })),
    };
  }

  private tableRowObject(o: KubeObject, includeObject: string) {
    if (includeObject === 'Object') return o;
    if (includeObject === 'None') return undefined;
    return {
      kind: 'PartialObjectMetadata',
      apiVersion: 'meta.k8s.io/v1',
      metadata: o.metadata,
    };
  }

  private scale(
    type: ResourceType,
    namespace: string,
    name: string,
    method: string,
    req: http.IncomingMessage,
    res: http.ServerResponse,
    url: URL,
  ) {
    const { objects } = this.options;
    const toScale = (o: KubeObject) => ({
      kind: 'Scale',
      apiVersion: 'autoscaling/v1',
      metadata: {
        name: o.metadata.name,
        namespace: o.metadata.namespace,
        uid: o.metadata.uid,
        resourceVersion: o.metadata.resourceVersion,
        creationTimestamp: o.metadata.creationTimestamp,
      },
      spec: { replicas: o.spec?.replicas ?? 0 },
      status: {
        replicas: o.status?.replicas ?? 0,
        selector: Object.entries(o.spec?.selector?.matchLabels ?? {})
          .map(([k, v]) => `${k}=${v}`)
          .join(','),
      },
    });
    const current = objects.store.get(type.plural, namespace, name);
    if (!current) throw ApiError.notFound(type.plural, name);
    if (method === 'GET') return this.json(res, 200, toScale(current));
    if (method !== 'PUT' && method !== 'PATCH')
      throw ApiError.methodNotAllowed(`${method} on scale`);
    return this.readBody(req).then(body => {
      const scale =
        method === 'PUT'
          ? body
          : applyPatchByContentType(
              String(req.headers['content-type'] ?? ''),
              toScale(current),
              body,
            );
      const replicas = scale?.spec?.replicas;
      if (
        typeof replicas !== 'number' ||
        replicas < 0 ||
        !Number.isInteger(replicas)
      ) {
        throw ApiError.invalid('Scale', name, [
          'spec.replicas: Invalid value: must be a non-negative integer',
        ]);
      }
      const rv = method === 'PUT' ? scale.metadata?.resourceVersion : undefined;
      if (rv && rv !== current.metadata.resourceVersion) {
        throw ApiError.conflict(
          type.plural,
          name,
          'the object has been modified; please apply your changes to the latest version and try again',
        );
      }
      if (this.isDryRun(url)) return this.json(res, 200, scale);
      const updated = objects.mutate(type, namespace, name, o => {
        o.spec.replicas = replicas;
      });
      return this.json(res, 200, toScale(updated));
    });
  }
}
