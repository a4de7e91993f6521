import {
  TestDatabaseId,
  TestDatabases,
  mockServices,
} from '@backstage/backend-test-utils';
import { ConfigReader } from '@backstage/config';
import { NotificationSendOptions } from '@backstage/plugin-notifications-node';
import { Knex } from 'knex';
import { readTestConfig } from '../__testUtils__/readTestConfig';
import { DatabasePromotionStore } from '../database/DatabasePromotionStore';
import { applyDatabaseMigrations } from '../database/migrations';
import { PromotionState } from '../engine/transitions';
import { PromotionNotifier } from './PromotionNotifier';

/*
 * The notifier on the real store, on SQLite and on the PostgreSQL server of
 * the test run, with a notifications service that records what it is
 * asked to send (or fails as a test says). What the REST-level tests
 * cannot reach is here: replicas reporting the same change at once, a
 * crash between a state change and its notification, a send cut short.
 */
const databases = TestDatabases.create({ ids: ['POSTGRES_15', 'SQLITE_3'] });

const config = readTestConfig(
  new ConfigReader({
    progression: {
      clusters: [{ name: 'local', url: 'http://127.0.0.1:6443' }],
      pipelines: {
        standard: {
          stages: [
            { name: 'development', cluster: 'local', namespace: 'dev' },
            { name: 'staging', cluster: 'local', namespace: 'staging' },
            {
              name: 'production',
              title: 'Production',
              cluster: 'local',
              namespace: 'production',
              approval: {
                required: true,
                approvers: ['group:release-managers'],
              },
            },
          ],
        },
      },
    },
  }),
);

const entityRef = 'component:default/payments-api';
const step = { kind: 'transition', name: 'test', status: 'passed' };

async function setup(databaseId: TestDatabaseId) {
  const db = await databases.init(databaseId);
  await applyDatabaseMigrations(db);
  const store = new DatabasePromotionStore(db);
  const sent: NotificationSendOptions[] = [];
  const send = jest.fn(async (options: NotificationSendOptions) => {
    sent.push(options);
  });
  const logger = mockServices.logger.mock();
  const notifiers: PromotionNotifier[] = [];
  /** A notifier: another one is another replica, or the same after a restart. */
  const notifier = (
    options: {
      maxAttempts?: number;
      sendTimeoutMs?: number;
      leaseMs?: number;
      sweepBatch?: number;
    } = {},
  ) => {
    const n = new PromotionNotifier({
      db,
      store,
      config,
      notifications: { send },
      logger,
      initialDelayMs: 5,
      maxDelayMs: 20,
      ...options,
    });
    notifiers.push(n);
    return n;
  };
  /** A promotion of `version` into `stage`, moved through `states`. */
  const promotion = async (
    stage: string,
    version: string,
    states: PromotionState[],
    error?: string,
  ) => {
    const { release } = await store.registerRelease({
      entityRef,
      version,
      image: `registry.local/payments-api:${version}`,
      createdBy: 'user:default/jane',
    });
    const { promotion: p } = await store.createPromotion({
      entityRef,
      pipeline: 'standard',
      stage,
      releaseId: release.id,
      requestedBy: 'user:default/jane',
      reason: 'CI run 42',
    });
    let from: PromotionState = 'pending';
    for (const to of states) {
      await store.transition(p.id, from, to, {
        ...step,
        error: to === states.at(-1) ? error : undefined,
      });
      from = to;
    }
    return p.id;
  };
  return { db, store, sent, send, logger, notifier, notifiers, promotion };
}

/** Polls until `check` passes; the notifier's retries run on timers. */
async function eventually(check: () => Promise<void> | void) {
  for (let i = 0; ; i++) {
    try {
      await check();
      return;
    } catch (e) {
      if (i >= 400) throw e;
      await new Promise(r => setTimeout(r, 25));
    }
  }
}

const rowOf = async (db: Knex, promotionId: string) =>
  db('progression_notifications').where({ promotion_id: promotionId }).first();

