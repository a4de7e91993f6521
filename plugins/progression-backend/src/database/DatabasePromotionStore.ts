import { ConflictError, CustomErrorBase, InputError } from '@backstage/errors';
import { Knex } from 'knex';
import crypto from 'node:crypto';
import {
  PromotionState,
  TERMINAL_PROMOTION_STATES,
} from '@progression-io/backstage-plugin-progression-common';
import {
  Approval,
  DeliveryQuery,
  NewPromotion,
  NewStep,
  Promotion,
  PromotionStep,
  PromotionStore,
  Release,
  StageDelivery,
  StageSummary,
} from './PromotionStore';
import { capEvidence } from './capEvidence';
import { deliveryFingerprint, deliveryInsights } from './deliveryInsights';

export type {
  Approval,
  NewStep,
  Promotion,
  PromotionStep,
  Release,
} from './PromotionStore';

/** A timestamp column as ISO 8601: PostgreSQL gives Dates, SQLite UTC text. */
const date = (v: unknown): string | undefined => {
  if (v === null || v === undefined) return undefined;
  if (v instanceof Date) return v.toISOString();
  const text = String(v);
  return new Date(
    /[zZ]|[+-]\d\d:?\d\d$/.test(text) ? text : `${text.replace(' ', 'T')}Z`,
  ).toISOString();
};

const isUniqueViolation = (e: unknown) =>
  /unique|duplicate/i.test(String((e as Error)?.message ?? e));

function toRelease(row: any): Release {
  return {
    id: row.id,
    entityRef: row.entity_ref,
    version: row.version,
    image: row.image,
    commit: row.commit_sha ?? undefined,
    committedAt: date(row.committed_at),
    buildUrl: row.build_url ?? undefined,
    createdBy: row.created_by,
    createdAt: date(row.created_at)!,
  };
}

function toPromotion(row: any): Promotion {
  return {
    id: row.id,
    kind: row.kind === 'rollback' ? 'rollback' : 'promotion',
    entityRef: row.entity_ref,
    pipeline: row.pipeline,
    stage: row.stage,
    releaseId: row.release_id,
    state: row.state,
    requestedBy: row.requested_by,
    reason: row.reason ?? undefined,
    error: row.error ?? undefined,
    idempotencyKey: row.idempotency_key ?? undefined,
    ownerId: row.owner_id ?? undefined,
    heartbeatAt: date(row.heartbeat_at),
    retryAt: date(row.retry_at),
    attempt: Number(row.attempt),
    createdAt: date(row.created_at)!,
    updatedAt: date(row.updated_at)!,
    finishedAt: date(row.finished_at),
  };
}

function toStep(row: any): PromotionStep {
  return {
    id: Number(row.id),
    kind: row.kind,
    name: row.name,
    status: row.status,
    fromState: row.from_state ?? undefined,
    toState: row.to_state ?? undefined,
    actor: row.actor ?? undefined,
    reason: row.reason ?? undefined,
    evidence: row.evidence ? JSON.parse(row.evidence) : undefined,
    startedAt: date(row.started_at)!,
    finishedAt: date(row.finished_at),
  };
}

/** A step row; `from`/`to` when it records a transition. */
function stepRow(
  promotionId: string,
  step: NewStep,
  at: { from?: PromotionState; to?: PromotionState; now: Knex.Raw },
) {
  return {
    promotion_id: promotionId,
    kind: step.kind,
    name: step.name,
    status: step.status,
    from_state: at.from ?? null,
    to_state: at.to ?? null,
    actor: step.actor ?? null,
    reason: step.reason ?? null,
    evidence: step.evidence === undefined ? null : capEvidence(step.evidence),
    finished_at: at.now,
  };
}

/**
 * The same idempotency key with a different request: 422, as the IETF
 * Idempotency-Key draft says.
 */
export class IdempotencyKeyReusedError extends CustomErrorBase {
  name = 'IdempotencyKeyReusedError' as const;
  /** Read by Backstage's error handler. */
  statusCode = 422;
}

/** The slot that makes a promotion the only active one of its entity and stage. */
const activeKey = (entityRef: string, stage: string) => `${entityRef}|${stage}`;

