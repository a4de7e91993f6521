import { Entity, stringifyEntityRef } from '@backstage/catalog-model';
import {
  ConflictError,
  InputError,
  NotAllowedError,
  NotFoundError,
} from '@backstage/errors';
import {
  PromotionDto,
  ReleaseDto,
} from '@progression-io/backstage-plugin-progression-common';
import {
  Deployer,
  StageWorkloads,
} from '@progression-io/backstage-plugin-progression-node';
import { entityTarget } from '../catalog/entityTarget';
import { PipelineConfig, ProgressionConfig } from '../config/types';
import { Promotion, PromotionStore, Release } from '../database/PromotionStore';
import { refusalToEnter } from '../engine/admission';
import { evidenceHash } from '../engine/evidenceHash';
import { nextState } from '../engine/transitions';
import { stageLocation } from '../gates/gateContext';
import { StageWindows } from '../windows/StageWindows';
import { windowFacts } from '../windows/windowSteps';
import { pipelineOf } from './describeEnvironments';
import { promotionDto, releaseDto } from './dto';

/** How far ahead of this backend's clock a commit time may be (CI's clock may run fast). */
const MAX_COMMIT_CLOCK_SKEW_MS = 5 * 60_000;

/** A request's idempotency key, whose it is, and what it asked. */
export interface Idempotency {
  key: string;
  /** The caller and the route: the same key elsewhere is another key. */
  scope: string;
  /** A hash of the request: the same key with another request is a 422. */
  requestHash: string;
}

function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}

/**
 * What the REST API changes: registering releases, requesting promotions
 * and rollbacks, approving, rejecting and cancelling. Every state change
 * goes through the transition table; the pipeline's order rule is the one
 * the engine's preflight applies.
 */
export class PromotionCommands {
  private readonly deployers: Map<string, Deployer<any>>;

  constructor(
    private readonly options: {
      store: PromotionStore;
      config: ProgressionConfig;
      /** How releases reach stages: a rollback reads what runs now. */
      deployers: readonly Deployer<any>[];
      /** The stages' clusters, for the deployers. */
      workloads: StageWorkloads;
      /** Called when a promotion may have work to do. */
      onWork: () => void;
      /** The user and the groups they belong to, read when asked. */
      memberships: (userEntityRef: string) => Promise<string[]>;
      /** The stages' windows and freezes; without it every stage is open. */
      windows?: StageWindows;
      /**
       * Told of a window override, to notify the owners; resolves once the
       * notification is recorded (before the answer), and never rejects:
       * the override has happened.
       */
      onWindowOverride?: (promotionId: string) => Promise<void>;
    },
  ) {
    this.deployers = new Map(options.deployers.map(d => [d.kind, d]));
  }

  private get store() {
    return this.options.store;
  }

  private pipelineOf(entity: Entity): PipelineConfig {
    return pipelineOf(entity, this.options.config);
  }

  /** The stage's position in the pipeline; 404 naming the stages otherwise. */
  private stageIndex(pipeline: PipelineConfig, name: string): number {
    const index = pipeline.stages.findIndex(s => s.name === name);
    if (index === -1) {
      throw new NotFoundError(
        `Pipeline ${
          pipeline.name
        } has no stage '${name}'; stages: ${pipeline.stages
          .map(s => s.name)
          .join(', ')}`,
      );
    }
    return index;
  }

  /**
   * What a request with the same idempotency key created before, if any
   * (422 when the key came with another request).
   */
  private async repeated(
    entityRef: string,
    idempotency?: Idempotency,
  ): Promise<PromotionDto | undefined> {
    if (!idempotency) return undefined;
    const again = await this.store.findRepeated({
      entityRef,
      idempotencyKey: idempotency.key,
      idempotencyScope: idempotency.scope,
      requestHash: idempotency.requestHash,
    });
    return again ? promotionDto(this.store, again) : undefined;
  }

  private static keyOf(idempotency?: Idempotency) {
    return (
      idempotency && {
        idempotencyKey: idempotency.key,
        idempotencyScope: idempotency.scope,
        requestHash: idempotency.requestHash,
      }
    );
  }

