import { KubeObject } from '../store/Store';

/** podutil.IsPodReady; a terminating pod no longer counts. */
export const isPodReady = (p: KubeObject) =>
  !p.metadata.deletionTimestamp &&
  (p.status?.conditions ?? []).some(
    (c: any) => c.type === 'Ready' && c.status === 'True',
  );
