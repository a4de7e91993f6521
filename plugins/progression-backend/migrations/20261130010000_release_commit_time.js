/*
 * When a release's commit was made, as CI says at registration (optional):
 * delivery insights measure lead time from it, and from the registration
 * time when it is absent.
 */

// @ts-check

/**
 * @param {import('knex').Knex} knex
 */
exports.up = async function up(knex) {
  await knex.schema.alterTable('progression_releases', table => {
    table
      .timestamp('committed_at', { useTz: true })
      .nullable()
      .comment('When the release commit was made, if CI said so');
  });
};

/**
 * @param {import('knex').Knex} knex
 */
exports.down = async function down(knex) {
  await knex.schema.alterTable('progression_releases', table => {
    table.dropColumn('committed_at');
  });
};