  /**
   * Registers a release; with autoPromote on the first stage its promotion
   * starts (once: the release id is its idempotency key), or waits queued
   * while the stage is busy: a registered release is never refused for it.
   */
  async registerRelease(
    entity: Entity,
    input: {
      version: string;
      image: string;
      commit?: string;
      committedAt?: string;
      url?: string;
    },
    actor: string,
  ): Promise<{
    release: ReleaseDto;
    created: boolean;
    promotion?: PromotionDto;
  }> {
    const pipeline = this.pipelineOf(entity);
    const entityRef = stringifyEntityRef(entity);
    if (input.url !== undefined && !isHttpUrl(input.url)) {
      throw new InputError(
        `url must be an http or https URL, got '${input.url}'`,
      );
    }
    if (input.committedAt !== undefined) {
      const committed = Date.parse(input.committedAt);
      // Lead time is measured from it: a time that cannot be read, or one
      // from a clock far ahead, would make it meaningless.
      if (!Number.isFinite(committed)) {
        throw new InputError(
          `committedAt must be an ISO 8601 date and time, got '${input.committedAt}'`,
        );
      }
      if (committed > Date.now() + MAX_COMMIT_CLOCK_SKEW_MS) {
        throw new InputError(
          `committedAt ${input.committedAt} is in the future; send the commit's time (git show -s --format=%cI)`,
        );
      }
    }
    const { release, created } = await this.store.registerRelease({
      entityRef,
      version: input.version,
      image: input.image,
      commit: input.commit,
      committedAt: input.committedAt,
      buildUrl: input.url,
      createdBy: actor,
    });
    let promotion: PromotionDto | undefined;
    const first = pipeline.stages[0];
    if (first.autoPromote) {
      const result = await this.store.createPromotion({
        entityRef,
        pipeline: pipeline.name,
        stage: first.name,
        releaseId: release.id,
        requestedBy: actor,
        reason: `autoPromote of release ${release.version}`,
        idempotencyKey: `release:${release.id}`,
        whenBusy: 'queue',
      });
      promotion = await promotionDto(this.store, result.promotion, release);
      this.options.onWork();
    }
    return { release: releaseDto(release), created, promotion };
  }

  /**
   * Requests a promotion. 404 for an unknown stage or version; 409 when
   * the release has not passed (and soaked in) the previous stage, or the
   * stage is busy.
   */
  async requestPromotion(
    entity: Entity,
    input: { stage: string; version?: string; reason?: string },
    actor: string,
    idempotency?: Idempotency,
  ): Promise<PromotionDto> {
    const pipeline = this.pipelineOf(entity);
    const entityRef = stringifyEntityRef(entity);
    const index = this.stageIndex(pipeline, input.stage);
    const again = await this.repeated(entityRef, idempotency);
    if (again) return again;
    const release = input.version
      ? await this.store.findRelease(entityRef, input.version)
      : (await this.store.listReleases(entityRef, 1))[0];
    if (!release) {
      throw new NotFoundError(
        input.version
          ? `${entityRef} has no release ${input.version}; register it first`
          : `${entityRef} has no releases yet; register one first`,
      );
    }
    const refusal = await refusalToEnter(this.store, {
      pipeline,
      stageIndex: index,
      entityRef,
      release,
    });
    if (refusal) throw new ConflictError(refusal);
    const { promotion } = await this.store.createPromotion({
      entityRef,
      pipeline: pipeline.name,
      stage: input.stage,
      releaseId: release.id,
      requestedBy: actor,
      reason: input.reason,
      ...PromotionCommands.keyOf(idempotency),
    });
    this.options.onWork();
    return promotionDto(this.store, promotion, release);
  }

