/**
 * The `testJob` gate for Progression: a test image (k6, newman, any
 * container) runs as a Kubernetes Job in the stage after the deploy, and
 * its exit code decides.
 *
 * @packageDocumentation
 */

export { progressionModuleTestJob as default } from './module';
export { TestJobGate, JOB_ROLE_LABEL, testJobName } from './TestJobGate';
export type { TestJobEvidence, TestJobGateConfig } from './TestJobGate';
