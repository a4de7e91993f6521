import crypto from 'node:crypto';
import http from 'node:http';
import { ApiError } from '../api/errors';
import { matchesLabelSelector, parseLabelSelector } from '../api/labelSelector';
import { ObjectService } from '../api/ObjectService';
import { KubeObject } from '../store/Store';
import { APPLICATIONS, ApplicationController } from './ApplicationController';

/** gRPC status codes, which Argo CD's API (grpc-gateway) puts in its errors. */
const CODE = {
  InvalidArgument: 3,
  NotFound: 5,
  FailedPrecondition: 9,
  Internal: 13,
  Unauthenticated: 16,
};

const DNS1123_SUBDOMAIN =
  /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const MAX_BODY = 1024 * 1024;
/** How long `?refresh=` waits for the controller, as the real server does. */
const REFRESH_TIMEOUT_MS = 60_000;

class HttpError extends Error {
  constructor(readonly status: number, readonly code: number, message: string) {
    super(message);
  }
}

const digest = (s: string) => crypto.createHash('sha256').update(s).digest();

/**
 * Argo CD's REST API (the grpc-gateway in front of argocd-server), the part
 * a deployment tool uses: get, list, refresh and sync Applications.
 */
export class ArgoCdApi {
  constructor(
    private readonly options: {
      token: string;
      namespace: string;
      objects: ObjectService;
      controller: ApplicationController;
    },
  ) {}

  handle(req: http.IncomingMessage, res: http.ServerResponse) {
    this.route(req, res).catch(e => {
      const error =
        e instanceof HttpError
          ? e
          : new HttpError(
              500,
              CODE.Internal,
              e instanceof Error ? e.message : String(e),
            );
      req.resume();
      if (res.headersSent) {
        res.destroy();
        return;
      }
      this.json(res, error.status, {
        error: error.message,
        code: error.code,
        message: error.message,
      });
    });
  }

