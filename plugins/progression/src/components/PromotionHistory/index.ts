export { PromotionHistory, StateLabel } from './PromotionHistory';
