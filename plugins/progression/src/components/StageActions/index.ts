export { StageActions, promoteBlocker } from './StageActions';
