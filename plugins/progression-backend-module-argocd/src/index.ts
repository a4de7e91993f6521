/**
 * The `argocd` deployer for Progression: GitOps stages promote by a Git
 * commit to the stage's Kustomize overlay and an Argo CD sync, deployed
 * only when Argo CD reports the commit synced and healthy.
 *
 * @packageDocumentation
 */

export { progressionModuleArgoCd as default } from './module';
export {
  ArgoCdDeployer,
  PROMOTION_TRAILER,
  ROLLBACK_TRAILER,
} from './ArgoCdDeployer';
export type { ArgoCdDeployRecord } from './ArgoCdDeployer';
export type { ArgoCdStageConfig } from './config';
export { overlayImage, setOverlayImage, parseImage } from './kustomization';
export type { ImageRef } from './kustomization';