/**
 * The promotion store. It only talks SQL; every state change is a
 * compare-and-set (`UPDATE … WHERE id = ? AND state = ?`), and zero rows
 * updated means someone else won — the model is `claimTask` in Backstage's
 * scaffolder DatabaseTaskStore.
 */
export class DatabasePromotionStore implements PromotionStore {
  constructor(private readonly db: Knex) {}

  /**
   * A Date as a query parameter comparable with the timestamp columns:
   * SQLite stores CURRENT_TIMESTAMP as 'YYYY-MM-DD HH:MM:SS' text.
   */
  private at(d: Date): Date | string {
    return this.db.client.config.client.includes('sqlite')
      ? d
          .toISOString()
          .replace('T', ' ')
          .replace(/\.\d+Z$/, '')
      : d;
  }

  /**
   * Registers a release. Registering the same version again (CI retrying)
   * returns the existing release; one that says something else of it —
   * another image, or another commit, commit time or build URL than the
   * ones it was registered with — is a conflict, as releases are
   * immutable. What a retry leaves out is not compared.
   */
  async registerRelease(
    input: Omit<Release, 'id' | 'createdAt'>,
  ): Promise<{ release: Release; created: boolean }> {
    const existing = await this.findRelease(input.entityRef, input.version);
    if (existing) {
      const differs = releaseDifference(existing, input);
      if (differs) {
        throw new ConflictError(
          `Release ${input.version} of ${input.entityRef} already exists with ${differs}; releases are immutable`,
        );
      }
      return { release: existing, created: false };
    }
    const id = crypto.randomUUID();
    try {
      await this.db('progression_releases').insert({
        id,
        entity_ref: input.entityRef,
        version: input.version,
        image: input.image,
        commit_sha: input.commit ?? null,
        // ISO 8601 with milliseconds on both databases, like created_at of
        // promotions: SQLite's date functions read it as UTC.
        committed_at: input.committedAt
          ? new Date(input.committedAt).toISOString()
          : null,
        build_url: input.buildUrl ?? null,
        created_by: input.createdBy,
      });
    } catch (e) {
      if (isUniqueViolation(e)) return this.registerRelease(input);
      throw e;
    }
    return { release: (await this.getRelease(id))!, created: true };
  }

  async getRelease(id: string): Promise<Release | undefined> {
    const row = await this.db('progression_releases').where({ id }).first();
    return row ? toRelease(row) : undefined;
  }

  async findRelease(
    entityRef: string,
    version: string,
  ): Promise<Release | undefined> {
    const row = await this.db('progression_releases')
      .where({ entity_ref: entityRef, version })
      .first();
    return row ? toRelease(row) : undefined;
  }

  /** Releases by id; ids that do not exist are left out. */
  async getReleases(ids: string[]): Promise<Map<string, Release>> {
    const unique = [...new Set(ids)];
    const rows = unique.length
      ? await this.db('progression_releases').whereIn('id', unique)
      : [];
    return new Map(rows.map(row => [row.id, toRelease(row)]));
  }

  /** The newest release of the entity with this image, if any. */
  async findReleaseByImage(
    entityRef: string,
    image: string,
  ): Promise<Release | undefined> {
    const row = await this.db('progression_releases')
      .where({ entity_ref: entityRef, image })
      .orderBy([
        { column: 'created_at', order: 'desc' },
        { column: 'id', order: 'desc' },
      ])
      .first();
    return row ? toRelease(row) : undefined;
  }

