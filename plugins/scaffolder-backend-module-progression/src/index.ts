/**
 * Scaffolder actions for Progression.
 *
 * @packageDocumentation
 */

export { scaffolderModuleProgression as default } from './module';
export * from './actions';
