export { progressionApiRef } from './ProgressionApi';
export type { ProgressionApi } from './ProgressionApi';
export { ProgressionClient } from './ProgressionClient';