  /**
   * For each named stage of an entity: the newest promotion, the active one
   * and the newest that succeeded. One statement of indexed lookups (the
   * entity-stage-time index, the active key), however long the history is.
   */
  async stageSummaries(
    entityRef: string,
    stages: string[],
  ): Promise<Map<string, StageSummary>> {
    const summaries = new Map(
      stages.map(stage => [
        stage,
        {} as {
          last?: Promotion;
          active?: Promotion;
          lastSucceeded?: Promotion;
        },
      ]),
    );
    if (!stages.length) return summaries;
    // created_at alone orders a stage's promotions: one is active at a
    // time, so two never start in the same millisecond.
    // A promotion that waits (or never started) is not a stage's last.
    const newest = (stage: string, which: string, state?: string) =>
      this.db.select(this.db.raw('? as which', [which]), '*').from(
        this.db('progression_promotions')
          .where({ entity_ref: entityRef, stage, ...(state && { state }) })
          .whereNotIn('state', ['queued', 'skipped'])
          .orderBy('created_at', 'desc')
          .limit(1)
          .as(`t_${which}_${stages.indexOf(stage)}`),
      );
    const queries = stages.flatMap(stage => [
      newest(stage, 'last'),
      newest(stage, 'lastSucceeded', 'succeeded'),
    ]);
    const rows = await this.db
      .select(this.db.raw("'active' as which"), '*')
      .from('progression_promotions')
      .whereIn(
        'active_key',
        stages.map(stage => activeKey(entityRef, stage)),
      )
      .unionAll(queries);
    for (const row of rows) {
      const summary = summaries.get(row.stage);
      if (summary) {
        summary[row.which as 'last' | 'active' | 'lastSucceeded'] =
          toPromotion(row);
      }
    }
    return summaries;
  }

  /**
   * Each stage's deployments, lead time, change failure rate and time to
   * restore since `since`, in one statement (see deliveryInsights).
   */
  deliveryInsights(query: DeliveryQuery): Promise<StageDelivery[]> {
    return deliveryInsights(this.db, query);
  }

  deliveryFingerprint(query: DeliveryQuery): Promise<string> {
    return deliveryFingerprint(this.db, query);
  }

  async listReleases(entityRef: string, limit = 100): Promise<Release[]> {
    const rows = await this.db('progression_releases')
      .where({ entity_ref: entityRef })
      .orderBy([
        { column: 'created_at', order: 'desc' },
        { column: 'id', order: 'desc' },
      ])
      .limit(limit);
    return rows.map(toRelease);
  }

  /**
   * Creates a promotion. The same idempotency key (in the same scope)
   * returns the same promotion, and an IdempotencyKeyReusedError when it
   * came with another request. A second active promotion of the entity and
   * stage is a ConflictError naming the active one, unless `whenBusy` is
   * `queue`: then it waits `queued` until the stage is free.
   */
  async createPromotion(
    input: NewPromotion,
  ): Promise<{ promotion: Promotion; created: boolean }> {
    const existing = await this.findRepeated(input);
    if (existing) return { promotion: existing, created: false };
    const id = crypto.randomUUID();
    const row = (state: 'pending' | 'queued') => ({
      id,
      entity_ref: input.entityRef,
      pipeline: input.pipeline,
      stage: input.stage,
      release_id: input.releaseId,
      kind: input.kind ?? 'promotion',
      state,
      // Milliseconds (SQLite's CURRENT_TIMESTAMP has whole seconds), so
      // that the newest promotion sorts first.
      created_at: new Date().toISOString(),
      active_key:
        state === 'pending' ? activeKey(input.entityRef, input.stage) : null,
      idempotency_key: input.idempotencyKey ?? null,
      idempotency_scope: input.idempotencyKey
        ? input.idempotencyScope ?? 'internal'
        : null,
      request_hash: input.requestHash ?? null,
      requested_by: input.requestedBy,
      reason: input.reason ?? null,
    });
    const requested = (tx: Knex, state: PromotionState) =>
      tx('progression_promotion_steps').insert({
        promotion_id: id,
        kind: 'transition',
        name: 'requested',
        status: 'passed',
        to_state: state,
        actor: input.requestedBy,
        reason: input.reason ?? null,
        finished_at: tx.fn.now(),
      });
    try {
      await this.db.transaction(async tx => {
        if (input.whenBusy === 'queue') {
          await tx('progression_promotions').insert(row('queued'));
          await requested(tx, 'queued');
          await this.activateNext(tx, input.entityRef, input.stage);
        } else {
          await tx('progression_promotions').insert(row('pending'));
          await requested(tx, 'pending');
        }
      });
    } catch (e) {
      if (!isUniqueViolation(e)) throw e;
      // Another request with the same key won the race.
      const again = await this.findRepeated(input);
      if (again) return { promotion: again, created: false };
      const active = await this.db('progression_promotions')
        .where({ active_key: activeKey(input.entityRef, input.stage) })
        .first();
      throw new ConflictError(
        `${input.entityRef} already has an active promotion to ${input.stage}${
          active ? ` (${active.id}, ${active.state})` : ''
        }`,
      );
    }
    return { promotion: (await this.getPromotion(id))!, created: true };
  }

