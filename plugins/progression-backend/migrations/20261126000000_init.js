/*
 * Initial schema of the promotion store: releases, promotions, the steps and
 * gate results of each promotion, and approvals. Never edit a landed
 * migration; add a new one.
 */

// @ts-check

/**
 * @param {import('knex').Knex} knex
 */
exports.up = async function up(knex) {
  await knex.schema.createTable('progression_releases', table => {
    table.comment(
      'Immutable versions of an entity, registered by CI or discovered',
    );
    table.string('id', 36).primary().notNullable().comment('UUID');
    table
      .string('entity_ref', 255)
      .notNullable()
      .comment('Full entity reference');
    table
      .string('version', 128)
      .notNullable()
      .comment('Version label, unique per entity');
    table
      .text('image')
      .notNullable()
      .comment('Image reference, ideally with a digest');
    table.string('commit_sha', 64).nullable();
    table.text('build_url').nullable();
    table
      .string('created_by', 255)
      .notNullable()
      .comment('Entity ref of the actor');
    table
      .timestamp('created_at', { useTz: true })
      .notNullable()
      .defaultTo(knex.fn.now());
    table.unique(['entity_ref', 'version'], {
      indexName: 'progression_releases_entity_version_uniq',
    });
  });

  await knex.schema.createTable('progression_promotions', table => {
    table.comment('Moving one release into one stage: a durable state machine');
    table.string('id', 36).primary().notNullable().comment('UUID');
    table.string('entity_ref', 255).notNullable();
    table.string('pipeline', 63).notNullable();
    table.string('stage', 63).notNullable();
    table
      .string('release_id', 36)
      .notNullable()
      .references('id')
      .inTable('progression_releases')
      .onDelete('RESTRICT');
    table.string('state', 32).notNullable().comment('State machine state');
    table
      .string('active_key', 400)
      .nullable()
      .unique({ indexName: 'progression_promotions_active_uniq' })
      .comment(
        'entity_ref|stage while the promotion is not terminal, else NULL: at most one active promotion per entity and stage',
      );
    table.string('idempotency_key', 255).nullable();
    table
      .string('requested_by', 255)
      .notNullable()
      .comment('Entity ref of the requester');
    table.text('reason').nullable();
    table.text('error').nullable().comment('Why it failed, in plain language');
    table
      .string('owner_id', 255)
      .nullable()
      .comment('Worker that holds the promotion');
    table.timestamp('heartbeat_at', { useTz: true }).nullable();
    table.integer('attempt').notNullable().defaultTo(0);
    table
      .timestamp('created_at', { useTz: true })
      .notNullable()
      .defaultTo(knex.fn.now());
    table
      .timestamp('updated_at', { useTz: true })
      .notNullable()
      .defaultTo(knex.fn.now());
    table.timestamp('finished_at', { useTz: true }).nullable();
    table.index(
      ['entity_ref', 'stage', 'created_at'],
      'progression_promotions_entity_stage_idx',
    );
    table.index(['state', 'heartbeat_at'], 'progression_promotions_state_idx');
    table.unique(['entity_ref', 'idempotency_key'], {
      indexName: 'progression_promotions_idempotency_uniq',
    });
  });

  await knex.schema.createTable('progression_promotion_steps', table => {
    table.comment(
      'Every step, transition and gate result of a promotion, with its evidence',
    );
    table.bigIncrements('id').primary();
    table
      .string('promotion_id', 36)
      .notNullable()
      .references('id')
      .inTable('progression_promotions')
      .onDelete('CASCADE');
    table
      .string('kind', 32)
      .notNullable()
      .comment('transition, gate, deploy, rollback, ...');
    table.string('name', 128).notNullable().comment('Step or gate name');
    table
      .string('status', 32)
      .notNullable()
      .comment('running, passed, failed, inconclusive, error, skipped');
    table.string('from_state', 32).nullable();
    table.string('to_state', 32).nullable();
    table
      .string('actor', 255)
      .nullable()
      .comment('Entity ref of a person, or the worker id');
    table.text('reason').nullable().comment('One line a person understands');
    table
      .text('evidence')
      .nullable()
      .comment('JSON: queries, samples, thresholds, requests, ...');
    table
      .timestamp('started_at', { useTz: true })
      .notNullable()
      .defaultTo(knex.fn.now());
    table.timestamp('finished_at', { useTz: true }).nullable();
    table.index(
      ['promotion_id', 'id'],
      'progression_promotion_steps_promotion_idx',
    );
  });

  await knex.schema.createTable('progression_approvals', table => {
    table.comment(
      'Approvals and rejections of promotions, bound to the evidence shown',
    );
    table.bigIncrements('id').primary();
    table
      .string('promotion_id', 36)
      .notNullable()
      .references('id')
      .inTable('progression_promotions')
      .onDelete('CASCADE');
    table
      .string('approver', 255)
      .notNullable()
      .comment('Entity ref of the approver');
    table.string('decision', 16).notNullable().comment('approved or rejected');
    table.text('comment').nullable();
    table
      .string('evidence_hash', 128)
      .notNullable()
      .comment('Hash of the gate results and diff the approver saw');
    table
      .timestamp('created_at', { useTz: true })
      .notNullable()
      .defaultTo(knex.fn.now());
    table.unique(['promotion_id', 'approver'], {
      indexName: 'progression_approvals_promotion_approver_uniq',
    });
  });
};

/**
 * @param {import('knex').Knex} knex
 */
exports.down = async function down(knex) {
  await knex.schema.dropTable('progression_approvals');
  await knex.schema.dropTable('progression_promotion_steps');
  await knex.schema.dropTable('progression_promotions');
  await knex.schema.dropTable('progression_releases');
};
