import { LoggerService } from '@backstage/backend-plugin-api';
import { GateResult } from '@internal/backstage-plugin-progression-common';
import {
  PipelineConfig,
  ProgressionConfig,
  StageConfig,
  resolveStageUrl,
} from '../config/readProgressionConfig';
import {
  DatabasePromotionStore,
  Promotion,
  Release,
} from '../database/DatabasePromotionStore';
import { Gate, GateContext } from '../gates/Gate';
import { MetricsGate } from '../gates/MetricsGate';
import { gateContext, stageLocation } from '../gates/gateContext';
import {
  KubernetesWorkloads,
  StageLocation,
} from '../kubernetes/KubernetesWorkloads';
import {
  PromotionEvent,
  PromotionState,
  TransitionContext,
  isTerminal,
  nextState,
} from './transitions';

/** What the engine needs to know of the promotion's entity. */
export interface EntityTarget {
  entityRef: string;
  name: string;
  namespace: string;
  kubernetesId: string;
  /** The container that runs the release, when the Deployment has several. */
  container?: string;
  /** Stage URL overrides from the entity's annotations, by stage name. */
  urlOverrides?: Record<string, string>;
}

export type ResolveEntity = (entityRef: string) => Promise<EntityTarget>;

interface DeployEvidence {
  cluster: string;
  namespace: string;
  deployment: string;
  container: string;
  fromImage: string;
  fromRevision: number;
  toImage: string;
}

interface Outcome {
  event: PromotionEvent;
  kind: string;
  name: string;
  status: string;
  reason?: string;
  evidence?: unknown;
  error?: string;
}

/** States the engine works on; awaiting-approval waits for people. */
export const WORKABLE_STATES: PromotionState[] = [
  'pending',
  'preflight',
  'deploying',
  'verifying',
  'rolling-back',
];

/** The first result that stops a promotion: anything but passed or skipped. */
const firstBlocking = (results: GateResult[]) =>
  results.find(r => r.status !== 'passed' && r.status !== 'skipped');

const formatDuration = (ms: number) => {
  const minutes = Math.ceil(ms / 60_000);
  return minutes >= 60 ? `${Math.ceil(minutes / 60)} h` : `${minutes} min`;
};

/**
 * Runs promotions through their states: each call of `step` does the work
 * of the current state (a gate, the deploy, the wait for the rollout, a
 * rollback) and moves the promotion on with a compare-and-set. Every step
 * is safe to repeat after a crash: a deploy whose patch already reached the
 * cluster (the Deployment carries the promotion id) is not sent again.
 */
export class PromotionEngine {
  constructor(
    private readonly options: {
      store: DatabasePromotionStore;
      workloads: KubernetesWorkloads;
      config: ProgressionConfig;
      gates: Gate[];
      resolveEntity: ResolveEntity;
      logger: LoggerService;
      /** Who the engine acts as in the steps it records. */
      actor?: string;
      /** Told of every state change, for live progress in the frontend. */
      onTransition?: (change: {
        promotionId: string;
        entityRef: string;
        stage: string;
        from: PromotionState;
        to: PromotionState;
        reason?: string;
      }) => void;
    },
  ) {}

  private get actor() {
    return this.options.actor ?? 'progression:engine';
  }

  private pipelineOf(p: Promotion): {
    pipeline: PipelineConfig;
    stage: StageConfig;
    index: number;
  } {
    const pipeline = this.options.config.pipelines.get(p.pipeline);
    const index = pipeline?.stages.findIndex(s => s.name === p.stage) ?? -1;
    if (!pipeline || index === -1) {
      throw new Error(
        `promotion ${p.id} names stage ${p.pipeline}/${p.stage}, which is no longer configured`,
      );
    }
    return { pipeline, stage: pipeline.stages[index], index };
  }

  private location(stage: StageConfig): StageLocation {
    return stageLocation(this.options.config, stage);
  }

  private stageUrl(stage: StageConfig, entity: EntityTarget) {
    const { url, ignored } = resolveStageUrl(
      stage.url,
      {
        'entity.name': entity.name,
        'entity.namespace': entity.namespace,
        kubernetesId: entity.kubernetesId,
        'stage.name': stage.name,
        'stage.namespace': stage.namespace,
      },
      entity.urlOverrides?.[stage.name],
    );
    if (ignored) {
      this.options.logger.warn(
        `${entity.entityRef} in ${stage.name}: ${ignored}`,
      );
    }
    return url;
  }

