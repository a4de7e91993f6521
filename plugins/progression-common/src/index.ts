/**
 * Types, annotations and helpers shared by the Progression plugins.
 *
 * @packageDocumentation
 */

export * from './annotations';
export * from './types';
export * from './evidence';
export * from './permissions';
export * from './promotionOutcome';
export * from './client/ProgressionApiClient';
