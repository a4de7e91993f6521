export {
  StageCharts,
  StageFlags,
  StageGates,
  flagDifferences,
} from './StageInsights';