  /**
   * Runs the promotion until it ends or waits for people. Returns its state
   * then; false from a compare-and-set (another worker moved it) ends the
   * run quietly.
   */
  async run(
    promotionId: string,
    signal?: AbortSignal,
  ): Promise<PromotionState | undefined> {
    for (let i = 0; i < 20; i++) {
      const before = await this.options.store.getPromotion(promotionId);
      if (
        !before ||
        isTerminal(before.state) ||
        !WORKABLE_STATES.includes(before.state)
      ) {
        return before?.state;
      }
      const moved = await this.step(before, signal);
      if (!moved)
        return (await this.options.store.getPromotion(promotionId))?.state;
    }
    return (await this.options.store.getPromotion(promotionId))?.state;
  }

  /** Does the work of the promotion's current state and moves it on. */
  async step(p: Promotion, signal?: AbortSignal): Promise<boolean> {
    const { stage } = this.pipelineOf(p);
    const release = await this.options.store.getRelease(p.releaseId);
    if (!release)
      throw new Error(`release ${p.releaseId} of promotion ${p.id} is missing`);
    // An on-demand rollback is the way out of trouble: no approval, and
    // nothing to roll back to if it fails.
    const rollback = p.kind === 'rollback';
    const context: TransitionContext = {
      approvalRequired: !rollback && stage.approval.required,
      automaticRollback: !rollback && stage.rollback.automatic,
    };
    const outcome = await this.work(p, release, signal);
    const to = nextState(p.state, outcome.event, context);
    const moved = await this.options.store.transition(p.id, p.state, to, {
      kind: outcome.kind,
      name: outcome.name,
      status: outcome.status,
      reason: outcome.reason,
      evidence: outcome.evidence,
      actor: this.actor,
      error: outcome.error,
    });
    if (moved) {
      this.options.onTransition?.({
        promotionId: p.id,
        entityRef: p.entityRef,
        stage: p.stage,
        from: p.state,
        to,
        reason: outcome.reason,
      });
      this.options.logger.info(
        `promotion ${p.id} of ${p.entityRef} ${release.version} to ${
          p.stage
        }: ${p.state} → ${to}${outcome.reason ? ` (${outcome.reason})` : ''}`,
      );
      if (to === 'succeeded') await this.promoteOnward(p, release);
    }
    return moved;
  }

  private async work(
    p: Promotion,
    release: Release,
    signal?: AbortSignal,
  ): Promise<Outcome> {
    switch (p.state) {
      case 'pending':
        return {
          event: 'start',
          kind: 'transition',
          name: 'start',
          status: 'passed',
        };
      case 'preflight':
        return this.preflight(p, release);
      case 'deploying':
        return this.deploy(p, release, signal);
      case 'verifying':
        return this.verify(p, release, signal);
      case 'rolling-back':
        return this.rollBack(p, release, signal);
      default:
        throw new Error(
          `promotion ${p.id} is ${p.state}: nothing for the engine to do`,
        );
    }
  }

  /** No skipping: the release passed the previous stage and soaked there. */
  private async preflight(p: Promotion, release: Release): Promise<Outcome> {
    const { pipeline, index } = this.pipelineOf(p);
    if (p.kind === 'rollback') {
      return {
        event: 'preflight-passed',
        kind: 'gate',
        name: 'progression',
        status: 'passed',
        reason: `a rollback to ${release.version} skips the pipeline's order`,
      };
    }
    if (index > 0) {
      const previous = pipeline.stages[index - 1];
      const passed = await this.options.store.findSucceeded(
        p.entityRef,
        previous.name,
        release.id,
      );
      if (!passed) {
        return {
          event: 'preflight-failed',
          kind: 'gate',
          name: 'progression',
          status: 'failed',
          reason: `${previous.name} has not passed ${release.version} yet`,
          error: `${previous.name} has not passed ${release.version} yet`,
        };
      }
      const soakedFor =
        Date.now() - Date.parse(passed.finishedAt ?? passed.updatedAt);
      if (soakedFor < previous.soakMs) {
        const reason = `${release.version} must soak in ${
          previous.name
        } for ${formatDuration(previous.soakMs - soakedFor)} more`;
        return {
          event: 'preflight-failed',
          kind: 'gate',
          name: 'soak',
          status: 'failed',
          reason,
          error: reason,
        };
      }
    }
    if (index > 0) {
      // Soak: the release must still be healthy where it soaked, by that
      // stage's metric checks when it has any.
      const previous = pipeline.stages[index - 1];
      const health = await this.soakHealth(p, release, previous);
      if (health && health.status !== 'passed' && health.status !== 'skipped') {
        const reason = `${release.version} is not healthy in ${previous.name}: ${health.reason}`;
        return {
          event: 'preflight-failed',
          kind: 'gate',
          name: 'soak',
          status: health.status,
          reason,
          evidence: health,
          error: reason,
        };
      }
    }
    const failed = firstBlocking(await this.runGates(p, release, 'preflight'));
    if (failed) {
      const reason = `${failed.gate}: ${failed.reason}`;
      return {
        event: 'preflight-failed',
        kind: 'transition',
        name: 'preflight',
        status: 'failed',
        reason,
        error: reason,
      };
    }
    return {
      event: 'preflight-passed',
      kind: 'gate',
      name: 'progression',
      status: 'passed',
      reason:
        index > 0
          ? `${pipeline.stages[index - 1].name} passed ${release.version}`
          : `${p.stage} is the first stage`,
    };
  }