  /**
   * What an earlier request with the same idempotency key (in the same
   * scope) created; IdempotencyKeyReusedError when that was another request.
   */
  async findRepeated(
    input: Pick<
      NewPromotion,
      'entityRef' | 'idempotencyKey' | 'idempotencyScope' | 'requestHash'
    >,
  ): Promise<Promotion | undefined> {
    if (!input.idempotencyKey) return undefined;
    const row = await this.db('progression_promotions')
      .where({
        entity_ref: input.entityRef,
        idempotency_scope: input.idempotencyScope ?? 'internal',
        idempotency_key: input.idempotencyKey,
      })
      .first();
    if (!row) return undefined;
    if (
      input.requestHash &&
      row.request_hash &&
      row.request_hash !== input.requestHash
    ) {
      throw new IdempotencyKeyReusedError(
        `Idempotency-Key '${input.idempotencyKey}' was used for a different request (promotion ${row.id}); use a new key for a new request`,
      );
    }
    return toPromotion(row);
  }

  /**
   * When the stage of the entity is free, the newest promotion waiting for
   * it starts (pending) and the older ones waiting end `skipped`: a newer
   * release supersedes them. In the caller's transaction; a concurrent
   * activation that won is left alone.
   */
  private async activateNext(tx: Knex, entityRef: string, stage: string) {
    const key = activeKey(entityRef, stage);
    if (await tx('progression_promotions').where({ active_key: key }).first()) {
      return;
    }
    const [newest, ...older] = await tx('progression_promotions')
      .where({ entity_ref: entityRef, stage, state: 'queued' })
      .orderBy([
        { column: 'created_at', order: 'desc' },
        { column: 'id', order: 'desc' },
      ]);
    if (!newest) return;
    try {
      // A savepoint: on PostgreSQL a unique violation would otherwise abort
      // the caller's whole transaction.
      await tx.transaction(async sp => {
        const moved = await sp('progression_promotions')
          .where({ id: newest.id, state: 'queued' })
          .update({
            state: 'pending',
            active_key: key,
            updated_at: sp.fn.now(),
          });
        if (moved !== 1) return;
        await sp('progression_promotion_steps').insert({
          promotion_id: newest.id,
          kind: 'transition',
          name: 'dequeued',
          status: 'passed',
          from_state: 'queued',
          to_state: 'pending',
          reason: `${stage} is free`,
          finished_at: sp.fn.now(),
        });
        for (const old of older) {
          const skipped = await sp('progression_promotions')
            .where({ id: old.id, state: 'queued' })
            .update({
              state: 'skipped',
              updated_at: sp.fn.now(),
              finished_at: sp.fn.now(),
              error: `superseded by a newer release (promotion ${newest.id})`,
            });
          if (skipped !== 1) continue;
          await sp('progression_promotion_steps').insert({
            promotion_id: old.id,
            kind: 'transition',
            name: 'superseded',
            status: 'skipped',
            from_state: 'queued',
            to_state: 'skipped',
            reason: `a newer release took its place (promotion ${newest.id})`,
            finished_at: sp.fn.now(),
          });
        }
      });
    } catch (e) {
      if (!isUniqueViolation(e)) throw e;
    }
  }

  /**
   * Starts what waits for a stage that is free: a safety net for a queued
   * promotion whose stage freed while it was being queued.
   */
  async activateQueued(): Promise<number> {
    const waiting = await this.db('progression_promotions')
      .distinct('entity_ref', 'stage')
      .where({ state: 'queued' })
      .limit(1000);
    let activated = 0;
    for (const { entity_ref: entityRef, stage } of waiting) {
      const started = await this.db.transaction(async tx => {
        const busy = await tx('progression_promotions')
          .where({ active_key: activeKey(entityRef, stage) })
          .first();
        if (busy) return false;
        await this.activateNext(tx, entityRef, stage);
        return true;
      });
      if (started) activated++;
    }
    return activated;
  }

