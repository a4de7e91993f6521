import { LoggerService } from '@backstage/backend-plugin-api';
import { parseEntityRef } from '@backstage/catalog-model';
import {
  NotificationSendOptions,
  NotificationService,
} from '@backstage/plugin-notifications-node';
import { promotionOutcome } from '@progression-io/backstage-plugin-progression-common';
import { Knex } from 'knex';
import crypto from 'node:crypto';
import { ProgressionConfig, StageConfig } from '../config/types';
import { Promotion, PromotionStore } from '../database/PromotionStore';
import { formatDuration } from '../engine/admission';
import { PromotionTransition } from '../signals/PromotionSignals';
import { withTimeout } from '../util/withTimeout';

const TABLE = 'progression_notifications';

/** The event of a break-glass window override (not a state). */
const WINDOW_OVERRIDE = 'window-override';

/** The states people are told about (a success only in a pipeline's last stage). */
const NOTIFIED_STATES = new Set([
  'awaiting-approval',
  'failed',
  'rolled-back',
  'succeeded',
]);

/** How far back a sweep looks for a state change whose notification was never recorded. */
const LOOKBACK_MS = 24 * 3600_000;

/**
 * Whether the notifications service answered 404: the backend has no
 * notifications plugin, and trying again cannot help. Other refusals are
 * tried again like any failure (the notifications backend answers 400 for
 * a catalog it could not read, for example), within the attempts' bound.
 */
const backendMissing = (e: unknown) =>
  /status 404\b/.test(String((e as Error)?.message ?? e));

interface NotificationRow {
  promotion_id: string;
  event: string;
  status: string;
  attempts: number;
}

/**
 * Tells people about promotions through Backstage's notifications service:
 * a promotion awaiting approval goes to the stage's approvers, a failed or
 * rolled-back one to the entity's owners (the notifications backend
 * resolves the entity to its owner and a group to its members), a success
 * in a pipeline's last stage to the owners too.
 *
 * Once per promotion and event, whoever reports it: a row keyed by both is
 * inserted before the send, and only the sender that claims it (a
 * compare-and-set with a lease) sends; a retried step, a restart or a
 * second replica finds the row and sends nothing. A send that fails is
 * tried again a bounded number of times, logged, and never touches the
 * promotion. A crash between a state change and its row, or in the middle
 * of a send, is picked up by `sweep`; a send that reached the
 * notifications backend but was not marked sent is sent again with the
 * same `scope`, which updates the notification it made instead of adding
 * one.
 */
export class PromotionNotifier {
  private readonly id = `notifier-${crypto.randomUUID().slice(0, 8)}`;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopped = false;
  /** Aborted by `stop`: ends the waits for sends that have not answered. */
  private readonly stopping = new AbortController();
  private warnedMissing = false;

  constructor(
    private readonly options: {
      db: Knex;
      store: PromotionStore;
      config: ProgressionConfig;
      notifications: NotificationService;
      logger: LoggerService;
      /** Sends per notification before it is given up; default 5. */
      maxAttempts?: number;
      /** Waits between attempts: from initialDelayMs, times four, up to maxDelayMs. */
      initialDelayMs?: number;
      maxDelayMs?: number;
      /** How long one send may take; default 10 s. */
      sendTimeoutMs?: number;
      /** How long a sender holds a notification before another may send it; default 1 min. */
      leaseMs?: number;
      /** How many promotions and notifications a sweep looks at; default 200. */
      sweepBatch?: number;
    },
  ) {}

  private get db() {
    return this.options.db;
  }

  private get maxAttempts() {
    return this.options.maxAttempts ?? 5;
  }

  private get sendTimeoutMs() {
    return this.options.sendTimeoutMs ?? 10_000;
  }

  private get sweepBatch() {
    return this.options.sweepBatch ?? 200;
  }

  private get leaseMs() {
    // Longer than a send may take, so a live sender keeps what it holds.
    return Math.max(this.options.leaseMs ?? 60_000, this.sendTimeoutMs * 2);
  }