  /** One sample of the previous stage's metric checks, where it has any. */
  private async soakHealth(
    p: Promotion,
    release: Release,
    previous: StageConfig,
  ): Promise<GateResult | undefined> {
    const metrics = this.options.gates.find(
      (g): g is MetricsGate => g instanceof MetricsGate,
    );
    if (!metrics || previous.soakMs === 0) return undefined;
    const context = await this.gateContext(p, previous, release);
    const result = await metrics.health(context);
    if (result) {
      await this.options.store.addStep(p.id, {
        kind: 'gate',
        name: 'soak',
        status: result.status,
        actor: this.actor,
        reason: `${previous.name}: ${result.reason}`,
        evidence: result,
      });
    }
    return result;
  }

  private async deployEvidence(
    p: Promotion,
  ): Promise<DeployEvidence | undefined> {
    const steps = await this.options.store.listSteps(p.id);
    return steps.find(s => s.kind === 'deploy' && s.name === 'patch')
      ?.evidence as DeployEvidence | undefined;
  }

  private async deploy(
    p: Promotion,
    release: Release,
    signal?: AbortSignal,
  ): Promise<Outcome> {
    const { stage } = this.pipelineOf(p);
    const entity = await this.options.resolveEntity(p.entityRef);
    const location = this.location(stage);
    const live = await this.options.workloads.readLive(
      location,
      entity.kubernetesId,
      entity.container,
    );

    let evidence = await this.deployEvidence(p);
    // After a crash the patch may already be there: never send it twice.
    const alreadyPatched =
      live.image === release.image &&
      (p.kind === 'rollback' || live.promotionId === p.id);
    if (!alreadyPatched && !evidence && p.kind !== 'rollback') {
      // Jobs before the deploy (a migration): after the approval, once.
      const failed = firstBlocking(
        await this.runGates(p, release, 'predeploy', signal, { once: true }),
      );
      if (failed) {
        const reason = `${failed.gate}: ${failed.reason}; nothing was deployed`;
        return {
          event: 'predeploy-failed',
          kind: 'transition',
          name: 'predeploy',
          status: 'failed',
          reason,
          error: reason,
        };
      }
    }
    if (!alreadyPatched) {
      evidence = {
        cluster: stage.cluster,
        namespace: stage.namespace,
        deployment: live.deployment,
        container: live.container,
        fromImage: evidence?.fromImage ?? live.image,
        fromRevision: evidence?.fromRevision ?? live.revision,
        toImage: release.image,
      };
      // Recorded before the patch, so that a crash in between still knows
      // what to roll back to.
      await this.options.store.addStep(p.id, {
        kind: 'deploy',
        name: 'patch',
        status: 'started',
        actor: this.actor,
        reason: `${live.image} → ${release.image}`,
        evidence,
      });
      if (p.kind === 'rollback') {
        // kubectl rollout undo to the revision that ran this release.
        await this.options.workloads.rollBack(location, entity.kubernetesId, {
          container: live.container,
          toImage: release.image,
        });
      } else {
        await this.options.workloads.setImage(
          location,
          live.deployment,
          live.container,
          release.image,
          {
            changeCause: `Progression: ${release.version} to ${p.stage} (promotion ${p.id})`,
            promotionId: p.id,
          },
        );
      }
    }
    const started = Date.now();
    const rollout = await this.options.workloads.waitForRollout(
      location,
      live.deployment,
      {
        timeoutMs: stage.rolloutTimeoutMs,
        signal,
      },
    );
    const rolloutEvidence = {
      ...evidence,
      rollout: rollout.message,
      waitedMs: Date.now() - started,
    };
    if (rollout.done) {
      return {
        event: 'deployed',
        kind: 'deploy',
        name: 'rollout',
        status: 'passed',
        reason: rollout.message,
        evidence: rolloutEvidence,
      };
    }
    return {
      event: 'deploy-failed',
      kind: 'deploy',
      name: 'rollout',
      status: 'failed',
      reason: rollout.message,
      evidence: rolloutEvidence,
      error: rollout.message,
    };
  }