  async getPromotion(id: string): Promise<Promotion | undefined> {
    const row = await this.db('progression_promotions').where({ id }).first();
    return row ? toPromotion(row) : undefined;
  }

  /**
   * The gate steps of several promotions, oldest first, without their
   * evidence (for summaries): one query.
   */
  async listGateSteps(
    promotionIds: string[],
  ): Promise<(Omit<PromotionStep, 'evidence'> & { promotionId: string })[]> {
    if (!promotionIds.length) return [];
    const rows = await this.db('progression_promotion_steps')
      .select(
        'id',
        'promotion_id',
        'kind',
        'name',
        'status',
        'from_state',
        'to_state',
        'actor',
        'reason',
        'started_at',
        'finished_at',
      )
      .whereIn('promotion_id', [...new Set(promotionIds)])
      .andWhere({ kind: 'gate' })
      .orderBy('id');
    return rows.map(row => ({
      ...toStep({ ...row, evidence: null }),
      promotionId: row.promotion_id,
    }));
  }

  async listSteps(
    promotionId: string,
    page?: { after?: number; limit: number },
  ): Promise<PromotionStep[]> {
    const query = this.db('progression_promotion_steps')
      .where({ promotion_id: promotionId })
      .orderBy('id');
    if (page?.after !== undefined) query.andWhere('id', '>', page.after);
    if (page) query.limit(page.limit);
    return (await query).map(toStep);
  }

  /**
   * Deletes ended promotions (with their steps and approvals) that
   * finished before `before`, keeping the newest `keepLast` of every
   * entity and stage whatever their age; a batch at a time. Returns how
   * many it deleted.
   */
  async deleteEnded(options: {
    before: Date;
    keepLast: number;
    batch?: number;
  }): Promise<number> {
    const ranked = this.db('progression_promotions')
      .select(
        'id',
        'state',
        'finished_at',
        this.db.raw(
          'row_number() over (partition by entity_ref, stage order by created_at desc) as rank',
        ),
      )
      .as('ranked');
    const ids = (
      await this.db
        .select('id')
        .from(ranked)
        .whereIn('state', TERMINAL_PROMOTION_STATES as PromotionState[])
        .andWhere('finished_at', '<', this.at(options.before))
        .andWhere('rank', '>', options.keepLast)
        .limit(options.batch ?? 500)
    ).map(r => r.id);
    if (!ids.length) return 0;
    await this.db.transaction(async tx => {
      await tx('progression_promotion_steps')
        .whereIn('promotion_id', ids)
        .delete();
      await tx('progression_approvals').whereIn('promotion_id', ids).delete();
      await tx('progression_promotions').whereIn('id', ids).delete();
    });
    return ids.length;
  }

  /**
   * Promotions of an entity, newest first. The cursor is opaque to callers;
   * it holds an offset.
   */
  async listPromotions(
    entityRef: string,
    options: {
      stage?: string;
      state?: PromotionState;
      limit?: number;
      cursor?: string;
    } = {},
  ): Promise<{ items: Promotion[]; nextCursor?: string }> {
    const limit = Math.min(Math.max(options.limit ?? 50, 1), 500);
    const offset = options.cursor
      ? Number(Buffer.from(options.cursor, 'base64url').toString('utf8'))
      : 0;
    // A cursor is one this store gave out: a small whole number.
    if (!Number.isSafeInteger(offset) || offset < 0 || offset > 1e9) {
      throw new InputError(
        'Invalid cursor: use the nextCursor of the previous page',
      );
    }
    const query = this.db('progression_promotions').where({
      entity_ref: entityRef,
    });
    if (options.stage) query.andWhere({ stage: options.stage });
    if (options.state) query.andWhere({ state: options.state });
    const rows = await query
      .orderBy([
        { column: 'created_at', order: 'desc' },
        { column: 'id', order: 'desc' },
      ])
      .offset(offset)
      .limit(limit + 1);
    return {
      items: rows.slice(0, limit).map(toPromotion),
      nextCursor:
        rows.length > limit
          ? Buffer.from(String(offset + limit)).toString('base64url')
          : undefined,
    };
  }

