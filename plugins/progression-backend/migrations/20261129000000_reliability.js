/*
 * What the engine needs to end every promotion and drop none: when a step
 * that failed may be retried (retry_at), idempotency keys scoped to the
 * caller and route with the hash of the request they answered, and an
 * index for the releases waiting for a stage (queued promotions).
 */

// @ts-check

/**
 * @param {import('knex').Knex} knex
 */
exports.up = async function up(knex) {
  await knex.schema.alterTable('progression_promotions', table => {
    table
      .timestamp('retry_at', { useTz: true })
      .nullable()
      .comment('Not before: when a step that failed is tried again');
    table
      .string('idempotency_scope', 400)
      .nullable()
      .comment(
        'Who asked, on which route (or "internal"): a key is unique per scope',
      );
    table
      .string('request_hash', 80)
      .nullable()
      .comment('sha256 of the request the idempotency key answered');
    table.dropUnique(
      ['entity_ref', 'idempotency_key'],
      'progression_promotions_idempotency_uniq',
    );
    table.unique(['entity_ref', 'idempotency_scope', 'idempotency_key'], {
      indexName: 'progression_promotions_idempotency_scope_uniq',
    });
    table.index(
      ['state', 'entity_ref', 'stage'],
      'progression_promotions_state_entity_stage_idx',
    );
  });
  // Keys given before scoping keep their meaning: a caller's, on the route
  // that created the promotion.
  await knex('progression_promotions')
    .whereNotNull('idempotency_key')
    .update({ idempotency_scope: 'legacy' });
};

/**
 * @param {import('knex').Knex} knex
 */
exports.down = async function down(knex) {
  await knex.schema.alterTable('progression_promotions', table => {
    table.dropIndex(
      ['state', 'entity_ref', 'stage'],
      'progression_promotions_state_entity_stage_idx',
    );
    table.dropUnique(
      ['entity_ref', 'idempotency_scope', 'idempotency_key'],
      'progression_promotions_idempotency_scope_uniq',
    );
    table.dropColumn('request_hash');
    table.dropColumn('idempotency_scope');
    table.dropColumn('retry_at');
  });
  await knex.schema.alterTable('progression_promotions', table => {
    table.unique(['entity_ref', 'idempotency_key'], {
      indexName: 'progression_promotions_idempotency_uniq',
    });
  });
};
