/*
 * Delivery insights read an entity's promotions that ended in a time range,
 * stage by stage: an index on when they finished keeps that read to the
 * range, however long the history is.
 */

// @ts-check

/**
 * @param {import('knex').Knex} knex
 */
exports.up = async function up(knex) {
  await knex.schema.alterTable('progression_promotions', table => {
    table.index(
      ['entity_ref', 'stage', 'finished_at'],
      'progression_promotions_entity_stage_finished_idx',
    );
  });
};

/**
 * @param {import('knex').Knex} knex
 */
exports.down = async function down(knex) {
  await knex.schema.alterTable('progression_promotions', table => {
    table.dropIndex(
      ['entity_ref', 'stage', 'finished_at'],
      'progression_promotions_entity_stage_finished_idx',
    );
  });
};