  /**
   * Moves a promotion from `from` to `to` and records the step, in one
   * transaction. Returns false when the promotion was not in `from`
   * anymore (someone else moved it first) or, with `ownerId`, when that
   * worker no longer holds it: a worker that lost its claim writes nothing.
   * An ended promotion frees its stage for the newest one waiting; a
   * promotion to `enqueue` (auto-promotion onward) is written in the same
   * transaction, so a crash cannot lose it.
   */
  async transition(
    id: string,
    from: PromotionState,
    to: PromotionState,
    step: NewStep & { error?: string },
    options: { ownerId?: string; enqueue?: NewPromotion; retryAt?: Date } = {},
  ): Promise<boolean> {
    const terminal = TERMINAL_PROMOTION_STATES.includes(to);
    const moved = await this.db.transaction(async tx => {
      const updated = await tx('progression_promotions')
        .where({ id, state: from })
        .andWhere(q =>
          options.ownerId ? q.where({ owner_id: options.ownerId }) : q,
        )
        .update({
          state: to,
          updated_at: tx.fn.now(),
          retry_at: options.retryAt?.toISOString() ?? null,
          ...(terminal && {
            active_key: null,
            finished_at: tx.fn.now(),
            owner_id: null,
          }),
          ...(step.error !== undefined && { error: step.error }),
        });
      if (updated !== 1) return false;
      await tx('progression_promotion_steps').insert(
        stepRow(id, step, { from, to, now: tx.fn.now() }),
      );
      if (terminal) {
        const row = await tx('progression_promotions').where({ id }).first();
        await this.activateNext(tx, row.entity_ref, row.stage);
      }
      if (options.enqueue) {
        await this.enqueueIn(tx, options.enqueue);
      }
      return true;
    });
    return moved;
  }

  /** Queues a promotion inside a transaction, once per idempotency key. */
  private async enqueueIn(tx: Knex, input: NewPromotion) {
    if (input.idempotencyKey) {
      const again = await tx('progression_promotions')
        .where({
          entity_ref: input.entityRef,
          idempotency_scope: input.idempotencyScope ?? 'internal',
          idempotency_key: input.idempotencyKey,
        })
        .first();
      if (again) return;
    }
    const id = crypto.randomUUID();
    await tx('progression_promotions').insert({
      id,
      entity_ref: input.entityRef,
      pipeline: input.pipeline,
      stage: input.stage,
      release_id: input.releaseId,
      kind: input.kind ?? 'promotion',
      state: 'queued',
      created_at: new Date().toISOString(),
      active_key: null,
      idempotency_key: input.idempotencyKey ?? null,
      idempotency_scope: input.idempotencyKey
        ? input.idempotencyScope ?? 'internal'
        : null,
      requested_by: input.requestedBy,
      reason: input.reason ?? null,
    });
    await tx('progression_promotion_steps').insert(
      stepRow(
        id,
        {
          kind: 'transition',
          name: 'requested',
          status: 'passed',
          actor: input.requestedBy,
          reason: input.reason,
        },
        { to: 'queued', now: tx.fn.now() },
      ),
    );
    await this.activateNext(tx, input.entityRef, input.stage);
  }

  /**
   * Puts a promotion whose step failed aside until `retryAt`, recording the
   * error; false when `ownerId` no longer holds it.
   */
  async deferPromotion(
    id: string,
    ownerId: string | undefined,
    retryAt: Date,
    step?: NewStep,
    state?: PromotionState,
  ): Promise<boolean> {
    if (!step) {
      const updated = await this.db('progression_promotions')
        .where({ id })
        .andWhere(q => (state ? q.where({ state }) : q))
        .andWhere(q => (ownerId ? q.where({ owner_id: ownerId }) : q))
        .update({ retry_at: retryAt.toISOString() });
      return updated === 1;
    }
    return this.addStepIfHeld(
      id,
      step,
      { ownerId, state },
      { retry_at: retryAt.toISOString() },
    );
  }

