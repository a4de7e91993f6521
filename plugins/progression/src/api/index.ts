export { progressionApiRef } from './ProgressionApi';
export type {
  ProgressionApi,
  PromotionDetails,
  PromotionListItem,
  PromotionRef,
} from './ProgressionApi';
export { ProgressionClient } from './ProgressionClient';
