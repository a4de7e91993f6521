import { TestDatabaseId, TestDatabases } from '@backstage/backend-test-utils';
import crypto from 'node:crypto';
import { Knex } from 'knex';
import { applyDatabaseMigrations } from './migrations';
import { DatabasePromotionStore } from './DatabasePromotionStore';

// PostgreSQL runs when scripts/test.sh has started a server (see migrations.test.ts).
const databases = TestDatabases.create({ ids: ['POSTGRES_15', 'SQLITE_3'] });

const entityRef = 'component:default/payments-api';
const HOUR = 3_600_000;

/**
 * A history written straight into the tables with explicit times, in the
 * formats the store itself writes: promotions' created_at and releases'
 * committed_at as ISO 8601 with milliseconds, finished_at and releases'
 * created_at as the database's CURRENT_TIMESTAMP (on SQLite
 * 'YYYY-MM-DD HH:MM:SS' text).
 */
function seeder(knex: Knex) {
  const sqlite = String(knex.client.config.client).includes('sqlite');
  const now = (iso: string) =>
    sqlite ? iso.replace('T', ' ').replace(/(\.\d+)?Z$/, '') : iso;
  const releases = new Map<string, string>();
  let clock = 0;
  return {
    async release(
      version: string,
      registered: string,
      options: { committed?: string; entity?: string } = {},
    ) {
      const id = crypto.randomUUID();
      await knex('progression_releases').insert({
        id,
        entity_ref: options.entity ?? entityRef,
        version,
        image: `registry.local/payments-api:${version}`,
        created_by: 'user:default/ci',
        created_at: now(registered),
        committed_at: options.committed
          ? new Date(options.committed).toISOString()
          : null,
      });
      releases.set(version, id);
    },
    /**
     * A promotion of `version` into `stage` that ended `state` at
     * `finished` (or is still running when not given); `deployed` adds the
     * image patch step the engine records before it patches.
     */
    async promotion(
      stage: string,
      version: string,
      state: string,
      finished: string | undefined,
      options: {
        kind?: 'promotion' | 'rollback';
        deployed?: boolean;
        entity?: string;
      } = {},
    ) {
      const id = crypto.randomUUID();
      // Requested a minute before it ended; a counter keeps them apart.
      const created = new Date(
        Date.parse(finished ?? '2026-11-06T00:00:00Z') - 60_000 + clock++,
      ).toISOString();
      await knex('progression_promotions').insert({
        id,
        entity_ref: options.entity ?? entityRef,
        pipeline: 'standard',
        stage,
        release_id: releases.get(version),
        kind: options.kind ?? 'promotion',
        state,
        requested_by: 'user:default/jane',
        attempt: 1,
        created_at: created,
        updated_at: now(finished ?? created),
        finished_at: finished ? now(finished) : null,
        active_key: finished ? null : `${entityRef}|${stage}`,
      });
      if (options.deployed) {
        await knex('progression_promotion_steps').insert({
          promotion_id: id,
          kind: 'deploy',
          name: 'patch',
          status: 'started',
          reason: 'from → to',
        });
      }
    },
  };
}

async function createStore(databaseId: TestDatabaseId) {
  const knex = await databases.init(databaseId);
  await applyDatabaseMigrations(knex);
  return { knex, store: new DatabasePromotionStore(knex) };
}

