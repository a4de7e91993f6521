export { DeliveryInsightsCard } from './DeliveryInsightsCard';
