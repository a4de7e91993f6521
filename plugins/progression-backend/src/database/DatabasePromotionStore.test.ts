import { TestDatabaseId, TestDatabases } from '@backstage/backend-test-utils';
import { applyDatabaseMigrations } from './migrations';
import { DatabasePromotionStore } from './DatabasePromotionStore';

// PostgreSQL runs when scripts/test.sh has started a server (see migrations.test.ts).
const databases = TestDatabases.create({ ids: ['POSTGRES_15', 'SQLITE_3'] });

const entityRef = 'component:default/payments-api';

async function createStore(databaseId: TestDatabaseId) {
  const knex = await databases.init(databaseId);
  await applyDatabaseMigrations(knex);
  return new DatabasePromotionStore(knex);
}

describe.each(databases.eachSupportedId())(
  'DatabasePromotionStore on %p',
  databaseId => {
    it('registers immutable releases idempotently', async () => {
      const store = await createStore(databaseId);
      const input = {
        entityRef,
        version: '1.2.0',
        image: 'registry.local/payments-api@sha256:abc',
        commit: 'abc123',
        createdBy: 'user:default/ci',
      };
      const first = await store.registerRelease(input);
      expect(first.created).toBe(true);
      expect(first.release).toMatchObject({
        version: '1.2.0',
        commit: 'abc123',
        createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      });
      const again = await store.registerRelease(input);
      expect(again).toEqual({ release: first.release, created: false });
      await expect(
        store.registerRelease({ ...input, image: 'registry.local/other:1' }),
      ).rejects.toMatchObject({ name: 'ConflictError' });
      expect((await store.listReleases(entityRef)).map(r => r.version)).toEqual(
        ['1.2.0'],
      );
    });

    it('summarises each stage: newest, active and newest succeeded promotion', async () => {
      const store = await createStore(databaseId);
      const release = async (version: string) =>
        (
          await store.registerRelease({
            entityRef,
            version,
            image: `img:${version}`,
            createdBy: 'user:default/ci',
          })
        ).release;
      const promote = async (stage: string, version: string) =>
        (
          await store.createPromotion({
            entityRef,
            pipeline: 'standard',
            stage,
            releaseId: (await release(version)).id,
            requestedBy: 'user:default/jane',
          })
        ).promotion;
      const step = { kind: 'transition', name: 'test', status: 'passed' };
      const ok = await promote('staging', '1.0.0');
      await store.transition(ok.id, 'pending', 'succeeded', step);
      await new Promise(r => setTimeout(r, 5));
      const bad = await promote('staging', '1.1.0');
      await store.transition(bad.id, 'pending', 'failed', step);
      await new Promise(r => setTimeout(r, 5));
      const running = await promote('staging', '1.2.0');
      const dev = await promote('development', '1.2.0');
      // Another entity's history stays out.
      await store.createPromotion({
        entityRef: 'component:default/other',
        pipeline: 'standard',
        stage: 'staging',
        releaseId: ok.releaseId,
        requestedBy: 'user:default/jane',
      });

      const summaries = await store.stageSummaries(entityRef, [
        'development',
        'staging',
        'production',
      ]);
      const ids = (stage: string) => {
        const s = summaries.get(stage)!;
        return {
          last: s.last?.id,
          active: s.active?.id,
          lastSucceeded: s.lastSucceeded?.id,
        };
      };
      expect(ids('staging')).toEqual({
        last: running.id,
        active: running.id,
        lastSucceeded: ok.id,
      });
      expect(ids('development')).toEqual({
        last: dev.id,
        active: dev.id,
        lastSucceeded: undefined,
      });
      expect(ids('production')).toEqual({
        last: undefined,
        active: undefined,
        lastSucceeded: undefined,
      });
      const releases = await store.getReleases([ok.releaseId, 'missing']);
      expect([...releases.values()].map(r => r.version)).toEqual(['1.0.0']);
      expect(
        (await store.findReleaseByImage(entityRef, 'img:1.1.0'))?.version,
      ).toBe('1.1.0');
    });

    it('allows one active promotion per entity and stage, and honours idempotency keys', async () => {
      const store = await createStore(databaseId);
      const { release } = await store.registerRelease({
        entityRef,
        version: '1.0.0',
        image: 'img:1',
        createdBy: 'user:default/ci',
      });
      const request = {
        entityRef,
        pipeline: 'standard',
        stage: 'staging',
        releaseId: release.id,
        requestedBy: 'user:default/jane',
        idempotencyKey: 'ci-run-42',
      };

      const first = await store.createPromotion(request);
      expect(first.created).toBe(true);
      expect(first.promotion.state).toBe('pending');
      expect(await store.createPromotion(request)).toMatchObject({
        created: false,
        promotion: { id: first.promotion.id },
      });
      await expect(
        store.createPromotion({ ...request, idempotencyKey: 'other' }),
      ).rejects.toMatchObject({
        name: 'ConflictError',
        message: expect.stringContaining(
          `already has an active promotion to staging (${first.promotion.id}, pending)`,
        ),
      });
      // Another stage is free.
      expect(
        (
          await store.createPromotion({
            ...request,
            stage: 'production',
            idempotencyKey: undefined,
          })
        ).created,
      ).toBe(true);

      // Once it ends, the stage is free again.
      expect(
        await store.transition(first.promotion.id, 'pending', 'cancelled', {
          kind: 'transition',
          name: 'cancel',
          status: 'passed',
          actor: 'user:default/jane',
        }),
      ).toBe(true);
      expect(
        (
          await store.createPromotion({
            ...request,
            idempotencyKey: 'ci-run-43',
          })
        ).created,
      ).toBe(true);
    });

    it('changes state by compare-and-set and records each step', async () => {
      const store = await createStore(databaseId);
      const { release } = await store.registerRelease({
        entityRef,
        version: '1.0.0',
        image: 'img:1',
        createdBy: 'user:default/ci',
      });
      const { promotion } = await store.createPromotion({
        entityRef,
        pipeline: 'standard',
        stage: 'development',
        releaseId: release.id,
        requestedBy: 'user:default/jane',
      });

      expect(
        await store.transition(promotion.id, 'pending', 'preflight', {
          kind: 'transition',
          name: 'start',
          status: 'passed',
        }),
      ).toBe(true);
      // A second writer that still believes it is pending loses.
      expect(
        await store.transition(promotion.id, 'pending', 'cancelled', {
          kind: 'transition',
          name: 'cancel',
          status: 'passed',
        }),
      ).toBe(false);
      await store.addStep(promotion.id, {
        kind: 'gate',
        name: 'smoke',
        status: 'failed',
        reason: 'GET /healthz answered 503, expected 200',
        evidence: { status: 503 },
      });
      expect(
        await store.transition(promotion.id, 'preflight', 'failed', {
          kind: 'transition',
          name: 'preflight-failed',
          status: 'failed',
          error: 'smoke failed',
        }),
      ).toBe(true);

      const ended = await store.getPromotion(promotion.id);
      expect(ended).toMatchObject({
        state: 'failed',
        error: 'smoke failed',
        finishedAt: expect.any(String),
      });
      const steps = await store.listSteps(promotion.id);
      expect(steps.map(s => [s.name, s.toState ?? null])).toEqual([
        ['requested', 'pending'],
        ['start', 'preflight'],
        ['smoke', null],
        ['preflight-failed', 'failed'],
      ]);
      expect(steps[2].evidence).toEqual({ status: 503 });
    });

    it('lets one worker claim a promotion, and another take it over when the heartbeat stops', async () => {
      const store = await createStore(databaseId);
      const { release } = await store.registerRelease({
        entityRef,
        version: '1.0.0',
        image: 'img:1',
        createdBy: 'user:default/ci',
      });
      const { promotion } = await store.createPromotion({
        entityRef,
        pipeline: 'standard',
        stage: 'development',
        releaseId: release.id,
        requestedBy: 'user:default/jane',
      });

      const longAgo = new Date(Date.now() - 60_000);
      const claimed = await store.claim('worker-a', ['pending'], longAgo);
      expect(claimed).toMatchObject({
        id: promotion.id,
        ownerId: 'worker-a',
        attempt: 1,
      });
      // worker-a is alive (its heartbeat is newer than the stale limit).
      expect(
        await store.claim('worker-b', ['pending'], longAgo),
      ).toBeUndefined();
      expect(await store.heartbeat(promotion.id, 'worker-a')).toBe(true);

      // worker-a stops; anything older than "a minute from now" is stale.
      const later = new Date(Date.now() + 60_000);
      const takenOver = await store.claim('worker-b', ['pending'], later);
      expect(takenOver).toMatchObject({
        id: promotion.id,
        ownerId: 'worker-b',
        attempt: 2,
      });
      expect(await store.heartbeat(promotion.id, 'worker-a')).toBe(false);
    });

    it('gives each of many concurrent claims to exactly one worker', async () => {
      const store = await createStore(databaseId);
      const { release } = await store.registerRelease({
        entityRef,
        version: '1.0.0',
        image: 'img:1',
        createdBy: 'user:default/ci',
      });
      for (const stage of ['a', 'b', 'c', 'd', 'e']) {
        await store.createPromotion({
          entityRef,
          pipeline: 'p',
          stage,
          releaseId: release.id,
          requestedBy: 'user:default/jane',
        });
      }
      const stale = new Date(Date.now() - 60_000);
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          store.claim(`worker-${i}`, ['pending'], stale),
        ),
      );
      const claimedIds = results.filter(Boolean).map(p => p!.id);
      expect(new Set(claimedIds).size).toBe(claimedIds.length);
      expect(claimedIds.length).toBeGreaterThan(0);
    });

    it('lists promotions newest first with filters and a cursor', async () => {
      const store = await createStore(databaseId);
      const { release } = await store.registerRelease({
        entityRef,
        version: '1.0.0',
        image: 'img:1',
        createdBy: 'user:default/ci',
      });
      for (let i = 0; i < 5; i++) {
        const { promotion } = await store.createPromotion({
          entityRef,
          pipeline: 'p',
          stage: 'staging',
          releaseId: release.id,
          requestedBy: 'user:default/jane',
        });
        await store.transition(promotion.id, 'pending', 'cancelled', {
          kind: 'transition',
          name: 'cancel',
          status: 'passed',
        });
      }
      const page1 = await store.listPromotions(entityRef, {
        stage: 'staging',
        limit: 3,
      });
      expect(page1.items).toHaveLength(3);
      const page2 = await store.listPromotions(entityRef, {
        stage: 'staging',
        limit: 3,
        cursor: page1.nextCursor,
      });
      expect(page2.items).toHaveLength(2);
      expect(page2.nextCursor).toBeUndefined();
      expect(
        new Set([...page1.items, ...page2.items].map(p => p.id)).size,
      ).toBe(5);
      expect(
        (await store.listPromotions(entityRef, { state: 'succeeded' })).items,
      ).toEqual([]);
      await expect(
        store.listPromotions(entityRef, { cursor: 'not-a-cursor' }),
      ).rejects.toMatchObject({ name: 'InputError' });
    });

    it('deletes ended promotions past retention, keeping the newest of each stage and every active one', async () => {
      const store = await createStore(databaseId);
      const { release } = await store.registerRelease({
        entityRef,
        version: '2.0.0',
        image: 'img:2.0.0',
        createdBy: 'user:default/ci',
      });
      const ids: string[] = [];
      for (let i = 0; i < 4; i++) {
        const { promotion } = await store.createPromotion({
          entityRef,
          pipeline: 'standard',
          stage: 'staging',
          releaseId: release.id,
          requestedBy: 'user:default/jane',
        });
        await store.addStep(promotion.id, {
          kind: 'gate',
          name: 'smoke',
          status: 'passed',
        });
        await store.transition(promotion.id, 'pending', 'failed', {
          kind: 'transition',
          name: 'x',
          status: 'failed',
        });
        ids.push(promotion.id);
      }
      const { promotion: active } = await store.createPromotion({
        entityRef,
        pipeline: 'standard',
        stage: 'staging',
        releaseId: release.id,
        requestedBy: 'user:default/jane',
      });
      // Everything ended is past a retention that ends in the future.
      const future = new Date(Date.now() + 60_000);
      expect(await store.deleteEnded({ before: future, keepLast: 2 })).toBe(3);
      expect(await store.deleteEnded({ before: future, keepLast: 2 })).toBe(0);
      const left = (await store.listPromotions(entityRef)).items.map(p => p.id);
      // The newest two of the stage (the active one among them) stay. In
      // either order: on a fast machine both may be created in the same
      // millisecond, and the list then orders them by id.
      expect([...left].sort()).toEqual([active.id, ids[3]].sort());
      expect(await store.listSteps(ids[0])).toEqual([]);
      // Nothing ended before a time in the past.
      expect(
        await store.deleteEnded({ before: new Date(0), keepLast: 1 }),
      ).toBe(0);
    });

    it("pages a promotion's steps and caps evidence that is too large", async () => {
      const store = await createStore(databaseId);
      const { release } = await store.registerRelease({
        entityRef,
        version: '3.0.0',
        image: 'img:3.0.0',
        createdBy: 'user:default/ci',
      });
      const { promotion } = await store.createPromotion({
        entityRef,
        pipeline: 'standard',
        stage: 'staging',
        releaseId: release.id,
        requestedBy: 'user:default/jane',
      });
      for (let i = 0; i < 5; i++) {
        await store.addStep(promotion.id, {
          kind: 'gate',
          name: `gate-${i}`,
          status: 'passed',
          evidence: {
            logTail: 'x'.repeat(200_000),
            samples: [...Array(5000).keys()],
          },
        });
      }
      const first = await store.listSteps(promotion.id, { limit: 3 });
      expect(first.map(s => s.name)).toEqual(['requested', 'gate-0', 'gate-1']);
      const second = await store.listSteps(promotion.id, {
        after: first[2].id,
        limit: 10,
      });
      expect(second.map(s => s.name)).toEqual(['gate-2', 'gate-3', 'gate-4']);
      const evidence = second[0].evidence as {
        logTail: string;
        samples: unknown[];
        truncated: string;
      };
      expect(evidence.truncated).toMatch(/cut to fit 64 KiB/);
      expect(Buffer.byteLength(JSON.stringify(evidence))).toBeLessThanOrEqual(
        64 * 1024,
      );
      // The end of a log says most: it is what is kept.
      expect(evidence.logTail).toMatch(/characters cut\]x+$/);
      expect(evidence.samples.length).toBeLessThan(5000);
    });

    it('fences writes by the claim: a worker that lost its promotion writes nothing', async () => {
      const store = await createStore(databaseId);
      const { release } = await store.registerRelease({
        entityRef,
        version: '4.0.0',
        image: 'img:4.0.0',
        createdBy: 'user:default/ci',
      });
      const { promotion } = await store.createPromotion({
        entityRef,
        pipeline: 'standard',
        stage: 'staging',
        releaseId: release.id,
        requestedBy: 'user:default/jane',
      });
      expect((await store.claim('a', ['pending'], new Date(0)))?.id).toBe(
        promotion.id,
      );
      // b takes it over, as it would from a stale claim.
      expect(
        (await store.claim('b', ['pending'], new Date(Date.now() + 60_000)))
          ?.id,
      ).toBe(promotion.id);
      const step = { kind: 'gate', name: 'smoke', status: 'passed' };
      expect(
        await store.addStep(promotion.id, step, {
          state: 'pending',
          ownerId: 'a',
        }),
      ).toBe(false);
      expect(
        await store.transition(
          promotion.id,
          'pending',
          'preflight',
          { kind: 'transition', name: 'start', status: 'passed' },
          { ownerId: 'a' },
        ),
      ).toBe(false);
      expect(
        await store.addStep(promotion.id, step, {
          state: 'pending',
          ownerId: 'b',
        }),
      ).toBe(true);
      expect(
        await store.transition(
          promotion.id,
          'pending',
          'preflight',
          { kind: 'transition', name: 'start', status: 'passed' },
          { ownerId: 'b' },
        ),
      ).toBe(true);
      // A write fenced by the old state is refused too.
      expect(
        await store.addStep(promotion.id, step, {
          state: 'pending',
          ownerId: 'b',
        }),
      ).toBe(false);
      expect((await store.listSteps(promotion.id)).map(st => st.name)).toEqual([
        'requested',
        'smoke',
        'start',
      ]);
      // A restarted replica frees what its earlier run held.
      expect(await store.releaseClaims('b', 'b/new')).toBe(1);
      expect((await store.getPromotion(promotion.id))?.ownerId).toBeUndefined();
    });
  },
);
