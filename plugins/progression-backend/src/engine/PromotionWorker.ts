import { LoggerService } from '@backstage/backend-plugin-api';
import crypto from 'node:crypto';
import os from 'node:os';
import { PromotionStore } from '../database/PromotionStore';
import { StepInterrupted } from './failures';
import { PromotionEngine, WORKABLE_STATES } from './PromotionEngine';

/**
 * Claims promotions that need work and runs them, heartbeating while it
 * does. Every backend replica runs one; the store's compare-and-set claim
 * makes sure each promotion runs on one of them, and a promotion whose
 * worker stopped heartbeating (a killed process) is taken over. A replica
 * that restarts takes its own orphaned claims back at once: its owner ids
 * start with its replica id.
 */
export class PromotionWorker {
  readonly ownerId: string;
  private readonly replicaId: string;
  private readonly running = new Map<
    string,
    { controller: AbortController; done: Promise<void> }
  >();
  private readonly retryTimers = new Set<NodeJS.Timeout>();
  private draining?: Promise<void>;
  private again = false;
  private stopped = false;
  private started?: Promise<void>;

  constructor(
    private readonly options: {
      store: PromotionStore;
      engine: PromotionEngine;
      logger: LoggerService;
      /** This replica's name across restarts; the host name by default. */
      replicaId?: string;
      heartbeatMs?: number;
      /** A claim not renewed for this long is taken over. */
      staleMs?: number;
      maxConcurrent?: number;
    },
  ) {
    this.replicaId = options.replicaId ?? os.hostname();
    this.ownerId = `${this.replicaId}/${process.pid}-${crypto
      .randomUUID()
      .slice(0, 8)}`;
  }

  private get heartbeatMs() {
    return this.options.heartbeatMs ?? 10_000;
  }

  private get staleMs() {
    return this.options.staleMs ?? 60_000;
  }

  /** Frees what an earlier run of this replica held when it was killed. */
  private start(): Promise<void> {
    this.started ??= this.options.store
      .releaseClaims(`${this.replicaId}/`, this.ownerId)
      .then(
        released => {
          if (released > 0) {
            this.options.logger.info(
              `took back ${released} promotion(s) this replica held before it restarted`,
            );
          }
        },
        e => {
          this.started = undefined;
          throw e;
        },
      );
    return this.started;
  }

  /** Claims and starts what it can; resolves when nothing more can be claimed. */
  async runOnce(): Promise<void> {
    if (this.draining) {
      this.again = true;
      return this.draining;
    }
    this.draining = (async () => {
      await this.start();
      await this.options.engine
        .expireApprovals()
        .catch(e =>
          this.options.logger.warn(`could not expire approvals: ${e}`),
        );
      await this.options.store
        .activateQueued()
        .catch(e =>
          this.options.logger.warn(`could not start queued promotions: ${e}`),
        );
      do {
        this.again = false;
        while (
          !this.stopped &&
          this.running.size < (this.options.maxConcurrent ?? 20)
        ) {
          const claimed = await this.options.store.claim(
            this.ownerId,
            WORKABLE_STATES,
            new Date(Date.now() - this.staleMs),
          );
          if (!claimed) break;
          this.run(claimed.id);
        }
      } while (this.again && !this.stopped);
    })().finally(() => {
      this.draining = undefined;
    });
    return this.draining;
  }

  /** Asks for a run soon, for example right after a promotion was requested. */
  kick() {
    if (this.stopped) return;
    this.runOnce().catch(e =>
      this.options.logger.error(`promotion worker: ${e}`),
    );
  }

  /** Asks for a run at `at`, when a failed step may be tried again. */
  private kickAt(at: string) {
    const timer = setTimeout(() => {
      this.retryTimers.delete(timer);
      this.kick();
    }, Math.max(0, Date.parse(at) - Date.now()) + 50);
    timer.unref?.();
    this.retryTimers.add(timer);
  }

  private run(id: string) {
    const controller = new AbortController();
    const heartbeat = setInterval(() => {
      this.options.store.heartbeat(id, this.ownerId).then(
        alive => {
          // Another worker took it over: stop here, it carries on.
          if (!alive) controller.abort(new StepInterrupted('claim lost'));
        },
        () => undefined,
      );
    }, this.heartbeatMs);
    heartbeat.unref?.();
    const done = this.options.engine
      .run(id, controller.signal, this.ownerId)
      .then(
        () => undefined,
        e => {
          // An interruption is not an outcome: nothing to record.
          if (!(e instanceof StepInterrupted)) {
            this.options.logger.error(
              `promotion ${id} stopped on an unexpected error: ${
                (e as Error).message
              }`,
            );
          }
        },
      )
      .finally(async () => {
        clearInterval(heartbeat);
        // Waiting for people, a retry, or interrupted: any worker may pick
        // it up when it is due.
        await this.options.store
          .unclaim(id, this.ownerId)
          .catch(() => undefined);
        this.running.delete(id);
        const after = await this.options.store
          .getPromotion(id)
          .catch(() => undefined);
        if (after?.retryAt && !this.stopped) this.kickAt(after.retryAt);
        if (!this.stopped) this.kick();
      });
    this.running.set(id, { controller, done });
  }

  /** The promotions this worker runs now. */
  get active(): string[] {
    return [...this.running.keys()];
  }

  /**
   * Stops taking work and interrupts what runs, without recording an
   * outcome; waits until every interrupted promotion is given up, so that
   * this or another replica continues it at once.
   */
  async stop() {
    this.stopped = true;
    for (const timer of this.retryTimers) clearTimeout(timer);
    this.retryTimers.clear();
    const running = [...this.running.values()];
    for (const { controller } of running) {
      controller.abort(new StepInterrupted('the backend is shutting down'));
    }
    await Promise.all(running.map(r => r.done));
    await this.draining?.catch(() => undefined);
  }
}
