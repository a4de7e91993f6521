import { KubeObject } from '../store/Store';

/** controller.IsPodActive: a pod that neither finished nor is terminating. */
export const isPodActive = (p: KubeObject) =>
  p.status?.phase !== 'Succeeded' &&
  p.status?.phase !== 'Failed' &&
  !p.metadata.deletionTimestamp;
