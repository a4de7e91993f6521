import { resolvePackagePath } from '@backstage/backend-plugin-api';
import { TestDatabases, mockServices } from '@backstage/backend-test-utils';
import fs from 'node:fs';
import { Knex } from 'knex';
import {
  MIGRATIONS_TABLE,
  applyDatabaseMigrations,
  getMigratedClient,
} from './migrations';

const migrationsDir = resolvePackagePath(
  '@progression-io/backstage-plugin-progression-backend',
  'migrations',
);
const migrationFiles = fs
  .readdirSync(migrationsDir)
  .filter(f => f.endsWith('.js'))
  .sort();

// better-sqlite3's errors come from another realm than Jest's, so match
// the message rather than use toThrow.
const UNIQUE_VIOLATION = {
  message: expect.stringMatching(/unique|duplicate/i),
};

const TABLES = [
  'progression_releases',
  'progression_promotions',
  'progression_promotion_steps',
  'progression_approvals',
  'progression_notifications',
];

// PostgreSQL runs when scripts/test.sh has started a server and set
// BACKSTAGE_TEST_DATABASE_POSTGRES15_CONNECTION_STRING.
const databases = TestDatabases.create({ ids: ['POSTGRES_15', 'SQLITE_3'] });

async function migrateUpTo(knex: Knex, target: string) {
  await knex.migrate.up({
    directory: migrationsDir,
    tableName: MIGRATIONS_TABLE,
    name: target,
  });
}

async function migrateDownOnce(knex: Knex) {
  await knex.migrate.down({
    directory: migrationsDir,
    tableName: MIGRATIONS_TABLE,
  });
}

async function insertRelease(knex: Knex, id: string, version: string) {
  await knex('progression_releases').insert({
    id,
    entity_ref: 'component:default/payments-api',
    version,
    image: `registry.local/payments-api:${version}`,
    created_by: 'user:default/ci',
  });
}

function promotion(id: string, releaseId: string, activeKey: string | null) {
  return {
    id,
    entity_ref: 'component:default/payments-api',
    pipeline: 'standard',
    stage: 'staging',
    release_id: releaseId,
    state: activeKey ? 'pending' : 'succeeded',
    active_key: activeKey,
    requested_by: 'user:default/jane',
  };
}

it('runs on PostgreSQL when the test script asks for it', () => {
  // scripts/test.sh sets PROGRESSION_REQUIRE_POSTGRES: a run without a
  // PostgreSQL server must fail rather than quietly test SQLite alone.
  const required = process.env.PROGRESSION_REQUIRE_POSTGRES
    ? ['POSTGRES_15']
    : [];
  const supported = ['POSTGRES_15', 'SQLITE_3'].filter(id =>
    databases.supports(id as 'POSTGRES_15' | 'SQLITE_3'),
  );
  expect(supported).toEqual(expect.arrayContaining([...required, 'SQLITE_3']));
});

