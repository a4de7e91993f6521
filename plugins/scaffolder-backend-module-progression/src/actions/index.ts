export { createRegisterReleaseAction } from './registerRelease';
export { createPromoteAction } from './promote';
export { createValidatePipelineAction } from './validatePipeline';
