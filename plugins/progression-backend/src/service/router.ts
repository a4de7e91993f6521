import {
  AuditorService,
  AuthService,
  BackstageCredentials,
  HttpAuthService,
  LoggerService,
  PermissionsService,
} from '@backstage/backend-plugin-api';
import {
  CompoundEntityRef,
  Entity,
  parseEntityRef,
  stringifyEntityRef,
} from '@backstage/catalog-model';
import { InputError, NotAllowedError, NotFoundError } from '@backstage/errors';
import { createValidatedOpenApiRouter } from '@backstage/backend-openapi-utils';
import {
  AuthorizeResult,
  ResourcePermission,
} from '@backstage/plugin-permission-common';
import { CatalogService } from '@backstage/plugin-catalog-node';
import {
  progressionPromotionApprovePermission,
  progressionPromotionCancelPermission,
  progressionPromotionCreatePermission,
  progressionReleaseCreatePermission,
  progressionRollbackPermission,
  progressionWindowOverridePermission,
} from '@progression-io/backstage-plugin-progression-common';
import express from 'express';
import PromiseRouter from 'express-promise-router';
import stableStringify from 'fast-json-stable-stringify';
import crypto from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { JsonObject } from '@backstage/types';
import { ProgressionConfig } from '../config/types';
import { spec } from '../schema/openapi/generated';
import { ProgressionReadModel } from './ProgressionReadModel';
import { Idempotency, PromotionCommands } from './PromotionCommands';
import { expressPath, parameterCheck } from './parameterCheck';

/** Errors that say what the caller did wrong, in words meant for them. */
const CALLER_ERRORS = new Set([
  'InputError',
  'AuthenticationError',
  'NotAllowedError',
  'NotFoundError',
  'ConflictError',
  'NotModifiedError',
]);

/** The largest request body accepted (larger is a 413). */
const MAX_BODY = '64kb';

export interface RouterOptions {
  logger: LoggerService;
  httpAuth: HttpAuthService;
  /**
   * Reads the catalog as the plugin itself for service callers (CI with an
   * external-access token limited to this plugin cannot reach the catalog
   * on its own); users read it with their own credentials.
   */
  auth: AuthService;
  catalog: CatalogService;
  config: ProgressionConfig;
  permissions: PermissionsService;
  auditor: AuditorService;
  reads: ProgressionReadModel;
  commands: PromotionCommands;
}

/**
 * The reads the Environments tab makes on every poll, as the OpenAPI
 * document names them. They are served before the validator, each with a
 * check of its parameters compiled from the document (parameterCheck.ts).
 */
export const POLLED_READS = {
  environments: '/v1/entities/{kind}/{namespace}/{name}/environments',
  flags: '/v1/entities/{kind}/{namespace}/{name}/flags',
  metrics: '/v1/entities/{kind}/{namespace}/{name}/metrics',
  insights: '/v1/entities/{kind}/{namespace}/{name}/insights',
} as const;

/** The path parameters of the routes under /v1/entities/{kind}/{namespace}/{name}. */
type EntityParams = { kind: string; namespace: string; name: string };
/** The query of a polled read, once parameterCheck has let it through. */
type PolledQuery = { range?: string; stage?: string };

const principalRef = (credentials: BackstageCredentials): string => {
  const p = credentials.principal as {
    type: string;
    userEntityRef?: string;
    subject?: string;
  };
  return p.type === 'user'
    ? p.userEntityRef!
    : `service:${p.subject ?? 'unknown'}`;
};

/**
 * The REST API of src/schema/openapi.yaml. Requests and responses are
 * validated against it; each handler authenticates, authorizes, audits
 * mutations, then calls one function.
 */
