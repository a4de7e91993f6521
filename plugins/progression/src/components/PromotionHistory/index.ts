export {
  PromotionDetailsDialog,
  PromotionHistory,
  StateLabel,
  gateOutcome,
  notMeasured,
} from './PromotionHistory';
