/**
 * What a backend module needs to extend Progression: the gate and deployer
 * interfaces and the extension points that take them.
 *
 * @packageDocumentation
 */

export * from './stage';
export * from './gates';
export * from './deployers';
export * from './extensions';
export * from './readConfig';
export * from './permissions';
export type { StageJobRun } from '@progression-io/backstage-plugin-progression-common';