  /**
   * Requests an on-demand rollback of a stage to an earlier release: the
   * named one, or the one that ran there before what runs now. It skips the
   * pipeline's order and approvals; 409 while the stage is busy (cancel the
   * active promotion instead: that rolls back too).
   */
  async requestRollback(
    entity: Entity,
    input: { stage: string; toVersion?: string; reason?: string },
    actor: string,
    idempotency?: Idempotency,
  ): Promise<PromotionDto> {
    const pipeline = this.pipelineOf(entity);
    const entityRef = stringifyEntityRef(entity);
    const stage = pipeline.stages[this.stageIndex(pipeline, input.stage)];
    const again = await this.repeated(entityRef, idempotency);
    if (again) return again;
    const windows = this.options.windows;
    if (
      windows?.policyOf(pipeline.name, stage.name)?.rollbacksWhenClosed ===
      'deny'
    ) {
      const state = await windows.state(pipeline.name, stage.name, {
        fresh: true,
      });
      if (state && !state.open) {
        throw new ConflictError(
          `${stage.name} is closed (${state.reason}) and takes no rollbacks while closed (rollbacksWhenClosed: deny); cancel the active promotion instead, or wait for the stage to open`,
        );
      }
    }
    let target: Release | undefined;
    if (input.toVersion) {
      target = await this.store.findRelease(entityRef, input.toVersion);
      if (!target)
        throw new NotFoundError(
          `${entityRef} has no release ${input.toVersion}`,
        );
      // `kubectl rollout undo` goes back to a revision the stage ran; a
      // release it never ran has none, and would never roll out.
      if (!(await this.store.findSucceeded(entityRef, stage.name, target.id))) {
        throw new ConflictError(
          `${target.version} never ran in ${stage.name}, so there is nothing to roll back to; roll back to a release that succeeded there, or promote ${target.version} instead`,
        );
      }
    } else {
      // What runs there now, from the deployer's cache: one stage, no more.
      const liveImage = (
        await this.deployers.get(stage.deploy.kind)?.describeLive(
          {
            entity: entityTarget(entity, this.options.config),
            stage,
            location: stageLocation(this.options.config, stage),
            workloads: this.options.workloads,
          },
          { cached: true },
        )
      )?.image;
      const succeeded = (
        await this.store.listPromotions(entityRef, {
          stage: stage.name,
          state: 'succeeded',
          limit: 100,
        })
      ).items;
      for (const p of succeeded) {
        const r = await this.store.getRelease(p.releaseId);
        if (r && r.image !== liveImage) {
          target = r;
          break;
        }
      }
      if (!target) {
        throw new NotFoundError(
          `No earlier release of ${entityRef} ran in ${stage.name}; name one with toVersion`,
        );
      }
    }
    const { promotion } = await this.store.createPromotion({
      entityRef,
      pipeline: pipeline.name,
      stage: stage.name,
      releaseId: target.id,
      requestedBy: actor,
      reason: input.reason ?? `roll back ${stage.name} to ${target.version}`,
      ...PromotionCommands.keyOf(idempotency),
      kind: 'rollback',
    });
    this.options.onWork();
    return promotionDto(this.store, promotion, target);
  }

  /**
   * An approver's decision. Only members of the stage's approvers may
   * decide, the requester only where the pipeline allows it; a rejection
   * ends the promotion, enough approvals (for the current evidence) let it
   * deploy.
   */
  async decide(
    p: Promotion,
    input: {
      decision: 'approve' | 'reject';
      comment?: string;
      evidenceHash?: string;
    },
    approver: { userEntityRef: string },
  ): Promise<PromotionDto> {
    // 409 unless the promotion awaits approval.
    const to = nextState(
      p.state,
      input.decision === 'approve' ? 'approved' : 'rejected',
      { approvalRequired: true, automaticRollback: true },
    );
    const pipeline = this.options.config.pipelines.get(p.pipeline);
    const stage = pipeline?.stages.find(s => s.name === p.stage);
    if (!stage)
      throw new NotFoundError(
        `Stage ${p.pipeline}/${p.stage} is no longer configured`,
      );
    const allowed = stage.approval.approvers.map(r =>
      r.toLocaleLowerCase('en-US'),
    );
    // Membership now, from the catalog: not what the sign-in token said.
    const mine = (await this.options.memberships(approver.userEntityRef)).map(
      r => r.toLocaleLowerCase('en-US'),
    );
    if (!allowed.some(r => mine.includes(r))) {
      throw new NotAllowedError(
        `${approver.userEntityRef} may not approve promotions to ${
          p.stage
        }; approvers: ${stage.approval.approvers.join(', ')}`,
      );
    }
    if (
      approver.userEntityRef === p.requestedBy &&
      !stage.approval.allowSelfApproval
    ) {
      throw new NotAllowedError(
        `${approver.userEntityRef} requested this promotion and may not approve it too`,
      );
    }
    const hash = await evidenceHash(this.store, p);
    if (input.evidenceHash && input.evidenceHash !== hash) {
      throw new ConflictError(
        `The evidence of promotion ${p.id} changed since it was shown (${input.evidenceHash}, now ${hash}); look at it again and decide on what is there now`,
      );
    }
    await this.store.addApproval(p.id, {
      approver: approver.userEntityRef,
      decision: input.decision === 'approve' ? 'approved' : 'rejected',
      comment: input.comment,
      evidenceHash: hash,
    });
    if (input.decision === 'reject') {
      await this.store.transition(p.id, 'awaiting-approval', to, {
        kind: 'approval',
        name: 'rejected',
        status: 'failed',
        actor: approver.userEntityRef,
        reason: input.comment ?? `rejected by ${approver.userEntityRef}`,
        error: `rejected by ${approver.userEntityRef}${
          input.comment ? `: ${input.comment}` : ''
        }`,
      });
    } else {
      const approvals = (await this.store.listApprovals(p.id)).filter(
        a => a.decision === 'approved' && a.evidenceHash === hash,
      );
      const approvers = new Set(approvals.map(a => a.approver));
      if (approvers.size >= stage.approval.minApprovals) {
        await this.store.transition(p.id, 'awaiting-approval', to, {
          kind: 'approval',
          name: 'approved',
          status: 'passed',
          actor: approver.userEntityRef,
          reason: `approved by ${[...approvers].join(', ')}`,
          evidence: { approvers: [...approvers], evidenceHash: hash },
        });
        this.options.onWork();
      }
    }
    return promotionDto(this.store, (await this.store.getPromotion(p.id))!);
  }

