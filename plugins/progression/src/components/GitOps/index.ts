export { GitOpsSection, Sha, shortSha } from './GitOpsSection';
export type { GitOpsState } from './GitOpsSection';
