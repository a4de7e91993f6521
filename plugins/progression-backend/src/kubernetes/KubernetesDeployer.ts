import {
  DeployRecord,
  DeployRequest,
  DeployTarget,
  Deployer,
  LiveWorkload,
  RolloutResult,
} from '@progression-io/backstage-plugin-progression-node';
import { NotAllowedError } from '@backstage/errors';
import { checkBinding } from './entityBinding';
import { KubernetesWorkloads } from './KubernetesWorkloads';

/**
 * The built-in way to deploy (`deploy.kind: kubernetes`, the default): set
 * the image of the entity's Deployment with a strategic merge patch (as
 * `kubectl set image`), wait for it as `kubectl rollout status` does, and
 * go back with `kubectl rollout undo` semantics. A Deployment belongs to
 * the entity whose promotion first changed it (see entityBinding): no
 * other entity deploys to it or rolls it back, whatever its
 * `backstage.io/kubernetes-id` says.
 */
export class KubernetesDeployer implements Deployer {
  readonly kind = 'kubernetes';

  constructor(private readonly workloads: KubernetesWorkloads) {}

  describeLive(
    { entity, location }: DeployTarget,
    options: { cached?: boolean } = {},
  ): Promise<LiveWorkload | undefined> {
    return options.cached
      ? this.workloads.readCached(
          location,
          entity.kubernetesId,
          entity.container,
        )
      : this.workloads.readLive(
          location,
          entity.kubernetesId,
          entity.container,
        );
  }

  /** The live workload, when it is the entity's to change. */
  private async liveOwned(target: DeployTarget): Promise<LiveWorkload> {
    const live = (await this.describeLive(target))!;
    if (live.managedBy) {
      // Argo CD would put its own image back (selfHeal) or at its next
      // sync, and Git would no longer say what runs.
      throw new NotAllowedError(
        `Deployment ${live.deployment} in namespace ${target.location.namespace} is managed by Argo CD Application ${live.managedBy.application}; Progression does not patch what Argo CD manages — give stage ${target.stage.name} deploy.kind: argocd to promote through Git and Argo CD`,
      );
    }
    checkBinding(
      {
        name: live.deployment,
        namespace: target.location.namespace,
        entityRef: live.entityRef,
      },
      target.entity,
    );
    return live;
  }

  async plan(
    target: DeployTarget,
    request: DeployRequest,
  ): Promise<{ record: DeployRecord; applied: boolean }> {
    // Before anything is recorded or changed: a refusal ends the promotion
    // with nothing to undo.
    const live = await this.liveOwned(target);
    const { previous, release } = request;
    return {
      record: {
        cluster: target.stage.cluster,
        namespace: target.stage.namespace,
        deployment: live.deployment,
        container: live.container,
        fromImage: previous?.fromImage ?? live.image,
        fromRevision: previous?.fromRevision ?? live.revision,
        toImage: release.image,
      },
      // After a crash the patch may already be there: never send it twice.
      applied:
        live.image === release.image &&
        (request.kind === 'rollback' ||
          live.promotionId === request.promotionId),
    };
  }

  async apply(
    { entity, location }: DeployTarget,
    record: DeployRecord,
    request: DeployRequest,
  ): Promise<void> {
    if (request.kind === 'rollback') {
      // kubectl rollout undo to the revision that ran this release.
      await this.workloads.rollBack(location, entity.kubernetesId, {
        container: record.container,
        toImage: record.toImage,
        entity,
      });
      return;
    }
    await this.workloads.setImage(
      location,
      record.deployment,
      record.container,
      record.toImage,
      {
        changeCause: request.changeCause,
        promotionId: request.promotionId,
        // An unbound Deployment becomes the entity's with its first patch.
        entityRef: entity.entityRef,
      },
    );
  }

  /**
   * `kubectl rollout status`, failing fast on a new pod that cannot come up
   * or stays unready past the stage's `readyTimeout`; an abort rejects.
   */
  awaitRollout(
    { location, stage }: DeployTarget,
    record: DeployRecord,
    options: { timeoutMs: number; signal?: AbortSignal },
  ): Promise<RolloutResult> {
    return this.workloads.waitForRollout(location, record.deployment, {
      ...options,
      readyTimeoutMs: stage.readyTimeoutMs,
    });
  }

  async rollBack(target: DeployTarget, record: DeployRecord): Promise<unknown> {
    const live = await this.liveOwned(target);
    if (live.image === record.fromImage) return undefined;
    return this.workloads.rollBack(
      target.location,
      target.entity.kubernetesId,
      {
        container: record.container,
        toImage: record.fromImage,
        entity: target.entity,
      },
    );
  }
}
