import {
  DeployRecord,
  DeployRequest,
  DeployTarget,
  Deployer,
  LiveWorkload,
  RolloutResult,
} from '@internal/backstage-plugin-progression-node';
import { KubernetesWorkloads } from './KubernetesWorkloads';

/**
 * The built-in way to deploy (`deploy.kind: kubernetes`, the default): set
 * the image of the entity's Deployment with a strategic merge patch (as
 * `kubectl set image`), wait for it as `kubectl rollout status` does, and
 * go back with `kubectl rollout undo` semantics.
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

  async plan(
    target: DeployTarget,
    request: DeployRequest,
  ): Promise<{ record: DeployRecord; applied: boolean }> {
    const live = (await this.describeLive(target))!;
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
    const live = (await this.describeLive(target))!;
    if (live.image === record.fromImage) return undefined;
    return this.workloads.rollBack(
      target.location,
      target.entity.kubernetesId,
      { container: record.container, toImage: record.fromImage },
    );
  }
}
