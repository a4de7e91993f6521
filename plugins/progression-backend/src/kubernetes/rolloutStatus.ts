import { V1Deployment } from '@kubernetes/client-node';

export type RolloutStatus =
  | { done: true; message: string }
  | { done: false; failed: boolean; message: string };

/**
 * Whether a Deployment finished rolling out, by the rules of `kubectl rollout
 * status` (staging/src/k8s.io/kubectl/pkg/polymorphichelpers/rollout_status.go):
 * the controller observed the latest generation, no progress deadline was
 * exceeded, every replica is updated and available, no old replica is left.
 */
export function rolloutStatus(d: V1Deployment): RolloutStatus {
  const name = d.metadata?.name ?? '';
  const s = d.status ?? {};
  if ((d.metadata?.generation ?? 0) > (s.observedGeneration ?? 0)) {
    return {
      done: false,
      failed: false,
      message: 'Waiting for the deployment spec update to be observed...',
    };
  }
  const progressing = s.conditions?.find(c => c.type === 'Progressing');
  if (progressing?.reason === 'ProgressDeadlineExceeded') {
    return {
      done: false,
      failed: true,
      message: `deployment "${name}" exceeded its progress deadline`,
    };
  }
  const desired = d.spec?.replicas ?? 1;
  const updated = s.updatedReplicas ?? 0;
  const replicas = s.replicas ?? 0;
  const available = s.availableReplicas ?? 0;
  if (updated < desired) {
    return {
      done: false,
      failed: false,
      message: `${updated} out of ${desired} new replicas have been updated...`,
    };
  }
  if (replicas > updated) {
    return {
      done: false,
      failed: false,
      message: `${replicas - updated} old replicas are pending termination...`,
    };
  }
  if (available < updated) {
    return {
      done: false,
      failed: false,
      message: `${available} of ${updated} updated replicas are available...`,
    };
  }
  return {
    done: true,
    message: `deployment "${name}" successfully rolled out`,
  };
}
