export { progressionApiRef } from './ProgressionApi';
export type { ProgressionApi, PromotionRef } from './ProgressionApi';
export { ProgressionClient } from './ProgressionClient';