  private delayAfter(attempt: number) {
    return Math.min(
      this.options.maxDelayMs ?? 60_000,
      (this.options.initialDelayMs ?? 1000) * 4 ** (attempt - 1),
    );
  }

  /**
   * A Date comparable with the promotions' timestamp columns, which
   * SQLite keeps as 'YYYY-MM-DD HH:MM:SS' text.
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
   * Told of every state change the engine makes; returns at once. Nothing
   * here may hold up or fail a promotion: errors are logged.
   */
  onTransition(change: PromotionTransition): void {
    if (this.stopped || !NOTIFIED_STATES.has(change.to)) return;
    this.track(
      this.notify(change.promotionId).catch(e =>
        this.options.logger.warn(
          `could not notify about promotion ${change.promotionId} (${
            change.to
          }): ${(e as Error).message ?? e}`,
        ),
      ),
    );
  }

  /**
   * Told of a break-glass override of a promotion window: the entity's
   * owners hear who overrode it and why, once. Resolves once the
   * notification is recorded, the send goes on alone. Recorded even while
   * this backend stops: the sweep of a running replica sends it then (the
   * sweep finds missed state changes, not missed overrides).
   */
  async onWindowOverride(promotionId: string): Promise<void> {
    await this.record(promotionId, WINDOW_OVERRIDE);
    if (this.stopped) return;
    this.track(
      this.deliver(promotionId, WINDOW_OVERRIDE).catch(e =>
        this.options.logger.warn(
          `could not notify about the window override of promotion ${promotionId}: ${
            (e as Error).message ?? e
          }`,
        ),
      ),
    );
  }

  /**
   * Records and sends the notification the promotion's state calls for,
   * if any and if nobody did yet. Resolves when it was sent, given up
   * for now (a retry is scheduled), or found to be someone else's.
   */
  async notify(promotionId: string): Promise<void> {
    const p = await this.options.store.getPromotion(promotionId);
    if (!p) return;
    const event = await this.eventOf(p);
    if (!event) return;
    await this.record(p.id, event);
    await this.deliver(p.id, event);
  }

  /**
   * Finishes what a crash left: a state change whose notification was
   * never recorded (within the last day), and notifications that are due
   * (a retry whose timer died with its process, a send a crash cut
   * short: its lease ran out). Safe on every replica at once.
   */
  async sweep(): Promise<void> {
    if (this.stopped) return;
    const lastStages = [...this.options.config.pipelines.values()].flatMap(
      pipeline =>
        pipeline.stages.length
          ? [{ pipeline: pipeline.name, stage: pipeline.stages.at(-1)!.name }]
          : [],
    );
    const missed = await this.db('progression_promotions as p')
      .leftJoin(`${TABLE} as n`, join =>
        join.on('n.promotion_id', 'p.id').andOn('n.event', 'p.state'),
      )
      .where('p.updated_at', '>=', this.at(new Date(Date.now() - LOOKBACK_MS)))
      .andWhere(q => {
        q.whereIn('p.state', ['awaiting-approval', 'failed', 'rolled-back']);
        if (lastStages.length) {
          q.orWhere(success =>
            success.where('p.state', 'succeeded').andWhere(last => {
              for (const { pipeline, stage } of lastStages) {
                last.orWhere({ 'p.pipeline': pipeline, 'p.stage': stage });
              }
            }),
          );
        }
      })
      // A promotion asked for approval again has a row for the first ask.
      .andWhere(q =>
        q.whereNull('n.promotion_id').orWhere('p.state', 'awaiting-approval'),
      )
      // Those without a row first: many promotions awaiting approval (each
      // looked at on every sweep, for an ask made again) must not keep a
      // missed failure out of the batch.
      .orderByRaw('case when n.promotion_id is null then 0 else 1 end')
      .orderBy('p.updated_at')
      .limit(this.sweepBatch)
      .select('p.id');
    for (const { id } of missed) {
      if (this.stopped) return;
      const p = await this.options.store.getPromotion(id);
      const event = p && (await this.eventOf(p));
      if (event) await this.record(id, event);
    }
    const due: NotificationRow[] = await this.db(TABLE)
      .where({ status: 'pending' })
      .andWhere(q =>
        q
          .whereNull('not_before')
          .orWhere('not_before', '<=', new Date().toISOString()),
      )
      .orderBy('created_at')
      .limit(this.sweepBatch);
    for (const row of due) {
      if (this.stopped) return;
      await this.deliver(row.promotion_id, row.event);
    }
  }