export async function createRouter(
  options: RouterOptions,
): Promise<express.Router> {
  const {
    logger,
    httpAuth,
    auth,
    catalog,
    config,
    permissions,
    auditor,
    reads,
    commands,
  } = options;
  const router = createValidatedOpenApiRouter(spec);

  const entityOf = async (
    ref: CompoundEntityRef,
    credentials: BackstageCredentials,
  ): Promise<Entity> => {
    // A service caller is authorized by Progression's own permissions; the
    // catalog is read as the plugin so that a token limited to Progression
    // works. Users read the catalog as themselves.
    const entity = await catalog.getEntityByRef(ref, {
      credentials:
        (credentials.principal as { type?: string }).type === 'service'
          ? await auth.getOwnServiceCredentials()
          : credentials,
    });
    if (!entity) {
      throw new NotFoundError(
        `No entity '${stringifyEntityRef(ref)}' in the catalog`,
      );
    }
    return entity;
  };

  // Reads reuse a reader's catalog lookup for a few seconds: the
  // Environments tab polls while a promotion runs. Keyed by reader, so the
  // catalog's permission decision for that reader still applies. One lookup
  // at a time per reader and entity: reads that miss together share it, and
  // a read after half the time starts the next lookup while it (and the
  // reads after it) still take the entity looked up before. Otherwise every
  // read in flight when the time ran out looked the entity up again (the
  // tab's four reads of a poll; a CI job's parallel calls), and waited for
  // the catalog behind each other. An entity is not given out for longer
  // than the time; a failed lookup is forgotten at once.
  const ttlMs = config.entityCacheTtlMs;
  type Lookup = { entity: Promise<Entity>; startedAt: number; next?: true };
  const readCache =
    ttlMs > 0
      ? new LRUCache<string, Lookup>({ max: 10_000, ttl: ttlMs })
      : undefined;
  const entityForRead = (
    ref: CompoundEntityRef,
    credentials: BackstageCredentials,
  ): Promise<Entity> => {
    if (!readCache) return entityOf(ref, credentials);
    const key = `${principalRef(credentials)}\n${stringifyEntityRef(ref)}`;
    const lookUp = (): Lookup => ({
      entity: entityOf(ref, credentials),
      startedAt: Date.now(),
    });
    const cached = readCache.get(key);
    if (cached) {
      if (!cached.next && Date.now() - cached.startedAt >= ttlMs / 2) {
        cached.next = true;
        const next = lookUp();
        next.entity.then(
          () =>
            readCache.get(key) === cached &&
            readCache.set(key, next, {
              ttl: Math.max(1, ttlMs - (Date.now() - next.startedAt)),
            }),
          () => readCache.get(key) === cached && readCache.delete(key),
        );
      }
      return cached.entity;
    }
    const lookup = lookUp();
    readCache.set(key, lookup);
    lookup.entity.catch(
      () => readCache.get(key) === lookup && readCache.delete(key),
    );
    return lookup.entity;
  };

  /**
   * Answers that the read model shares between requests (it reuses one
   * object for a second) are serialized, and given their ETag, once: a
   * 90-day insights answer is tens of kilobytes, and turning it into JSON
   * again for every reader of a polled tab cost more than the rest of the
   * request.
   */
  const serialized = new WeakMap<object, { body: Buffer; etag: string }>();
  const sendShared = (res: express.Response, value: object, tag?: string) => {
    let entry = serialized.get(value);
    if (!entry) {
      // As bytes: a string would be encoded again for every response.
      const body = Buffer.from(JSON.stringify(value));
      // A weak ETag: `tag`, when given, names what matters of the value
      // (the insights' figures, not when they were last checked).
      const hash =
        tag ?? crypto.createHash('sha1').update(body).digest('base64url');
      entry = { body, etag: `W/"${hash}"` };
      serialized.set(value, entry);
    }
    // express answers 304 to a matching If-None-Match and skips its own ETag.
    res.set('ETag', entry.etag).type('json').send(entry.body);
  };

  /** The caller of a route, a user or a service (401 otherwise). */
  // Any route's request: the validated router types each one's query.
  type AnyRequest = express.Request<any, any, any, any>;
  const callerOf = (req: AnyRequest) =>
    httpAuth.credentials(req, { allow: ['user', 'service'] });

  /** The entity a read route names, as its caller may see it. */
  const readEntity = async (req: AnyRequest, ref: CompoundEntityRef) =>
    entityForRead(ref, await callerOf(req));

  const authorize = async (
    credentials: BackstageCredentials,
    permission: ResourcePermission<'catalog-entity'>,
    entityRef: string,
  ) => {
    const [decision] = await permissions.authorize(
      [{ permission, resourceRef: entityRef }],
      { credentials },
    );
    if (decision.result !== AuthorizeResult.ALLOW) {
      throw new NotAllowedError(
        `Not allowed to ${permission.name} on ${entityRef}`,
      );
    }
  };

  /**
   * Runs a mutation inside an audit event that records its outcome, once
   * the caller holds the permission on the entity.
   */
  const audited = async <T>(
    req: express.Request,
    eventId: string,
    meta: JsonObject,
    guard: {
      credentials: BackstageCredentials;
      permission: ResourcePermission<'catalog-entity'>;
      entityRef: string;
    },
    fn: () => Promise<T>,
    severityLevel: 'medium' | 'high' = 'medium',
  ): Promise<T> => {
    const event = await auditor.createEvent({
      eventId,
      severityLevel,
      request: req,
      meta,
    });
    try {
      await authorize(guard.credentials, guard.permission, guard.entityRef);
      const result = await fn();
      await event.success();
      return result;
    } catch (error) {
      await event.fail({ error: error as Error });
      throw error;
    } finally {
      // What the environments read reuses of this entity is stale now.
      reads.invalidate(guard.entityRef);
    }
  };

  /**
   * The request's Idempotency-Key, scoped to the caller and the route (the
   * same key from someone else, or on another route, is another key), with
   * a hash of what it asks for (the entity and the body without its free
   * text `reason`): the same key asking for something else is a 422.
   */
  const idempotencyOf = (
    req: AnyRequest,
    credentials: BackstageCredentials,
    route: string,
  ): Idempotency | undefined => {
    const key = req.header('Idempotency-Key');
    if (!key) return undefined;
    return {
      key,
      scope: `${principalRef(credentials)}|POST ${route}`,
      requestHash: `sha256:${crypto
        .createHash('sha256')
        .update(
          stableStringify({
            params: req.params,
            body: { ...req.body, reason: undefined },
          }),
        )
        .digest('hex')}`,
    };
  };

  /** A promotion, if the caller may see its entity (404 otherwise). */
  const visiblePromotion = async (
    id: string,
    credentials: BackstageCredentials,
  ) => {
    const promotion = await reads.getPromotion(id);
    await entityOf(parseEntityRef(promotion.entityRef), credentials).catch(
      () => {
        throw new NotFoundError(`No promotion ${id}`);
      },
    );
    return promotion;
  };

  // POLLED_READS, before the OpenAPI validator (which looks a request's
  // route up the slow way).
  const polled = PromiseRouter();
  const polledRead = (
    specPath: string,
    handler: (
      req: express.Request<EntityParams, unknown, unknown, PolledQuery>,
      res: express.Response,
    ) => Promise<void>,
  ) =>
    polled.get(expressPath(specPath), parameterCheck(spec, specPath), handler);

  polledRead(POLLED_READS.environments, async (req, res) => {
    const entity = await readEntity(req, req.params);
    res.json(await reads.environments(entity));
  });

  router.post('/v1/validate', async (req, res) => {
    await callerOf(req);
    const entity = req.body.entity as Partial<Entity>;
    if (typeof entity.metadata?.name !== 'string' || !entity.metadata.name) {
      throw new InputError(
        'entity must be a catalog entity with at least metadata.name, as in catalog-info.yaml',
      );
    }
    const annotations = entity.metadata.annotations ?? {};
    if (
      typeof annotations !== 'object' ||
      Object.values(annotations).some(v => typeof v !== 'string')
    ) {
      throw new InputError(
        'entity.metadata.annotations must map annotation names to strings',
      );
    }
    res.json(
      reads.validateEntity({
        apiVersion: 'backstage.io/v1alpha1',
        kind: 'Component',
        ...entity,
      } as Entity),
    );
  });

  router.get(
    '/v1/entities/:kind/:namespace/:name/stages/:stage/preview',
    async (req, res) => {
      const entity = await readEntity(req, req.params);
      const preview = await reads.previewPromotion(entity, req.params.stage);
      res.json({ ...preview, results: preview.results.map(r => ({ ...r })) });
    },
  );

  polledRead(POLLED_READS.flags, async (req, res) => {
    const entity = await readEntity(req, req.params);
    res.json(await reads.flags(entity));
  });

  polledRead(POLLED_READS.metrics, async (req, res) => {
    const entity = await readEntity(req, req.params);
    res.json(
      await reads.metrics(entity, {
        stage: req.query.stage,
        range: req.query.range,
      }),
    );
  });

  polledRead(POLLED_READS.insights, async (req, res) => {
    const entity = await readEntity(req, req.params);
    const answer = await reads.insights(entity, { range: req.query.range });
    sendShared(res, answer, reads.insightsTag(answer));
  });

  router.get(
    '/v1/entities/:kind/:namespace/:name/releases',
    async (req, res) => {
      const entity = await readEntity(req, req.params);
      res.json({ items: await reads.listReleases(entity) });
    },
  );

  router.post(
    '/v1/entities/:kind/:namespace/:name/releases',
    async (req, res) => {
      const credentials = await callerOf(req);
      const entity = await entityOf(req.params, credentials);
      const entityRef = stringifyEntityRef(entity);
      const result = await audited(
        req,
        'release-register',
        { entityRef, version: req.body.version, image: req.body.image },
        {
          credentials,
          permission: progressionReleaseCreatePermission,
          entityRef,
        },
        async () => {
          return commands.registerRelease(
            entity,
            req.body,
            principalRef(credentials),
          );
        },
      );
      res.status(result.created ? 201 : 200).json(result.release);
    },
  );

  router.get(
    '/v1/entities/:kind/:namespace/:name/promotions',
    async (req, res) => {
      const entity = await readEntity(req, req.params);
      const { stage, status, limit, cursor } = req.query;
      res.json(
        await reads.listPromotions(entity, {
          stage,
          state: status,
          limit: limit === undefined ? undefined : Number(limit),
          cursor,
        }),
      );
    },
  );

  router.post(
    '/v1/entities/:kind/:namespace/:name/promotions',
    async (req, res) => {
      const credentials = await callerOf(req);
      const entity = await entityOf(req.params, credentials);
      const entityRef = stringifyEntityRef(entity);
      const idempotency = idempotencyOf(req, credentials, 'promotions');
      const promotion = await audited(
        req,
        'promotion-request',
        { entityRef, stage: req.body.stage, version: req.body.version ?? null },
        {
          credentials,
          permission: progressionPromotionCreatePermission,
          entityRef,
        },
        async () => {
          return commands.requestPromotion(
            entity,
            req.body,
            principalRef(credentials),
            idempotency,
          );
        },
      );
      res.status(202).json(promotion);
    },
  );

  router.post(
    '/v1/entities/:kind/:namespace/:name/rollbacks',
    async (req, res) => {
      const credentials = await callerOf(req);
      const entity = await entityOf(req.params, credentials);
      const entityRef = stringifyEntityRef(entity);
      const idempotency = idempotencyOf(req, credentials, 'rollbacks');
      const rollback = await audited(
        req,
        'rollback-request',
        {
          entityRef,
          stage: req.body.stage,
          toVersion: req.body.toVersion ?? null,
        },
        {
          credentials,
          permission: progressionRollbackPermission,
          entityRef,
        },
        async () => {
          return commands.requestRollback(
            entity,
            req.body,
            principalRef(credentials),
            idempotency,
          );
        },
      );
      res.status(202).json(rollback);
    },
  );

  router.get('/v1/promotions/:id', async (req, res) => {
    const credentials = await callerOf(req);
    const promotion = await visiblePromotion(req.params.id, credentials);
    const { stepLimit, stepCursor } = req.query;
    res.json(
      await reads.promotionDetails(promotion, {
        limit: stepLimit === undefined ? undefined : Number(stepLimit),
        after: stepCursor === undefined ? undefined : Number(stepCursor),
      }),
    );
  });

  router.post('/v1/promotions/:id/approvals', async (req, res) => {
    // Approvals are people's decisions: user credentials only.
    const credentials = await httpAuth.credentials(req, { allow: ['user'] });
    const promotion = await visiblePromotion(req.params.id, credentials);
    const result = await audited(
      req,
      'promotion-approval',
      {
        entityRef: promotion.entityRef,
        stage: promotion.stage,
        promotionId: promotion.id,
        decision: req.body.decision,
      },
      {
        credentials,
        permission: progressionPromotionApprovePermission,
        entityRef: promotion.entityRef,
      },
      async () => {
        return commands.decide(promotion, req.body, {
          userEntityRef: credentials.principal.userEntityRef,
        });
      },
    );
    res.status(201).json(result);
  });

  router.post('/v1/promotions/:id/override-window', async (req, res) => {
    const credentials = await callerOf(req);
    const promotion = await visiblePromotion(req.params.id, credentials);
    const result = await audited(
      req,
      'promotion-window-override',
      {
        entityRef: promotion.entityRef,
        stage: promotion.stage,
        promotionId: promotion.id,
        reason: req.body.reason,
      },
      {
        credentials,
        permission: progressionWindowOverridePermission,
        entityRef: promotion.entityRef,
      },
      async () =>
        commands.overrideWindow(
          promotion,
          req.body.reason,
          principalRef(credentials),
        ),
      // Break-glass: worth a look.
      'high',
    );
    res.status(202).json(result);
  });

  router.post('/v1/promotions/:id/cancel', async (req, res) => {
    const credentials = await callerOf(req);
    const promotion = await visiblePromotion(req.params.id, credentials);
    const result = await audited(
      req,
      'promotion-cancel',
      {
        entityRef: promotion.entityRef,
        stage: promotion.stage,
        promotionId: promotion.id,
      },
      {
        credentials,
        permission: progressionPromotionCancelPermission,
        entityRef: promotion.entityRef,
      },
      async () => {
        return commands.cancel(promotion, principalRef(credentials));
      },
    );
    res.status(202).json(result);
  });

  // The polled reads take no body. Bodies are parsed here, before the
  // validating router, so that an oversized one is a 413 (the validator
  // would call it a 400).
  const outer = express.Router();
  outer.use(polled);
  outer.use(express.json({ limit: MAX_BODY }));
  outer.use(
    (
      error: Error & { type?: string },
      req: express.Request,
      res: express.Response,
      next: express.NextFunction,
    ) => {
      if (error.type !== 'entity.too.large') {
        next(error);
        return;
      }
      res.status(413).json({
        error: {
          name: 'PayloadTooLargeError',
          message: `The request body is larger than ${MAX_BODY}`,
        },
        request: { method: req.method, url: req.originalUrl },
        response: { statusCode: 413 },
      });
    },
  );
  outer.use(router);
  // What a caller did wrong (4xx) Backstage's error handler answers with
  // its own words. Anything else may carry SQL or a cluster's internals:
  // logged with an id, answered with only that id.
  outer.use(
    (
      error: Error & { status?: number; statusCode?: number },
      req: express.Request,
      res: express.Response,
      next: express.NextFunction,
    ) => {
      const status = error.statusCode ?? error.status;
      if (
        res.headersSent ||
        (typeof status === 'number' && status >= 400 && status < 500) ||
        CALLER_ERRORS.has(error.name)
      ) {
        next(error);
        return;
      }
      const logId = crypto.randomBytes(8).toString('hex');
      logger.error(
        `${req.method} ${req.originalUrl} failed (logId=${logId})`,
        error,
      );
      res.status(500).json({
        error: {
          name: 'Error',
          message: `An internal error occurred (logId=${logId})`,
        },
        request: { method: req.method, url: req.originalUrl },
        response: { statusCode: 500 },
      });
    },
  );
  return outer;
}
