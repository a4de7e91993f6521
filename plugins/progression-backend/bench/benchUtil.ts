/*
 * What the benchmarks of bench/promotions.ts share: an in-memory store,
 * figures, waiting, and a store whose calls can be watched or frozen.
 */
import knexFactory from 'knex';
import { DatabasePromotionStore } from '../src/database/DatabasePromotionStore';
import { applyDatabaseMigrations } from '../src/database/migrations';
import { PromotionStore } from '../src/database/PromotionStore';

export async function memoryStore() {
  const knex = knexFactory({
    client: 'better-sqlite3',
    connection: { filename: ':memory:' },
    useNullAsDefault: true,
    pool: { min: 1, max: 1 },
  });
  await applyDatabaseMigrations(knex);
  return { knex, store: new DatabasePromotionStore(knex) };
}

export const median = (xs: number[]) =>
  [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** The nearest-rank percentile: of 7 values, p95 is the largest. */
export const percentile = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[
    Math.min(xs.length - 1, Math.max(0, Math.ceil((p / 100) * xs.length) - 1))
  ];

export const sleep = (ms: number) =>
  new Promise<void>(resolve => setTimeout(resolve, ms));

/** `ms` as people read it: 840 ms, 1.3 s. */
export const duration = (ms: number) =>
  ms < 1000 ? `${ms.toFixed(0)} ms` : `${(ms / 1000).toFixed(1)} s`;

/** Polls `probe` until it returns something truthy; throws, naming `what`, after `timeoutMs`. */
export async function until<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  timeoutMs = 60_000,
  everyMs = 10,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (performance.now() > deadline) {
      throw new Error(`${what}: not within ${duration(timeoutMs)}`);
    }
    await sleep(everyMs);
  }
}

/**
 * The store as one replica sees it: `onResult` is told of every call that
 * answered (method, arguments, answer, when); after `freeze()` no call
 * answers any more, as for a process killed with SIGKILL: its claim and its
 * last heartbeat stay in the store, and nothing it does reaches the store.
 */
export function replicaStore(
  store: PromotionStore,
  onResult: (
    method: string,
    args: unknown[],
    result: unknown,
    at: number,
  ) => void = () => undefined,
): { store: PromotionStore; freeze(): void } {
  let frozen = false;
  const proxy = new Proxy(store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        if (frozen) return new Promise(() => undefined);
        const result = value.apply(target, args);
        if (!(result instanceof Promise)) return result;
        return result.then(answer => {
          onResult(String(prop), args, answer, performance.now());
          return answer;
        });
      };
    },
  });
  return {
    store: proxy,
    freeze() {
      frozen = true;
    },
  };
}