  /**
   * Stops sending, and waits for the sends under way for at most their
   * timeout. A send that has not answered by then is not waited for: its
   * row stays held until its lease ends, then the sweep of a running
   * replica sends it (with the same scope).
   */
  async stop(): Promise<void> {
    this.stopped = true;
    this.stopping.abort(new Error('the notifier stopped'));
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    while (this.inFlight.size) {
      await Promise.allSettled([...this.inFlight]);
    }
  }

  private track(work: Promise<void>) {
    this.inFlight.add(work);
    work.finally(() => this.inFlight.delete(work));
  }

  private lastStageOf(p: Promotion): StageConfig | undefined {
    return this.options.config.pipelines.get(p.pipeline)?.stages.at(-1);
  }

  /**
   * The event to notify of for the promotion's state, or undefined. An
   * approval asked for again (the evidence changed before the deploy) is
   * an event of its own: the earlier approvals no longer count.
   */
  private async eventOf(p: Promotion): Promise<string | undefined> {
    switch (p.state) {
      case 'awaiting-approval': {
        const asks = (await this.options.store.listSteps(p.id)).filter(
          s => s.toState === 'awaiting-approval',
        ).length;
        return asks > 1 ? `awaiting-approval#${asks}` : 'awaiting-approval';
      }
      case 'failed':
      case 'rolled-back':
        return p.state;
      case 'succeeded':
        return this.lastStageOf(p)?.name === p.stage ? 'succeeded' : undefined;
      default:
        return undefined;
    }
  }

  /** The row that makes the notification one: inserted once, whoever tries. */
  private async record(promotionId: string, event: string) {
    await this.db(TABLE)
      .insert({
        promotion_id: promotionId,
        event,
        status: 'pending',
        not_before: new Date().toISOString(),
      })
      .onConflict(['promotion_id', 'event'])
      .ignore();
  }

  /**
   * Sends a pending notification if this sender can claim it: a
   * compare-and-set that holds it for the lease, so that no other sender
   * sends it meanwhile.
   */
  private async deliver(promotionId: string, event: string): Promise<void> {
    if (this.stopped) return;
    const now = Date.now();
    const claimed = await this.db(TABLE)
      .where({ promotion_id: promotionId, event, status: 'pending' })
      .andWhere(q =>
        q
          .whereNull('not_before')
          .orWhere('not_before', '<=', new Date(now).toISOString()),
      )
      .update({
        claimed_by: this.id,
        not_before: new Date(now + this.leaseMs).toISOString(),
        attempts: this.db.raw('attempts + 1'),
      });
    if (claimed !== 1) return;
    const mine = this.db(TABLE).where({
      promotion_id: promotionId,
      event,
      claimed_by: this.id,
    });
    const { attempts } = (await this.db(TABLE)
      .where({ promotion_id: promotionId, event })
      .first('attempts')) as { attempts: number };

    let message: NotificationSendOptions;
    try {
      const composed = await this.compose(promotionId, event);
      if (typeof composed === 'string') {
        await mine.clone().update({
          status: 'skipped',
          claimed_by: null,
          not_before: null,
          last_error: composed,
        });
        return;
      }
      message = composed;
      await this.send(promotionId, event, composed);
    } catch (e) {
      // Stopping while a send may still arrive: the row stays held until
      // its lease ends, so that no other sender sends it meanwhile.
      if (this.stopping.signal.aborted) return;
      await this.failed(promotionId, event, Number(attempts), e);
      return;
    }
    await mine.clone().update({
      status: 'sent',
      claimed_by: null,
      not_before: null,
      last_error: null,
      sent_at: this.db.fn.now(),
    });
    this.options.logger.info(
      `notified ${describeRecipients(message)} of promotion ${promotionId} (${
        event.split('#')[0]
      }): ${message.payload.title}`,
    );
  }