  /**
   * In one transaction: updates the promotion only while it is in
   * `held.state` and held by `held.ownerId` (when given), then records the
   * step; false, with nothing written, when it is not.
   */
  private addStepIfHeld(
    promotionId: string,
    step: NewStep,
    held: { state?: PromotionState; ownerId?: string },
    update: Record<string, unknown>,
  ): Promise<boolean> {
    return this.db.transaction(async tx => {
      const updated = await tx('progression_promotions')
        .where({ id: promotionId })
        .andWhere(q => (held.state ? q.where({ state: held.state }) : q))
        .andWhere(q => (held.ownerId ? q.where({ owner_id: held.ownerId }) : q))
        .update(update);
      if (updated !== 1) return false;
      await tx('progression_promotion_steps').insert(
        stepRow(promotionId, step, { now: tx.fn.now() }),
      );
      return true;
    });
  }

  /**
   * Records a step (a gate result, a deploy patch, …) without a state
   * change. With `fence`, only while the promotion is still in that state
   * and held by that owner: false otherwise, and nothing is written.
   */
  async addStep(
    promotionId: string,
    step: NewStep,
    fence?: { state: PromotionState; ownerId?: string },
  ): Promise<boolean> {
    if (!fence) {
      await this.db('progression_promotion_steps').insert(
        stepRow(promotionId, step, { now: this.db.fn.now() }),
      );
      return true;
    }
    // Touching the row orders this write after any concurrent state change.
    return this.addStepIfHeld(promotionId, step, fence, {
      updated_at: this.db.fn.now(),
    });
  }

  /**
   * Claims the next promotion that needs work in `states` for `ownerId`:
   * one with no owner, or whose owner stopped heartbeating before
   * `staleBefore`. Compare-and-set, so two workers never hold the same one.
   */
  async claim(
    ownerId: string,
    states: PromotionState[],
    staleBefore: Date,
  ): Promise<Promotion | undefined> {
    const now = new Date().toISOString();
    const candidates = await this.db('progression_promotions')
      .whereIn('state', states)
      .andWhere(q =>
        q
          .whereNull('owner_id')
          .orWhere('heartbeat_at', '<', this.at(staleBefore)),
      )
      .andWhere(q => q.whereNull('retry_at').orWhere('retry_at', '<=', now))
      .orderBy('updated_at')
      .limit(10);
    for (const row of candidates) {
      const updated = await this.db('progression_promotions')
        .where({ id: row.id, state: row.state })
        .andWhere(q =>
          row.owner_id === null
            ? q.whereNull('owner_id')
            : q
                .where({ owner_id: row.owner_id })
                .andWhere('heartbeat_at', '<', this.at(staleBefore)),
        )
        .update({
          owner_id: ownerId,
          heartbeat_at: this.db.fn.now(),
          attempt: Number(row.attempt) + 1,
        });
      if (updated === 1) return this.getPromotion(row.id);
    }
    return undefined;
  }

  /**
   * The latest succeeded promotion of a release into a stage, for the
   * no-skipping rule.
   */
  async findSucceeded(
    entityRef: string,
    stage: string,
    releaseId: string,
  ): Promise<Promotion | undefined> {
    const row = await this.db('progression_promotions')
      .where({
        entity_ref: entityRef,
        stage,
        release_id: releaseId,
        state: 'succeeded',
      })
      .orderBy('finished_at', 'desc')
      .first();
    return row ? toPromotion(row) : undefined;
  }

  /**
   * The newest promotion of a release into a stage that started (queued
   * and skipped ones never did), whatever its outcome.
   */
  async findLatest(
    entityRef: string,
    stage: string,
    releaseId: string,
  ): Promise<Promotion | undefined> {
    const row = await this.db('progression_promotions')
      .where({ entity_ref: entityRef, stage, release_id: releaseId })
      .whereNotIn('state', ['queued', 'skipped'])
      .orderBy([
        { column: 'created_at', order: 'desc' },
        { column: 'id', order: 'desc' },
      ])
      .first();
    return row ? toPromotion(row) : undefined;
  }

  /**
   * The on-demand rollbacks of a stage requested after `promotion` that
   * succeeded, newest first: they took the stage off what it deployed. (A
   * stage runs one promotion at a time, so a later request started after
   * it ended; creation times have milliseconds on every database.)
   */
  async findRollbacksAfter(promotion: Promotion): Promise<Promotion[]> {
    const rows = await this.db('progression_promotions')
      .where({
        entity_ref: promotion.entityRef,
        stage: promotion.stage,
        kind: 'rollback',
        state: 'succeeded',
      })
      .andWhere('created_at', '>', promotion.createdAt)
      .orderBy('created_at', 'desc')
      .limit(10);
    return rows.map(toPromotion);
  }