  private json(res: http.ServerResponse, status: number, body: unknown) {
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(body));
  }

  private authenticated(req: http.IncomingMessage): boolean {
    const expected = digest(this.options.token);
    const matches = (candidate: string | undefined) =>
      candidate !== undefined &&
      crypto.timingSafeEqual(digest(candidate), expected);
    const bearer = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    if (matches(bearer?.[1])) return true;
    for (const part of (req.headers.cookie ?? '').split(';')) {
      const [key, ...value] = part.trim().split('=');
      if (key === 'argocd.token' && matches(value.join('='))) return true;
    }
    return false;
  }

  private async route(req: http.IncomingMessage, res: http.ServerResponse) {
    const url = new URL(req.url ?? '/', 'http://argocd.invalid');
    const method = req.method ?? 'GET';
    if (url.pathname === '/api/version' && method === 'GET') {
      // Open to anyone, as Argo CD's (which tells anonymous callers only this).
      this.json(res, 200, { Version: 'v3.0.0+simulated' });
      return;
    }
    if (!this.authenticated(req)) {
      throw new HttpError(401, CODE.Unauthenticated, 'no session information');
    }
    const parts = url.pathname.split('/').filter(Boolean);
    if (
      parts[0] !== 'api' ||
      parts[1] !== 'v1' ||
      parts[2] !== 'applications'
    ) {
      throw new HttpError(404, CODE.NotFound, 'Not Found');
    }
    if (parts.length === 3 && method === 'GET') {
      this.json(res, 200, this.list(url));
      return;
    }
    const name = decodeURIComponent(parts[3] ?? '');
    if (!DNS1123_SUBDOMAIN.test(name) || name.length > 253) {
      throw new HttpError(
        400,
        CODE.InvalidArgument,
        `invalid application name '${name}'`,
      );
    }
    const appNamespace = url.searchParams.get('appNamespace');
    if (appNamespace && appNamespace !== this.options.namespace) {
      // Only the control plane's namespace holds Applications here.
      throw this.notFound(name);
    }
    if (parts.length === 4 && method === 'GET') {
      this.json(
        res,
        200,
        await this.get(name, url.searchParams.get('refresh')),
      );
      return;
    }
    if (parts.length === 5 && parts[4] === 'sync' && method === 'POST') {
      this.json(res, 200, await this.sync(name, await readJson(req)));
      return;
    }
    throw new HttpError(404, CODE.NotFound, 'Not Found');
  }

  private notFound(name: string) {
    const message = `applications.argoproj.io "${name}" not found`;
    return new HttpError(404, CODE.NotFound, message);
  }

  private app(name: string): KubeObject {
    const app = this.options.objects.store.get(
      'applications',
      this.options.namespace,
      name,
    );
    if (!app) throw this.notFound(name);
    return app;
  }

  private list(url: URL) {
    const selector = url.searchParams.get('selector');
    const requirements = selector ? parseLabelSelector(selector) : [];
    const items = this.options.objects.store
      .list('applications', this.options.namespace)
      .filter(a => matchesLabelSelector(requirements, a.metadata.labels));
    return {
      metadata: {
        resourceVersion: String(
          this.options.objects.store.currentResourceVersion,
        ),
      },
      items,
    };
  }

  /**
   * An app; with `refresh`, after the controller has reconciled it (the real
   * server sets the refresh annotation and waits for it to be cleared).
   */
  private async get(name: string, refresh: string | null) {
    const app = this.app(name);
    if (refresh === null) return app;
    if (refresh !== 'normal' && refresh !== 'hard') {
      throw new HttpError(
        400,
        CODE.InvalidArgument,
        `unknown refresh type '${refresh}'`,
      );
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>(resolve => {
      timer = setTimeout(() => resolve(undefined), REFRESH_TIMEOUT_MS);
    });
    try {
      return (
        (await Promise.race([
          this.options.controller.refresh(name, refresh),
          timeout,
        ])) ?? this.app(name)
      );
    } catch (e) {
      if (e instanceof ApiError && e.code === 404) throw this.notFound(name);
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Starts a sync: sets the app's `operation` (compare-and-set, so one of
   * two concurrent requests wins) for the controller to run.
   */
  private async sync(name: string, body: any) {
    if (body === null || typeof body !== 'object' || Array.isArray(body)) {
      throw new HttpError(400, CODE.InvalidArgument, 'invalid request body');
    }
    const app = this.app(name);
    const target = app.spec?.source?.targetRevision || 'HEAD';
    const requested =
      typeof body.revision === 'string' && body.revision
        ? body.revision
        : undefined;
    if (app.spec?.syncPolicy?.automated && requested && requested !== target) {
      throw new HttpError(
        400,
        CODE.FailedPrecondition,
        `Cannot sync to ${requested}: auto-sync currently set to ${target}`,
      );
    }
    this.checkNoOperation(app);
    let revision: string;
    try {
      revision = await this.options.controller.resolveRevision(
        app,
        requested ?? target,
      );
    } catch (e) {
      throw new HttpError(
        400,
        CODE.InvalidArgument,
        e instanceof Error ? e.message : String(e),
      );
    }
    const operation = {
      sync: {
        revision,
        prune: Boolean(body.prune),
        ...(body.dryRun && { dryRun: true }),
        ...(body.strategy && { syncStrategy: body.strategy }),
      },
      initiatedBy: { username: 'admin' },
      retry: {},
    };
    try {
      return this.options.objects.mutate(
        APPLICATIONS,
        this.options.namespace,
        name,
        a => {
          this.checkNoOperation(a);
          a.operation = operation;
          if (a.status) delete a.status.operationState;
        },
      );
    } catch (e) {
      if (e instanceof ApiError && e.code === 404) throw this.notFound(name);
      throw e;
    }
  }

  /** Argo CD's rule: `operation` stays set until the controller completes it. */
  private checkNoOperation(app: KubeObject) {
    if (app.operation) {
      throw new HttpError(
        400,
        CODE.FailedPrecondition,
        'another operation is already in progress',
      );
    }
  }
}

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_BODY) {
      throw new HttpError(400, CODE.InvalidArgument, 'request body too large');
    }
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (!text) return {};
  try {
    return JSON.parse(text);
  } catch {
    throw new HttpError(400, CODE.InvalidArgument, 'invalid JSON body');
  }
}