  /**
   * One send. A send cannot be called back once made: when the
   * notifications service has not answered in time, sending again could
   * tell everyone twice (a second send with the same scope makes the
   * notification unread again and runs the backend's processors, e-mail
   * for example, again). So its answer is waited for while this sender's
   * lease on the row holds; only a send that failed, or that has not
   * answered by then, is tried again.
   */
  private async send(
    promotionId: string,
    event: string,
    message: NotificationSendOptions,
  ): Promise<void> {
    const sending = this.options.notifications.send(message);
    try {
      await withTimeout(
        () => sending,
        this.sendTimeoutMs,
        `the notifications service did not answer within ${formatDuration(
          this.sendTimeoutMs,
        )}`,
      );
    } catch (e) {
      if ((e as Error)?.name !== 'TimeoutError') throw e;
      // Stopping: not waited for any longer (the row stays held).
      this.stopping.signal.throwIfAborted();
      // Within the lease, with room to mark the row before it ends.
      const more = this.leaseMs - this.sendTimeoutMs - this.leaseMs / 10;
      this.options.logger.warn(
        `the notifications service has not answered the notification of promotion ${promotionId} (${
          event.split('#')[0]
        }) within ${formatDuration(
          this.sendTimeoutMs,
        )}; waiting up to ${formatDuration(
          more,
        )} more for its answer before sending it again`,
      );
      await withTimeout(
        () => sending,
        more,
        `the notifications service did not answer within ${formatDuration(
          this.sendTimeoutMs + more,
        )}`,
        this.stopping.signal,
      );
    }
  }