  /**
   * Break-glass: a promotion that waits for its closed stage goes on now,
   * where it stopped. The override, who made it and why, is a step of the
   * promotion and holds for the rest of it; the owners are told. 409 unless
   * the promotion waits for a window.
   */
  async overrideWindow(
    p: Promotion,
    reason: string,
    actor: string,
  ): Promise<PromotionDto> {
    if (!reason.trim()) {
      throw new InputError('an override of a promotion window needs a reason');
    }
    if (p.state !== 'waiting') {
      throw new ConflictError(
        `Promotion ${p.id} is ${p.state}, not waiting for a promotion window; there is nothing to override`,
      );
    }
    const { waitedBeforeDeploy } = windowFacts(
      await this.store.listSteps(p.id),
    );
    const to = nextState(p.state, 'window-overridden', {
      approvalRequired: false,
      automaticRollback: true,
      waitedBeforeDeploy,
    });
    const state = await this.options.windows?.state(p.pipeline, p.stage);
    const moved = await this.store.transition(p.id, p.state, to, {
      kind: 'window',
      name: 'override',
      status: 'passed',
      actor,
      reason: `window overridden by ${actor}: ${reason.trim()}`,
      evidence: {
        by: actor,
        reason: reason.trim(),
        ...(state && {
          window: {
            open: state.open,
            source: state.source,
            reason: state.reason,
            ...(state.nextOpening && {
              nextOpening: state.nextOpening.toISOString(),
            }),
          },
        }),
      },
    });
    if (!moved) {
      throw new ConflictError(
        `Promotion ${p.id} moved on while its window was being overridden; look at it again`,
      );
    }
    await this.options.onWindowOverride?.(p.id);
    this.options.onWork();
    return promotionDto(this.store, (await this.store.getPromotion(p.id))!);
  }

  /**
   * Before the deploy a cancel stops the promotion; after it, it rolls
   * back (the transition table decides; 409 where it does not allow it).
   */
  async cancel(p: Promotion, actor: string): Promise<PromotionDto> {
    const to = nextState(p.state, 'cancel', {
      approvalRequired: false,
      automaticRollback: true,
    });
    const moved = await this.store.transition(p.id, p.state, to, {
      kind: 'transition',
      name: 'cancel',
      status: 'passed',
      actor,
      reason: `cancelled by ${actor}`,
      error: `cancelled by ${actor}`,
    });
    if (!moved) {
      throw new ConflictError(
        `Promotion ${p.id} moved on while it was being cancelled; try again`,
      );
    }
    this.options.onWork();
    return promotionDto(this.store, (await this.store.getPromotion(p.id))!);
  }
}
