export {
  PromotionDetailsDialog,
  PromotionHistory,
  StateLabel,
} from './PromotionHistory';