describe.each(databases.eachSupportedId())('PromotionNotifier on %p', id => {
  let env: Awaited<ReturnType<typeof setup>>;
  beforeEach(async () => {
    env = await setup(id);
  });
  afterEach(async () => {
    await Promise.all(env.notifiers.map(n => n.stop()));
  });

  it('asks the approvers once, whichever replica reports it and however often, with a link to the promotion', async () => {
    const { notifier, promotion, sent, db } = env;
    const waiting = await promotion('production', '2.0.0', [
      'preflight',
      'awaiting-approval',
    ]);
    const [a, b] = [notifier(), notifier()];
    await Promise.all([
      a.notify(waiting),
      b.notify(waiting),
      a.notify(waiting),
    ]);

    expect(sent).toEqual([
      {
        recipients: {
          type: 'entity',
          entityRef: ['group:default/release-managers'],
          // The requester may not approve their own promotion.
          excludeEntityRef: 'user:default/jane',
        },
        payload: {
          title:
            'The promotion of payments-api 2.0.0 to Production awaits approval',
          description:
            'user:default/jane asked for it (CI run 42). Approve or reject it in the Environments tab.',
          link: `/catalog/default/component/payments-api/environments?promotion=${waiting}`,
          severity: 'high',
          topic: 'progression:component:default/payments-api',
          scope: `progression:promotion:${waiting}:awaiting-approval`,
        },
      },
    ]);
    expect(await rowOf(db, waiting)).toMatchObject({
      event: 'awaiting-approval',
      status: 'sent',
      attempts: 1,
    });

    // A restart: the new process's sweep finds nothing left to send.
    await notifier().sweep();
    expect(sent).toHaveLength(1);
  });

  it('tells the owners of a rollback or a failure, with the reason, and of a success only in the last stage', async () => {
    const { notifier, promotion, sent } = env;
    const rolledBack = await promotion(
      'staging',
      '2.1.0-unhealthy',
      ['preflight', 'deploying', 'verifying', 'rolling-back', 'rolled-back'],
      'smoke: GET /healthz failed: answered 503, expected 200',
    );
    const failed = await promotion(
      'development',
      '2.2.0',
      ['preflight', 'failed'],
      'No Deployment labelled backstage.io/kubernetes-id=payments-api',
    );
    const inStaging = await promotion('staging', '2.3.0', ['succeeded']);
    const live = await promotion('production', '2.3.0', ['succeeded']);
    const n = notifier();
    for (const p of [rolledBack, failed, inStaging, live]) await n.notify(p);

    expect(sent.map(s => [s.recipients, s.payload])).toEqual([
      [
        { type: 'entity', entityRef },
        expect.objectContaining({
          title:
            'The promotion of payments-api 2.1.0-unhealthy to staging failed and was rolled back',
          description: 'smoke: GET /healthz failed: answered 503, expected 200',
          severity: 'high',
          link: `/catalog/default/component/payments-api/environments?promotion=${rolledBack}`,
        }),
      ],
      [
        { type: 'entity', entityRef },
        expect.objectContaining({
          title: 'The promotion of payments-api 2.2.0 to development failed',
          description:
            'No Deployment labelled backstage.io/kubernetes-id=payments-api',
          severity: 'high',
        }),
      ],
      [
        { type: 'entity', entityRef },
        expect.objectContaining({
          title: 'The promotion of payments-api 2.3.0 to Production succeeded',
          description:
            '2.3.0 runs in Production; user:default/jane asked for it.',
          severity: 'normal',
          scope: `progression:promotion:${live}:succeeded`,
        }),
      ],
    ]);
  });

  it('tries a failed send again a bounded number of times, logs it, and leaves the promotion alone', async () => {
    const { notifier, promotion, send, sent, logger, db, store } = env;
    send.mockRejectedValueOnce(new Error('Failed to send notifications: 503'));
    const once = await promotion('staging', '3.0.0', ['failed'], 'boom');
    await notifier({ maxAttempts: 3 }).notify(once);
    await eventually(async () =>
      expect(await rowOf(db, once)).toMatchObject({
        status: 'sent',
        attempts: 2,
      }),
    );
    expect(sent).toHaveLength(1);

    send.mockReset();
    send.mockRejectedValue(
      new Error('Failed to send notifications: TypeError: fetch failed'),
    );
    const never = await promotion('staging', '3.1.0', ['failed'], 'boom');
    await notifier({ maxAttempts: 3 }).notify(never);
    await eventually(async () =>
      expect(await rowOf(db, never)).toMatchObject({
        status: 'failed',
        attempts: 3,
        last_error: 'Failed to send notifications: TypeError: fetch failed',
      }),
    );
    expect(send).toHaveBeenCalledTimes(3);
    expect(logger.warn).toHaveBeenCalledWith(
      expect.stringContaining(
        `gave up notifying of promotion ${never} (failed) after 3 attempt(s)`,
      ),
    );
    expect((await store.getPromotion(never))?.state).toBe('failed');
    // Given up is given up: a later sweep does not start over.
    await notifier({ maxAttempts: 3 }).sweep();
    expect(send).toHaveBeenCalledTimes(3);
  });

  it('tries a 400 again: the notifications backend answers so when it cannot read the catalog', async () => {
    const { notifier, promotion, send, sent, db } = env;
    send.mockRejectedValueOnce(
      new Error(
        'Failed to send notifications: Error: Request failed with status 400',
      ),
    );
    const p = await promotion('staging', '3.2.0', ['rolled-back'], 'boom');
    await notifier().notify(p);
    await eventually(async () =>
      expect(await rowOf(db, p)).toMatchObject({ status: 'sent', attempts: 2 }),
    );
    expect(sent).toHaveLength(1);
  });

  it('waits for a slow send instead of sending again, and leaves one that never answers held when it stops', async () => {
    const { notifier, promotion, send, sent, logger, db } = env;
    // Answers after 300 ms; the notifier waits 50 ms, then for the rest of
    // its lease.
    send.mockImplementationOnce(async options => {
      await new Promise(r => setTimeout(r, 300));
      sent.push(options);
    });
    const slow = await promotion('staging', '3.3.0', ['rolled-back'], 'boom');
    await notifier({ sendTimeoutMs: 50, leaseMs: 5000 }).notify(slow);
    expect(await rowOf(db, slow)).toMatchObject({
      status: 'sent',
      attempts: 1,
    });
    expect(send).toHaveBeenCalledTimes(1);
    expect(sent).toHaveLength(1);
    expect(logger.warn).toHaveBeenCalledWith(
      expect.stringContaining(
        `has not answered the notification of promotion ${slow} (rolled-back) within 1 s; waiting up to 5 s more for its answer before sending it again`,
      ),
    );

    // Never answers: past the lease it is tried again, within the bound.
    send.mockReset();
    send.mockImplementation(() => new Promise(() => {}));
    const silent = await promotion('staging', '3.4.0', ['failed'], 'boom');
    await notifier({ sendTimeoutMs: 20, leaseMs: 100, maxAttempts: 2 }).notify(
      silent,
    );
    await eventually(async () =>
      expect(await rowOf(db, silent)).toMatchObject({
        status: 'failed',
        attempts: 2,
      }),
    );
    expect(send).toHaveBeenCalledTimes(2);

    // Stopped while it waits: it stops waiting, and the row stays held
    // for the rest of the lease, so nobody sends it again meanwhile.
    send.mockClear();
    const held = await promotion('development', '3.4.0', ['failed'], 'boom');
    const n = notifier({ sendTimeoutMs: 20, leaseMs: 60_000 });
    const notifying = n.notify(held);
    await eventually(() => expect(send).toHaveBeenCalledTimes(1));
    await new Promise(r => setTimeout(r, 50));
    await n.stop();
    await notifying;
    expect(await rowOf(db, held)).toMatchObject({
      status: 'pending',
      attempts: 1,
      claimed_by: expect.stringMatching(/^notifier-/),
    });
    await notifier().sweep();
    expect(send).toHaveBeenCalledTimes(1);
  });

  it('records a window override told to a stopping backend, and another replica sends it once', async () => {
    const { notifier, promotion, store, sent, db } = env;
    const p = await promotion('production', '3.5.0', ['waiting']);
    await store.transition(p, 'waiting', 'preflight', {
      kind: 'window',
      name: 'override',
      status: 'passed',
      actor: 'user:default/olivia',
      evidence: { by: 'user:default/olivia', reason: 'INC-42' },
    });
    const stopping = notifier();
    await stopping.stop();
    await stopping.onWindowOverride(p);
    expect(sent).toHaveLength(0);
    expect(
      await db('progression_notifications').where({ promotion_id: p }).first(),
    ).toMatchObject({ event: 'window-override', status: 'pending' });
    await Promise.all([notifier().sweep(), notifier().sweep()]);
    expect(sent).toHaveLength(1);
    expect(sent[0].payload).toMatchObject({
      title: expect.stringContaining(
        "user:default/olivia overrode Production's promotion window",
      ),
      description: expect.stringContaining('Reason: INC-42'),
      severity: 'high',
    });
  });

  it('does not retry a refusal, and says once that the notifications backend is missing', async () => {
    const { notifier, promotion, send, logger, db } = env;
    send.mockRejectedValue(
      new Error(
        'Failed to send notifications: Error: Request failed with status 404',
      ),
    );
    const n = notifier();
    const first = await promotion('staging', '4.0.0', ['failed'], 'boom');
    const second = await promotion('development', '4.0.0', ['failed'], 'boom');
    await n.notify(first);
    await n.notify(second);
    expect(send).toHaveBeenCalledTimes(2);
    expect(await rowOf(db, first)).toMatchObject({ status: 'failed' });
    const missing = logger.warn.mock.calls.filter(([m]) =>
      String(m).includes('the notifications backend is not installed'),
    );
    expect(missing).toHaveLength(1);
    expect(missing[0][0]).toContain('progression.notifications.enabled: false');
  });

  it('sends what a crash left: a state change never recorded, a send cut short; not one a live sender holds', async () => {
    const { notifier, promotion, sent, db } = env;
    // The process died between the state change and the row.
    const lost = await promotion('staging', '5.0.0', ['rolled-back'], 'boom');
    // It died while sending: its hold on the row ran out.
    const cut = await promotion('development', '5.0.0', ['failed'], 'boom');
    await db('progression_notifications').insert({
      promotion_id: cut,
      event: 'failed',
      status: 'pending',
      attempts: 1,
      claimed_by: 'notifier-dead',
      not_before: new Date(Date.now() - 1000).toISOString(),
    });
    // Another replica is sending this one now.
    const held = await promotion('production', '5.0.0', ['failed'], 'boom');
    await db('progression_notifications').insert({
      promotion_id: held,
      event: 'failed',
      status: 'pending',
      attempts: 1,
      claimed_by: 'notifier-alive',
      not_before: new Date(Date.now() + 60_000).toISOString(),
    });

    await notifier().sweep();
    expect(sent.map(s => s.payload.scope).sort()).toEqual(
      [
        `progression:promotion:${lost}:rolled-back`,
        `progression:promotion:${cut}:failed`,
      ].sort(),
    );
    expect(await rowOf(db, cut)).toMatchObject({
      status: 'sent',
      attempts: 2,
    });
    expect(await rowOf(db, held)).toMatchObject({
      status: 'pending',
      claimed_by: 'notifier-alive',
    });
    // Sweeping again, anywhere, sends nothing more.
    await Promise.all([notifier().sweep(), notifier().sweep()]);
    expect(sent).toHaveLength(2);
  });

  it('sweeps a missed failure first, however many promotions await approval', async () => {
    const { notifier, promotion, sent } = env;
    // A batch of one: as 200 promotions awaiting approval would fill one.
    const n = notifier({ sweepBatch: 1 });
    // Asked for approval and told already; the sweep looks at each again
    // (an ask made again is an event of its own).
    for (const stage of ['development', 'staging']) {
      await n.notify(
        await promotion(stage, '8.0.0', ['preflight', 'awaiting-approval']),
      );
    }
    expect(sent).toHaveLength(2);
    // A failure whose row the process never wrote (it died in between).
    const missed = await promotion('production', '8.1.0', ['failed'], 'boom');
    await n.sweep();
    expect(sent.map(m => m.payload.scope)).toContain(
      `progression:promotion:${missed}:failed`,
    );
    expect(sent).toHaveLength(3);
  });

  it('asks again, in the same notification, when the approval is asked for again; not when it was decided before the send', async () => {
    const { notifier, promotion, sent, store, db } = env;
    const p = await promotion('production', '6.0.0', [
      'preflight',
      'awaiting-approval',
    ]);
    const n = notifier();
    await n.notify(p);
    // Approved, then the read-only gates said something else before the
    // deploy: the approvals no longer count.
    await store.transition(p, 'awaiting-approval', 'deploying', step);
    await store.transition(p, 'deploying', 'awaiting-approval', step);
    await n.notify(p);
    expect(sent).toHaveLength(2);
    expect(sent[1].payload.scope).toBe(sent[0].payload.scope);
    expect(sent[1].payload.description).toContain('Asked again');
    expect(
      (await db('progression_notifications').where({ promotion_id: p }))
        .map(r => r.event)
        .sort(),
    ).toEqual(['awaiting-approval', 'awaiting-approval#2']);

    await store.transition(p, 'awaiting-approval', 'rejected', step);

    // Rejected before the notifier got to it: not news any more.
    const decided = await promotion('production', '6.1.0', [
      'preflight',
      'awaiting-approval',
    ]);
    await db('progression_notifications').insert({
      promotion_id: decided,
      event: 'awaiting-approval',
      not_before: new Date(Date.now() - 1000).toISOString(),
    });
    await store.transition(decided, 'awaiting-approval', 'rejected', step);
    await n.sweep();
    expect(sent).toHaveLength(2);
    expect(await rowOf(db, decided)).toMatchObject({
      status: 'skipped',
      last_error: 'the promotion is rejected now',
    });
  });
});
