import { LoggerService } from '@backstage/backend-plugin-api';
import crypto from 'node:crypto';
import os from 'node:os';
import { DatabasePromotionStore } from '../database/DatabasePromotionStore';
import { PromotionEngine, WORKABLE_STATES } from './PromotionEngine';

/**
 * Claims promotions that need work and runs them, heartbeating while it
 * does. Every backend replica runs one; the store's compare-and-set claim
 * makes sure each promotion runs on one of them, and a promotion whose
 * worker stopped heartbeating (a killed process) is taken over.
 */
export class PromotionWorker {
  readonly ownerId: string;
  private readonly running = new Map<string, AbortController>();
  private draining?: Promise<void>;
  private again = false;
  private stopped = false;

  constructor(
    private readonly options: {
      store: DatabasePromotionStore;
      engine: PromotionEngine;
      logger: LoggerService;
      ownerId?: string;
      heartbeatMs?: number;
      /** A claim not renewed for this long is taken over. */
      staleMs?: number;
      maxConcurrent?: number;
    },
  ) {
    this.ownerId =
      options.ownerId ??
      `${os.hostname()}-${process.pid}-${crypto.randomUUID().slice(0, 8)}`;
  }

  private get heartbeatMs() {
    return this.options.heartbeatMs ?? 10_000;
  }

  private get staleMs() {
    return this.options.staleMs ?? 60_000;
  }

  /** Claims and starts what it can; resolves when nothing more can be claimed. */
  async runOnce(): Promise<void> {
    if (this.draining) {
      this.again = true;
      return this.draining;
    }
    this.draining = (async () => {
      await this.options.engine
        .expireApprovals()
        .catch(e =>
          this.options.logger.warn(`could not expire approvals: ${e}`),
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
          this.start(claimed.id);
        }
      } while (this.again && !this.stopped);
    })().finally(() => {
      this.draining = undefined;
    });
    return this.draining;
  }

  /** Asks for a run soon, for example right after a promotion was requested. */
  kick() {
    this.runOnce().catch(e =>
      this.options.logger.error(`promotion worker: ${e}`),
    );
  }

  private start(id: string) {
    const controller = new AbortController();
    this.running.set(id, controller);
    const heartbeat = setInterval(() => {
      this.options.store.heartbeat(id, this.ownerId).then(
        alive => {
          // Another worker took it over: stop here, it carries on.
          if (!alive) controller.abort();
        },
        () => undefined,
      );
    }, this.heartbeatMs);
    heartbeat.unref?.();
    this.options.engine
      .run(id, controller.signal)
      .catch(e => {
        this.options.logger.warn(
          `promotion ${id} stopped on an error and will be retried: ${
            (e as Error).message
          }`,
        );
        return this.options.store.addStep(id, {
          kind: 'error',
          name: 'worker',
          status: 'error',
          actor: this.ownerId,
          reason: (e as Error).message,
        });
      })
      .catch(() => undefined)
      .finally(async () => {
        clearInterval(heartbeat);
        this.running.delete(id);
        // Waiting for people, or interrupted: let any worker pick it up later.
        await this.options.store
          .unclaim(id, this.ownerId)
          .catch(() => undefined);
        if (!this.stopped) this.kick();
      });
  }

  /** The promotions this worker runs now. */
  get active(): string[] {
    return [...this.running.keys()];
  }

  /** Stops taking work and interrupts what runs; other replicas take it over. */
  async stop() {
    this.stopped = true;
    for (const controller of this.running.values()) controller.abort();
    await this.draining?.catch(() => undefined);
  }
}