  /** Records an approver's decision; each approver decides once. */
  async addApproval(
    promotionId: string,
    approval: Omit<Approval, 'createdAt'>,
  ): Promise<void> {
    try {
      await this.db('progression_approvals').insert({
        promotion_id: promotionId,
        approver: approval.approver,
        decision: approval.decision,
        comment: approval.comment ?? null,
        evidence_hash: approval.evidenceHash,
      });
    } catch (e) {
      if (isUniqueViolation(e)) {
        throw new ConflictError(
          `${approval.approver} has already decided on promotion ${promotionId}`,
        );
      }
      throw e;
    }
  }

  async listApprovals(promotionId: string): Promise<Approval[]> {
    const rows = await this.db('progression_approvals')
      .where({ promotion_id: promotionId })
      .orderBy('id');
    return rows.map(row => ({
      approver: row.approver,
      decision: row.decision,
      comment: row.comment ?? undefined,
      evidenceHash: row.evidence_hash,
      createdAt: date(row.created_at)!,
    }));
  }

  /** Promotions in a state, oldest change first (for time-based rules). */
  async listInState(state: PromotionState, limit = 100): Promise<Promotion[]> {
    const rows = await this.db('progression_promotions')
      .where({ state })
      .orderBy('updated_at')
      .limit(limit);
    return rows.map(toPromotion);
  }

  /** Renews the claim; false when another worker took it over. */
  async heartbeat(id: string, ownerId: string): Promise<boolean> {
    const updated = await this.db('progression_promotions')
      .where({ id, owner_id: ownerId })
      .update({ heartbeat_at: this.db.fn.now() });
    return updated === 1;
  }

  /**
   * Frees the claims a replica's earlier run left behind (it was killed
   * before it could give them up): owners that start with `prefix` other
   * than `current`. Returns how many.
   */
  async releaseClaims(prefix: string, current: string): Promise<number> {
    return this.db('progression_promotions')
      .where('owner_id', '>=', prefix)
      .andWhere('owner_id', '<', `${prefix}\uffff`)
      .andWhereNot({ owner_id: current })
      .update({ owner_id: null, heartbeat_at: null });
  }

  /** The states of some promotions now, by id. */
  async statesOf(ids: string[]): Promise<Map<string, PromotionState>> {
    if (!ids.length) return new Map();
    const rows = await this.db('progression_promotions')
      .select('id', 'state')
      .whereIn('id', ids);
    return new Map(rows.map(r => [r.id, r.state]));
  }

  /** Gives the promotion up, for example while it waits for an approval. */
  async unclaim(id: string, ownerId: string): Promise<void> {
    await this.db('progression_promotions')
      .where({ id, owner_id: ownerId })
      .update({ owner_id: null, heartbeat_at: null });
  }
}

/**
 * What a registration says of an existing release that differs from it, in
 * the API's names: `commit abc123 (this registration says def456)`;
 * undefined when nothing it gives differs. Commit times are compared as
 * instants: `2026-11-30T09:00:00+01:00` is `08:00:00Z`.
 */
function releaseDifference(
  existing: Release,
  input: Omit<Release, 'id' | 'createdAt'>,
): string | undefined {
  const sameInstant = (a?: string, b?: string) =>
    a !== undefined && b !== undefined && Date.parse(a) === Date.parse(b);
  const fields: [string, string | undefined, string | undefined, boolean][] = [
    ['image', existing.image, input.image, existing.image === input.image],
    ['commit', existing.commit, input.commit, existing.commit === input.commit],
    [
      'committedAt',
      existing.committedAt,
      input.committedAt,
      sameInstant(existing.committedAt, input.committedAt),
    ],
    [
      'url',
      existing.buildUrl,
      input.buildUrl,
      existing.buildUrl === input.buildUrl,
    ],
  ];
  const differs = fields
    .filter(([, , given, same]) => given !== undefined && !same)
    .map(
      ([name, was, given]) =>
        `${name} ${was ?? '(none)'} (this registration says ${given})`,
    );
  return differs.length ? differs.join(', ') : undefined;
}