describe.each(databases.eachSupportedId())(
  'delivery insights on %p',
  databaseId => {
    it('equal a hand computation on a seeded history', async () => {
      const { knex, store } = await createStore(databaseId);
      const seed = seeder(knex);

      // Releases: registration time, and the commit time where CI gave one.
      await seed.release('0.9.0', '2026-10-31T23:00:00Z');
      await seed.release('1.0.0', '2026-11-01T09:00:00Z', {
        committed: '2026-11-01T08:00:00Z',
      });
      await seed.release('1.1.0', '2026-11-01T12:00:00Z');
      await seed.release('1.2.0', '2026-11-02T09:00:00Z');
      await seed.release('1.3.0', '2026-11-02T11:00:00Z');
      await seed.release('1.4.0', '2026-11-03T08:00:00Z', {
        committed: '2026-11-02T20:00:00Z',
      });
      await seed.release('1.5.0', '2026-11-03T11:00:00Z');
      await seed.release('1.6.0', '2026-11-03T12:00:00Z');
      await seed.release('1.7.0', '2026-11-04T09:00:00Z');
      await seed.release('1.8.0', '2026-11-04T12:00:00Z');
      await seed.release('1.9.0', '2026-11-05T09:00:00Z');
      await seed.release('2.0.0', '2026-11-05T10:00:00Z');
      await seed.release('9.0.0', '2026-11-01T09:00:00Z', {
        entity: 'component:default/other',
      });

      // Staging. Before the range (it starts 2026-11-01T00:00Z): left out.
      await seed.promotion(
        'staging',
        '0.9.0',
        'rolled-back',
        '2026-10-31T22:00:00Z',
        { deployed: true },
      );
      await seed.promotion(
        'staging',
        '0.9.0',
        'succeeded',
        '2026-10-31T23:59:59Z',
      );
      // A: succeeded; lead time from the commit 08:00 to 10:00 = 2 h.
      await seed.promotion(
        'staging',
        '1.0.0',
        'succeeded',
        '2026-11-01T10:00:00Z',
      );
      // B: succeeded; no commit time, from registration 12:00 to 13:00 = 1 h.
      await seed.promotion(
        'staging',
        '1.1.0',
        'succeeded',
        '2026-11-01T13:00:00Z',
      );
      // C: deployed, rolled back at 11-02 10:00: a failure; incident 1 begins.
      await seed.promotion(
        'staging',
        '1.2.0',
        'rolled-back',
        '2026-11-02T10:00:00Z',
        { deployed: true },
      );
      // D: deployed, failed at 12:00 without a rollback: still incident 1.
      await seed.promotion(
        'staging',
        '1.3.0',
        'failed',
        '2026-11-02T12:00:00Z',
        { deployed: true },
      );
      // An on-demand rollback (to 1.1.0) succeeded at 12:30: no deployment,
      // it ends incident 1 after 2 h 30 min.
      await seed.promotion(
        'staging',
        '1.1.0',
        'succeeded',
        '2026-11-02T12:30:00Z',
        { kind: 'rollback' },
      );
      // E: succeeded 11-03 10:00; from the commit 11-02 20:00 = 14 h.
      await seed.promotion(
        'staging',
        '1.4.0',
        'succeeded',
        '2026-11-03T10:00:00Z',
      );
      // Cancelled before the patch (rolled back with nothing to undo), and
      // failed in preflight: nothing was deployed, neither counts.
      await seed.promotion(
        'staging',
        '1.5.0',
        'rolled-back',
        '2026-11-03T11:30:00Z',
      );
      await seed.promotion(
        'staging',
        '1.6.0',
        'failed',
        '2026-11-03T12:30:00Z',
      );
      // Rejected, skipped, and a failed on-demand rollback: no deployments.
      await seed.promotion(
        'staging',
        '1.6.0',
        'rejected',
        '2026-11-03T13:00:00Z',
      );
      await seed.promotion(
        'staging',
        '1.6.0',
        'skipped',
        '2026-11-03T13:30:00Z',
      );
      await seed.promotion(
        'staging',
        '1.4.0',
        'failed',
        '2026-11-03T14:00:00Z',
        { kind: 'rollback' },
      );
      // F: rolled back at 11-04 10:00: incident 2 begins.
      await seed.promotion(
        'staging',
        '1.7.0',
        'rolled-back',
        '2026-11-04T10:00:00Z',
        { deployed: true },
      );
      // G: succeeded 18:00 (registered 12:00: 6 h) and ends incident 2 after 8 h.
      await seed.promotion(
        'staging',
        '1.8.0',
        'succeeded',
        '2026-11-04T18:00:00Z',
      );
      // H: rolled back 11-05 09:30, nothing after it: incident 3 is open.
      await seed.promotion(
        'staging',
        '1.9.0',
        'rolled-back',
        '2026-11-05T09:30:00Z',
        { deployed: true },
      );
      // Running now: not ended, not counted.
      await seed.promotion('staging', '2.0.0', 'verifying', undefined, {
        deployed: true,
      });

      // Production: at the range's first instant (included), 0.9.0
      // registered 10-31 23:00: 1 h; then 1.0.0 from its commit
      // 11-01 08:00 to 11-03 08:00: 48 h. An on-demand rollback with no
      // failure before it opens and ends nothing.
      await seed.promotion(
        'production',
        '0.9.0',
        'succeeded',
        '2026-11-01T00:00:00Z',
      );
      await seed.promotion(
        'production',
        '1.0.0',
        'succeeded',
        '2026-11-03T08:00:00Z',
      );
      await seed.promotion(
        'production',
        '0.9.0',
        'succeeded',
        '2026-11-03T09:00:00Z',
        { kind: 'rollback' },
      );

      // Another entity, and a stage the pipeline does not have: left out.
      await seed.promotion(
        'staging',
        '9.0.0',
        'rolled-back',
        '2026-11-02T10:00:00Z',
        { deployed: true, entity: 'component:default/other' },
      );
      await seed.promotion('qa', '1.0.0', 'failed', '2026-11-02T10:00:00Z', {
        deployed: true,
      });

      const insights = await store.deliveryInsights({
        entityRef,
        stages: ['development', 'staging', 'production'],
        since: new Date('2026-11-01T00:00:00Z'),
      });

      expect(insights.map(s => s.stage)).toEqual([
        'development',
        'staging',
        'production',
      ]);
      // Development: nothing happened.
      expect(insights[0]).toEqual({
        stage: 'development',
        succeeded: 0,
        failed: 0,
        leadTime: { count: 0, fromCommit: 0 },
        restore: { incidents: 0, restored: 0 },
        daily: [],
      });

      // Staging by hand:
      // - deployments: succeeded A, B, E, G = 4; failed C, D, F, H = 4; 8 in
      //   all, so the change failure rate is 4 / 8;
      // - lead times sorted: B 1 h, A 2 h, G 6 h, E 14 h. Median at rank
      //   (4 − 1) · 0.5 = 1.5: 2 h + 0.5 · (6 h − 2 h) = 4 h. p90 at rank
      //   (4 − 1) · 0.9 = 2.7: 6 h + 0.7 · (14 h − 6 h) = 11.6 h. Two of the
      //   four (A, E) measure from a commit;
      // - incidents: C+D (10:00 → the rollback 12:30 = 2.5 h), F (10:00 →
      //   G 18:00 = 8 h), H (open): 3, 2 restored, median (2.5 h + 8 h) / 2
      //   = 5.25 h.
      expect(insights[1]).toEqual({
        stage: 'staging',
        succeeded: 4,
        failed: 4,
        leadTime: {
          count: 4,
          fromCommit: 2,
          medianMs: 4 * HOUR,
          p90Ms: 11.6 * HOUR,
        },
        restore: { incidents: 3, restored: 2, medianMs: 5.25 * HOUR },
        daily: [
          // A 2 h and B 1 h: median 1.5 h.
          {
            date: '2026-11-01',
            succeeded: 2,
            failed: 0,
            leadTimeMedianMs: 1.5 * HOUR,
          },
          // C and D; incident 1 began this day.
          {
            date: '2026-11-02',
            succeeded: 0,
            failed: 2,
            restoreMedianMs: 2.5 * HOUR,
          },
          {
            date: '2026-11-03',
            succeeded: 1,
            failed: 0,
            leadTimeMedianMs: 14 * HOUR,
          },
          // G 6 h; F, and incident 2 (8 h) began this day.
          {
            date: '2026-11-04',
            succeeded: 1,
            failed: 1,
            leadTimeMedianMs: 6 * HOUR,
            restoreMedianMs: 8 * HOUR,
          },
          // H: its incident is open, so no time to restore.
          { date: '2026-11-05', succeeded: 0, failed: 1 },
        ],
      });

      // Production: lead times 1 h and 48 h; median 24.5 h, p90 at rank
      // 0.9: 1 h + 0.9 · 47 h = 43.3 h. One of two from a commit.
      expect(insights[2]).toEqual({
        stage: 'production',
        succeeded: 2,
        failed: 0,
        leadTime: {
          count: 2,
          fromCommit: 1,
          medianMs: 24.5 * HOUR,
          p90Ms: 43.3 * HOUR,
        },
        restore: { incidents: 0, restored: 0 },
        daily: [
          {
            date: '2026-11-01',
            succeeded: 1,
            failed: 0,
            leadTimeMedianMs: HOUR,
          },
          {
            date: '2026-11-03',
            succeeded: 1,
            failed: 0,
            leadTimeMedianMs: 48 * HOUR,
          },
        ],
      });
    });

    it('keeps the commit time CI gives at registration', async () => {
      const { store } = await createStore(databaseId);
      const { release } = await store.registerRelease({
        entityRef,
        version: '1.0.0',
        image: 'registry.local/payments-api:1.0.0',
        commit: 'abc1234',
        committedAt: '2026-11-01T08:00:00+02:00',
        createdBy: 'user:default/ci',
      });
      expect(release.committedAt).toBe('2026-11-01T06:00:00.000Z');
      expect((await store.getRelease(release.id))?.committedAt).toBe(
        '2026-11-01T06:00:00.000Z',
      );
      const { release: without } = await store.registerRelease({
        entityRef,
        version: '1.0.1',
        image: 'registry.local/payments-api:1.0.1',
        createdBy: 'user:default/ci',
      });
      expect(without.committedAt).toBeUndefined();
    });

    it('fingerprint a range: it moves when a promotion of its stages ends, and only then', async () => {
      const { knex, store } = await createStore(databaseId);
      const seed = seeder(knex);
      const query = {
        entityRef,
        stages: ['staging', 'production'],
        since: new Date('2026-11-01T00:00:00Z'),
      };
      const empty = await store.deliveryFingerprint(query);
      await seed.release('1.0.0', '2026-10-31T09:00:00Z');
      await seed.release('1.1.0', '2026-11-01T09:00:00Z');
      // Before the range, in another stage, another entity's, still running:
      // none of them is in the figures, so none moves the fingerprint.
      await seed.promotion(
        'staging',
        '1.0.0',
        'succeeded',
        '2026-10-31T10:00:00Z',
        { deployed: true },
      );
      await seed.promotion(
        'development',
        '1.1.0',
        'succeeded',
        '2026-11-01T10:00:00Z',
        { deployed: true },
      );
      await seed.promotion('staging', '1.1.0', 'running', undefined);
      expect(await store.deliveryFingerprint(query)).toBe(empty);

      await seed.promotion(
        'production',
        '1.1.0',
        'succeeded',
        '2026-11-01T11:00:00Z',
        { deployed: true },
      );
      const one = await store.deliveryFingerprint(query);
      expect(one).not.toBe(empty);
      expect(await store.deliveryFingerprint(query)).toBe(one);
      // Another ending in the same second still moves it.
      await seed.promotion(
        'staging',
        '1.1.0',
        'failed',
        '2026-11-01T11:00:00Z',
        { deployed: true },
      );
      expect(await store.deliveryFingerprint(query)).not.toBe(one);
      expect(await store.deliveryFingerprint({ ...query, stages: [] })).toBe(
        '0',
      );
    });

    it('has an index on when promotions finished, for the range', async () => {
      const { knex } = await createStore(databaseId);
      // The index the read stays on, whatever the history's length.
      const sqlite = String(knex.client.config.client).includes('sqlite');
      const indexes = sqlite
        ? (await knex.raw("PRAGMA index_list('progression_promotions')")).map(
            (r: { name: string }) => r.name,
          )
        : (
            await knex('pg_indexes')
              .select('indexname as name')
              .where({ tablename: 'progression_promotions' })
          ).map((r: { name: string }) => r.name);
      expect(indexes).toContain(
        'progression_promotions_entity_stage_finished_idx',
      );
    });
  },
);
