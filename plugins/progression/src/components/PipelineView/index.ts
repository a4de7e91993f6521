export { PipelineView } from './PipelineView';
