/*
 * A promotion is either a release moving into a stage, or an on-demand
 * rollback of a stage to an earlier release.
 */

// @ts-check

/**
 * @param {import('knex').Knex} knex
 */
exports.up = async function up(knex) {
  await knex.schema.alterTable('progression_promotions', table => {
    table
      .string('kind', 16)
      .notNullable()
      .defaultTo('promotion')
      .comment('promotion or rollback');
  });
};

/**
 * @param {import('knex').Knex} knex
 */
exports.down = async function down(knex) {
  await knex.schema.alterTable('progression_promotions', table => {
    table.dropColumn('kind');
  });
};
