/*
 * The notifications Progression sends about promotions (awaiting approval,
 * failed, rolled back, live in production): one row per promotion and
 * event, written before the send, so that a retried step, a restart or a
 * second replica never sends one twice, and a send that a crash cut short
 * is finished by whoever sweeps next.
 */

// @ts-check

/** The events notified about; a promotion already in one is not news. */
const NOTIFIED_STATES = [
  'awaiting-approval',
  'failed',
  'rolled-back',
  'succeeded',
];

/**
 * @param {import('knex').Knex} knex
 */
exports.up = async function up(knex) {
  await knex.schema.createTable('progression_notifications', table => {
    table.comment(
      'Notifications about promotions: one per promotion and event, recorded before it is sent',
    );
    table
      .string('promotion_id', 36)
      .notNullable()
      .references('id')
      .inTable('progression_promotions')
      .onDelete('CASCADE');
    table
      .string('event', 64)
      .notNullable()
      .comment(
        'awaiting-approval (awaiting-approval#2, … when the approval is asked again), failed, rolled-back, succeeded',
      );
    table
      .string('status', 16)
      .notNullable()
      .defaultTo('pending')
      .comment('pending, sent, failed (gave up), skipped (not news any more)');
    table
      .integer('attempts')
      .notNullable()
      .defaultTo(0)
      .comment('Sends tried so far');
    table
      .string('not_before', 32)
      .nullable()
      .comment(
        'ISO 8601: while pending, when it may be tried (again); a sender holds it until then',
      );
    table
      .string('claimed_by', 255)
      .nullable()
      .comment('The sender that holds it while it sends');
    table.text('last_error').nullable().comment('Why the last send failed');
    table
      .timestamp('created_at', { useTz: true })
      .notNullable()
      .defaultTo(knex.fn.now());
    table.timestamp('sent_at', { useTz: true }).nullable();
    table.primary(['promotion_id', 'event'], 'progression_notifications_pk');
    table.index(
      ['status', 'not_before'],
      'progression_notifications_status_idx',
    );
  });
  // What happened before this migration was never announced and is no
  // news now: recorded as skipped, so the first sweep does not send it.
  await knex.raw(
    `INSERT INTO progression_notifications (promotion_id, event, status)
     SELECT id, state, 'skipped' FROM progression_promotions
     WHERE state IN (${NOTIFIED_STATES.map(() => '?').join(', ')})`,
    NOTIFIED_STATES,
  );
};

/**
 * @param {import('knex').Knex} knex
 */
exports.down = async function down(knex) {
  await knex.schema.dropTable('progression_notifications');
};
