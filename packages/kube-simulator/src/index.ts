/**
 * A Kubernetes API server simulator for tests and the demo.
 *
 * @packageDocumentation
 */
export { KubeSimulator, DEFAULT_TOKEN } from './KubeSimulator';
export type { KubeSimulatorOptions } from './KubeSimulator';
export type { FaultSettings } from './api/Faults';
export type { KubeObject } from './store/Store';
export { installDemo, DEMO_STAGES, DEMO_SERVICES } from './demo/installDemo';
export type { DemoStage } from './demo/installDemo';
export { WorkloadServer, workloadBehaviour } from './demo/WorkloadServer';
export { GitServer } from './gitops/GitServer';
export type { GitServerOptions } from './gitops/GitServer';
export { ArgoCdStandIn } from './gitops/ArgoCd';
export type { ArgoCdOptions } from './gitops/ArgoCd';
export type { RepositoryCredentials } from './gitops/Repositories';
export {
  installGitOpsDemo,
  gitopsManifests,
  GITOPS_DEMO,
} from './demo/installGitOpsDemo';
