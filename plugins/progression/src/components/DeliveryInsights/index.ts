export { DeliveryInsights } from './DeliveryInsights';
export { StageDeliveryFigures } from './StageDeliveryFigures';
export { formatDuration } from './formatDuration';
