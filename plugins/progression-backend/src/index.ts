/**
 * Progression backend plugin: takes a service's release through its
 * environments with gates, approvals and automatic rollback.
 *
 * @packageDocumentation
 */

export { progressionPlugin as default } from './plugin';