  /** What a gate gets to measure `stage` for this promotion. */
  private async gateContext(
    p: Promotion,
    stage: StageConfig,
    release: Release,
    signal?: AbortSignal,
  ): Promise<GateContext> {
    const { pipeline } = this.pipelineOf(p);
    const entity = await this.options.resolveEntity(p.entityRef);
    return {
      ...gateContext({
        config: this.options.config,
        pipeline,
        stage,
        workloads: this.options.workloads,
        entity,
        stageUrl: this.stageUrl(stage, entity),
        signal,
      }),
      release: {
        id: release.id,
        version: release.version,
        image: release.image,
      },
      promotionId: p.id,
      baseline: (gate, check) => this.baseline(p, stage, gate, check),
    };
  }

  /**
   * What `gate` measured for `check` in the last promotion that succeeded
   * in the stage: the baseline of relative thresholds.
   */
  private async baseline(
    p: Promotion,
    stage: StageConfig,
    gate: string,
    check: string,
  ): Promise<number | undefined> {
    const { lastSucceeded } =
      (await this.options.store.stageSummaries(p.entityRef, [stage.name])).get(
        stage.name,
      ) ?? {};
    if (!lastSucceeded || lastSucceeded.id === p.id) return undefined;
    const steps = await this.options.store.listSteps(lastSucceeded.id);
    for (const step of [...steps].reverse()) {
      if (step.kind !== 'gate' || step.name !== gate) continue;
      const checks = (step.evidence as { evidence?: { checks?: unknown } })
        ?.evidence?.checks;
      if (!Array.isArray(checks)) continue;
      const value = checks.find(
        (c: { name?: string }) => c?.name === check,
      )?.value;
      if (typeof value === 'number') return value;
    }
    return undefined;
  }

  private async runGates(
    p: Promotion,
    release: Release,
    phase: GateResult['phase'],
    signal?: AbortSignal,
    options: { once?: boolean } = {},
  ): Promise<GateResult[]> {
    const { stage } = this.pipelineOf(p);
    const gates = this.options.gates.filter(g => g.appliesTo(stage, phase));
    if (!gates.length) return [];
    const context = await this.gateContext(p, stage, release, signal);
    // A gate that already passed in this phase (before a crash) is not run
    // again when it must run once, such as a migration Job.
    const done = options.once
      ? new Set(
          (await this.options.store.listSteps(p.id))
            .filter(
              s =>
                s.kind === 'gate' &&
                (s.status === 'passed' || s.status === 'skipped') &&
                (s.evidence as GateResult | undefined)?.phase === phase,
            )
            .map(s => s.name),
        )
      : new Set<string>();
    const results: GateResult[] = [];
    for (const gate of gates) {
      if (done.has(gate.name)) continue;
      const result = await gate.run(context, phase);
      results.push(result);
      if (phase !== 'rollback') {
        await this.options.store.addStep(p.id, {
          kind: 'gate',
          name: gate.name,
          status: result.status,
          actor: this.actor,
          reason: result.reason,
          evidence: result,
        });
      }
    }
    return results;
  }

  private async verify(
    p: Promotion,
    release: Release,
    signal?: AbortSignal,
  ): Promise<Outcome> {
    const results = await this.runGates(p, release, 'verification', signal);
    const failed = firstBlocking(results);
    if (failed) {
      return {
        event: 'verify-failed',
        kind: 'transition',
        name: 'verification',
        status: 'failed',
        reason: `${failed.gate}: ${failed.reason}`,
        error: `${failed.gate}: ${failed.reason}`,
      };
    }
    return {
      event: 'verified',
      kind: 'transition',
      name: 'verification',
      status: 'passed',
      reason: results.length
        ? results.map(r => `${r.gate}: ${r.reason}`).join('; ')
        : 'no verification gates configured',
    };
  }