describe.each(databases.eachSupportedId())('migrations on %p', databaseId => {
  it('migrates each file up and down', async () => {
    const knex = await databases.init(databaseId);

    for (const file of migrationFiles) {
      await migrateUpTo(knex, file);
    }
    for (const table of TABLES) {
      expect(await knex.schema.hasTable(table)).toBe(true);
    }

    for (let i = 0; i < migrationFiles.length; i++) {
      await migrateDownOnce(knex);
    }
    for (const table of TABLES) {
      expect(await knex.schema.hasTable(table)).toBe(false);
    }

    await applyDatabaseMigrations(knex);
    for (const table of TABLES) {
      expect(await knex.schema.hasTable(table)).toBe(true);
    }
  });

  it('allows one active promotion per entity and stage, any number of ended ones', async () => {
    const knex = await databases.init(databaseId);
    await applyDatabaseMigrations(knex);
    await insertRelease(knex, 'r1', '1.0.0');

    const key = 'component:default/payments-api|staging';
    await knex('progression_promotions').insert(promotion('p1', 'r1', key));
    await expect(
      knex('progression_promotions').insert(promotion('p2', 'r1', key)),
    ).rejects.toMatchObject(UNIQUE_VIOLATION);

    await knex('progression_promotions').insert(promotion('p3', 'r1', null));
    await knex('progression_promotions').insert(promotion('p4', 'r1', null));
    const [{ n }] = await knex('progression_promotions').count({ n: '*' });
    expect(Number(n)).toBe(3);
  });

  it('keeps releases unique per entity and version and steps tied to their promotion', async () => {
    const knex = await databases.init(databaseId);
    await applyDatabaseMigrations(knex);
    if (knex.client.config.client.includes('sqlite')) {
      await knex.raw('PRAGMA foreign_keys = ON');
    }
    await insertRelease(knex, 'r1', '1.0.0');
    await expect(insertRelease(knex, 'r2', '1.0.0')).rejects.toMatchObject(
      UNIQUE_VIOLATION,
    );

    await knex('progression_promotions').insert(promotion('p1', 'r1', null));
    await knex('progression_promotion_steps').insert({
      promotion_id: 'p1',
      kind: 'gate',
      name: 'smoke',
      status: 'passed',
      reason: '4 of 4 checks passed',
      evidence: JSON.stringify({ checks: [] }),
    });
    await knex('progression_approvals').insert({
      promotion_id: 'p1',
      approver: 'user:default/ops',
      decision: 'approved',
      evidence_hash: 'sha256:abc',
    });
    await expect(
      knex('progression_approvals').insert({
        promotion_id: 'p1',
        approver: 'user:default/ops',
        decision: 'approved',
        evidence_hash: 'sha256:abc',
      }),
    ).rejects.toMatchObject(UNIQUE_VIOLATION);

    await knex('progression_promotions').where({ id: 'p1' }).delete();
    expect(await knex('progression_promotion_steps')).toEqual([]);
    expect(await knex('progression_approvals')).toEqual([]);
  });

  it('records each notification once per promotion and event, and does not announce what happened before it', async () => {
    const knex = await databases.init(databaseId);
    const before = migrationFiles.filter(
      f => f < '20261130000000_notifications.js',
    );
    for (const file of before) {
      await migrateUpTo(knex, file);
    }
    await insertRelease(knex, 'r1', '1.0.0');
    await knex('progression_promotions').insert([
      promotion('ended', 'r1', null),
      { ...promotion('waiting', 'r1', null), state: 'awaiting-approval' },
      promotion('running', 'r1', 'component:default/payments-api|staging'),
    ]);
    await applyDatabaseMigrations(knex);
    // Earlier promotions in a state worth a notification are marked as
    // such, so that the first sweep after an upgrade sends nothing.
    const seeded = await knex('progression_notifications')
      .select('promotion_id', 'event', 'status')
      .orderBy('promotion_id');
    expect(seeded).toEqual([
      { promotion_id: 'ended', event: 'succeeded', status: 'skipped' },
      {
        promotion_id: 'waiting',
        event: 'awaiting-approval',
        status: 'skipped',
      },
    ]);

    await knex('progression_notifications').insert({
      promotion_id: 'running',
      event: 'rolled-back',
    });
    await expect(
      knex('progression_notifications').insert({
        promotion_id: 'running',
        event: 'rolled-back',
      }),
    ).rejects.toMatchObject(UNIQUE_VIOLATION);
    const [row] = await knex('progression_notifications').where({
      promotion_id: 'running',
    });
    expect(row).toMatchObject({ status: 'pending', attempts: 0 });

    // Retention deletes promotions; their notifications go with them.
    if (knex.client.config.client.includes('sqlite')) {
      await knex.raw('PRAGMA foreign_keys = ON');
    }
    await knex('progression_promotions').where({ id: 'running' }).delete();
    expect(
      await knex('progression_notifications').where({
        promotion_id: 'running',
      }),
    ).toEqual([]);
  });

  it('leaves the schema alone when database.migrations.skip is set', async () => {
    const knex = await databases.init(databaseId);
    const database = mockServices.database({
      knex,
      migrations: { skip: true },
    });
    await getMigratedClient(database);
    expect(await knex.schema.hasTable('progression_promotions')).toBe(false);

    await getMigratedClient(mockServices.database({ knex }));
    expect(await knex.schema.hasTable('progression_promotions')).toBe(true);
  });
});
