export {
  StageActions,
  describeClosedStage,
  promoteBlocker,
} from './StageActions';