  /**
   * `kubectl rollout undo` to the image that ran before this promotion,
   * the rollout wait, then the stage's smoke checks again.
   */
  private async rollBack(
    p: Promotion,
    release: Release,
    signal?: AbortSignal,
  ): Promise<Outcome> {
    const { stage } = this.pipelineOf(p);
    const entity = await this.options.resolveEntity(p.entityRef);
    const location = this.location(stage);
    const started = Date.now();
    const evidence = await this.deployEvidence(p);
    if (!evidence) {
      // Cancelled before the patch was sent: nothing to undo.
      return {
        event: 'rollback-succeeded',
        kind: 'rollback',
        name: 'rollback',
        status: 'skipped',
        reason: 'nothing was deployed',
      };
    }
    const live = await this.options.workloads.readLive(
      location,
      entity.kubernetesId,
      entity.container,
    );
    let undo: Awaited<ReturnType<KubernetesWorkloads['rollBack']>> | undefined;
    if (live.image !== evidence.fromImage) {
      undo = await this.options.workloads.rollBack(
        location,
        entity.kubernetesId,
        {
          container: evidence.container,
          toImage: evidence.fromImage,
        },
      );
    }
    const rollout = await this.options.workloads.waitForRollout(
      location,
      evidence.deployment,
      {
        timeoutMs: stage.rolloutTimeoutMs,
        signal,
      },
    );
    // `kubectl rollout undo` + `kubectl rollout status`'s share of it.
    const undoAndRolloutMs = Date.now() - started;
    const checks = rollout.done
      ? await this.runGates(p, release, 'rollback', signal)
      : [];
    const healthy =
      rollout.done &&
      checks.every(c => c.status === 'passed' || c.status === 'skipped');
    const result = {
      from: release.image,
      to: evidence.fromImage,
      undo,
      rollout: rollout.message,
      checks,
      undoAndRolloutMs,
      durationMs: Date.now() - started,
    };
    const reason = healthy
      ? `back on ${evidence.fromImage} in ${(
          (Date.now() - started) /
          1000
        ).toFixed(1)} s`
      : `rollback to ${evidence.fromImage} did not end healthy: ${
          rollout.done
            ? checks.find(c => c.status !== 'passed')?.reason
            : rollout.message
        }`;
    return {
      event: healthy ? 'rollback-succeeded' : 'rollback-failed',
      kind: 'rollback',
      name: 'rollback',
      status: healthy ? 'passed' : 'failed',
      reason,
      evidence: result,
      ...(!healthy && { error: reason }),
    };
  }

  /**
   * Rejects promotions that waited for an approval longer than their
   * stage's `approval.expiresAfter`. Returns how many it rejected.
   */
  async expireApprovals(now = Date.now()): Promise<number> {
    let expired = 0;
    for (const p of await this.options.store.listInState('awaiting-approval')) {
      const stage = this.options.config.pipelines
        .get(p.pipeline)
        ?.stages.find(s => s.name === p.stage);
      const limit = stage?.approval.expiresAfterMs;
      if (limit === undefined) continue;
      const steps = await this.options.store.listSteps(p.id);
      const since =
        steps.find(s => s.toState === 'awaiting-approval')?.finishedAt ??
        p.updatedAt;
      if (now - Date.parse(since) < limit) continue;
      const reason = `no approval within ${formatDuration(limit)}`;
      const moved = await this.options.store.transition(
        p.id,
        'awaiting-approval',
        nextState('awaiting-approval', 'approval-expired', {
          approvalRequired: true,
          automaticRollback: true,
        }),
        {
          kind: 'approval',
          name: 'expired',
          status: 'failed',
          actor: this.actor,
          reason,
          error: reason,
        },
      );
      if (moved) expired++;
    }
    return expired;
  }

  /** After a success, a release flows on into a next stage that asks for it. */
  private async promoteOnward(p: Promotion, release: Release) {
    const { pipeline, index } = this.pipelineOf(p);
    const next = pipeline.stages[index + 1];
    if (p.kind === 'rollback' || !next?.autoPromote) return;
    try {
      await this.options.store.createPromotion({
        entityRef: p.entityRef,
        pipeline: p.pipeline,
        stage: next.name,
        releaseId: release.id,
        requestedBy: p.requestedBy,
        reason: `autoPromote after ${p.stage} passed ${release.version}`,
        idempotencyKey: `auto:${p.id}`,
      });
    } catch (e) {
      this.options.logger.warn(
        `could not auto-promote ${release.version} of ${p.entityRef} to ${
          next.name
        }: ${(e as Error).message}`,
      );
    }
  }
}