  /** After a failed send: try again later, or give up when that cannot help or enough was tried. */
  private async failed(
    promotionId: string,
    event: string,
    attempts: number,
    e: unknown,
  ) {
    const reason = String((e as Error)?.message ?? e);
    const missing = backendMissing(e);
    const mine = this.db(TABLE).where({
      promotion_id: promotionId,
      event,
      claimed_by: this.id,
    });
    if (missing || attempts >= this.maxAttempts) {
      await mine.update({
        status: 'failed',
        claimed_by: null,
        not_before: null,
        last_error: reason,
      });
      if (missing) {
        // A backend without the notifications plugin: say so once, not
        // at every promotion.
        if (!this.warnedMissing) {
          this.warnedMissing = true;
          this.options.logger.warn(
            `Progression sends no notifications: the notifications backend is not installed (${reason}). Add @backstage/plugin-notifications-backend, or set progression.notifications.enabled: false`,
          );
        }
        return;
      }
      this.options.logger.warn(
        `gave up notifying of promotion ${promotionId} (${event}) after ${attempts} attempt(s): ${reason}`,
      );
      return;
    }
    const delay = this.delayAfter(attempts);
    await mine.update({
      claimed_by: null,
      not_before: new Date(Date.now() + delay).toISOString(),
      last_error: reason,
    });
    this.options.logger.warn(
      `could not notify of promotion ${promotionId} (${event}): ${reason}; attempt ${attempts} of ${
        this.maxAttempts
      }, trying again in ${formatDuration(delay)}`,
    );
    if (this.stopped) return;
    // The sweep would pick it up too; this is sooner.
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      this.track(
        this.deliver(promotionId, event).catch(err =>
          this.options.logger.warn(
            `could not notify of promotion ${promotionId} (${event}): ${err}`,
          ),
        ),
      );
    }, delay + 10);
    timer.unref?.();
    this.timers.add(timer);
  }

  /**
   * The notification for the event, or why there is none any more (the
   * promotion or its stage is gone, it moved on from awaiting approval).
   */
  private async compose(
    promotionId: string,
    event: string,
  ): Promise<NotificationSendOptions | string> {
    const p = await this.options.store.getPromotion(promotionId);
    if (!p) return 'the promotion is gone';
    const [state] = event.split('#');
    if (event !== WINDOW_OVERRIDE && p.state !== state) {
      return `the promotion is ${p.state} now`;
    }
    const stage = this.options.config.pipelines
      .get(p.pipeline)
      ?.stages.find(s => s.name === p.stage);
    if (!stage) return `stage ${p.pipeline}/${p.stage} is no longer configured`;
    const release = await this.options.store.getRelease(p.releaseId);
    const entity = parseEntityRef(p.entityRef);
    if (event === WINDOW_OVERRIDE) {
      const override = [...(await this.options.store.listSteps(p.id))]
        .reverse()
        .find(s => s.kind === 'window' && s.name === 'override');
      const by = override?.actor ?? 'someone';
      const why = (override?.evidence as { reason?: string } | undefined)
        ?.reason;
      return {
        recipients: { type: 'entity', entityRef: p.entityRef },
        payload: {
          title: `${by} overrode ${stage.title}'s promotion window for ${
            entity.name
          } ${release?.version ?? p.releaseId}`,
          description: `Break-glass: the promotion goes ahead while ${
            stage.title
          } is closed${why ? `. Reason: ${why}` : ''}.`,
          link: `/catalog/${encodeURIComponent(
            entity.namespace,
          )}/${encodeURIComponent(
            entity.kind.toLocaleLowerCase('en-US'),
          )}/${encodeURIComponent(entity.name)}/environments?promotion=${p.id}`,
          topic: `progression:${p.entityRef}`,
          scope: `progression:promotion:${p.id}:${WINDOW_OVERRIDE}`,
          severity: 'high',
        },
      };
    }
    const outcome = promotionOutcome({
      state: p.state,
      version: release?.version ?? p.releaseId,
      stageTitle: stage.title,
      kind: p.kind,
      error: p.error,
      entityName: entity.name,
    });
    const payload = {
      title: outcome.summary,
      // The Environments tab, opened on this promotion.
      link: `/catalog/${encodeURIComponent(
        entity.namespace,
      )}/${encodeURIComponent(
        entity.kind.toLocaleLowerCase('en-US'),
      )}/${encodeURIComponent(entity.name)}/environments?promotion=${p.id}`,
      // One topic per entity, so that people can mute one service.
      topic: `progression:${p.entityRef}`,
      // A send repeated after a crash updates what the first one made.
      scope: `progression:promotion:${p.id}:${state}`,
    };
    if (state === 'awaiting-approval') {
      const requester = isUserRef(p.requestedBy) ? p.requestedBy : undefined;
      return {
        recipients: {
          type: 'entity',
          // Read in full from the configuration (group:default/…).
          entityRef: stage.approval.approvers,
          // The requester may not approve their own promotion.
          ...(requester && !stage.approval.allowSelfApproval
            ? { excludeEntityRef: requester }
            : {}),
        },
        payload: {
          ...payload,
          description: `${p.requestedBy} asked for it${
            p.reason ? ` (${p.reason})` : ''
          }. ${
            event.includes('#')
              ? 'Asked again: what was approved changed before the deploy, so the earlier approvals no longer count. '
              : ''
          }Approve or reject it in the Environments tab.`,
          severity: 'high',
        },
      };
    }
    return {
      recipients: { type: 'entity', entityRef: p.entityRef },
      payload: {
        ...payload,
        description:
          outcome.reason ??
          `${release?.version ?? p.releaseId} runs in ${stage.title}; ${
            p.requestedBy
          } asked for it.`,
        severity: p.state === 'succeeded' ? 'normal' : 'high',
      },
    };
  }
}

function isUserRef(ref: string): boolean {
  try {
    return parseEntityRef(ref).kind.toLocaleLowerCase('en-US') === 'user';
  } catch {
    return false;
  }
}

function describeRecipients(message: NotificationSendOptions): string {
  const { recipients } = message;
  return recipients.type === 'broadcast'
    ? 'everyone'
    : [recipients.entityRef].flat().join(', ');
}
