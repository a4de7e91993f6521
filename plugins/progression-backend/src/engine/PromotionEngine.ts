import { LoggerService } from '@backstage/backend-plugin-api';
import { NotFoundError } from '@backstage/errors';
import stableStringify from 'fast-json-stable-stringify';
import { GateResult } from '@progression-io/backstage-plugin-progression-common';
import {
  DeployRequest,
  DeployTarget,
  Deployer,
  EntityTarget,
  GateDefinition,
} from '@progression-io/backstage-plugin-progression-node';
import {
  PipelineConfig,
  ProgressionConfig,
  StageConfig,
} from '../config/types';
import { Promotion, PromotionStore } from '../database/PromotionStore';
import { stageLocation } from '../gates/gateContext';
import { KubernetesDeployer } from '../kubernetes/KubernetesDeployer';
import { KubernetesWorkloads } from '../kubernetes/KubernetesWorkloads';
import { describeKubeError } from '../kubernetes/StageResources';
import { formatDuration, refusalToEnter } from './admission';
import {
  DeployTargetEvidence,
  preflightResults,
  recordedTarget,
  verdict,
} from './evidenceHash';
import {
  PromotionMoved,
  StepInterrupted,
  StepTimeoutError,
  cannotHeal,
} from './failures';
import { GateRunner } from './GateRunner';
import { StageWindowState, StageWindows } from '../windows/StageWindows';
import { Outcome, RunMemory, StepRun } from './StepRun';
import { WindowFacts, windowFacts } from '../windows/windowSteps';
import {
  PromotionEvent,
  PromotionState,
  TransitionContext,
  isTerminal,
  nextState,
} from './transitions';

export type { EntityTarget };

export type ResolveEntity = (entityRef: string) => Promise<EntityTarget>;

/** States the engine works on; awaiting-approval waits for people. */
export const WORKABLE_STATES: PromotionState[] = [
  'pending',
  'waiting',
  'preflight',
  'deploying',
  'verifying',
  'rolling-back',
];

/** How often a stage closed by a freeze alert is looked at again. */
const ALERT_RECHECK_MS = 5000;
/** The longest a waiting promotion goes without being looked at. */
const MAX_WAIT_RECHECK_MS = 3600_000;

/** What a `window` step keeps of the stage's state. */
const windowEvidence = (state: StageWindowState) => ({
  open: state.open,
  source: state.source,
  reason: state.reason,
  ...(state.nextOpening && { nextOpening: state.nextOpening.toISOString() }),
  checkedAt: new Date().toISOString(),
});

/** The first result that stops a promotion: anything but passed or skipped. */
const firstBlocking = (results: GateResult[]) =>
  results.find(r => r.status !== 'passed' && r.status !== 'skipped');

/**
 * Runs promotions through their states: each call of `step` does the work
 * of the current state (the gates of a phase, the deploy, the wait for the
 * rollout, a rollback) and moves the promotion on with a compare-and-set.
 * Every step is safe to repeat after a crash: a deploy whose change already
 * reached the stage is not made again. Gates and deployers are plug-ins:
 * the engine knows them only by their definitions.
 */
export class PromotionEngine {
  private readonly deployers: Map<string, Deployer<any>>;
  private readonly gates: GateRunner;

  constructor(
    private readonly options: {
      store: PromotionStore;
      /** The cluster access gates get. */
      workloads: KubernetesWorkloads;
      config: ProgressionConfig;
      /** The gates, in the order they run within a phase. */
      gates: readonly GateDefinition<any>[];
      /** How releases reach stages; the built-in `kubernetes` one by default. */
      deployers?: readonly Deployer<any>[];
      resolveEntity: ResolveEntity;
      logger: LoggerService;
      /** Who the engine acts as in the steps it records. */
      actor?: string;
      /** How often a running step checks that its promotion was not moved (a cancel). */
      watchIntervalMs?: number;
      /** The stages' promotion windows and freezes; without it every stage is open. */
      windows?: StageWindows;
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
  ) {
    this.gates = new GateRunner({
      store: options.store,
      config: options.config,
      workloads: options.workloads,
      gates: options.gates,
      logger: options.logger,
      actor: this.actor,
    });
    this.deployers = new Map(
      (options.deployers ?? [new KubernetesDeployer(options.workloads)]).map(
        d => [d.kind, d],
      ),
    );
  }

  private get actor() {
    return this.options.actor ?? 'progression:engine';
  }

  private get store() {
    return this.options.store;
  }

  private pipelineOf(p: Promotion): {
    pipeline: PipelineConfig;
    stage: StageConfig;
    index: number;
  } {
    const pipeline = this.options.config.pipelines.get(p.pipeline);
    const index = pipeline?.stages.findIndex(s => s.name === p.stage) ?? -1;
    if (!pipeline || index === -1) {
      throw new NotFoundError(
        `promotion ${p.id} names stage ${p.pipeline}/${p.stage}, which is no longer configured`,
      );
    }
    return { pipeline, stage: pipeline.stages[index], index };
  }

  private deployerOf(stage: StageConfig): Deployer<any> {
    const deployer = this.deployers.get(stage.deploy.kind);
    if (!deployer) {
      throw new NotFoundError(
        `stage ${stage.name} deploys with '${stage.deploy.kind}', which is not installed`,
      );
    }
    return deployer;
  }

  private target(run: StepRun): DeployTarget {
    return {
      entity: run.entity,
      stage: run.stage,
      location: stageLocation(this.options.config, run.stage),
      workloads: this.options.workloads,
    };
  }

  /**
   * Runs the promotion until it ends, waits for people, or waits to try a
   * failed step again. Returns its state then. A step interrupted by
   * someone else's change (a cancel) goes on with the new state; one
   * interrupted by `signal` (shutdown, a lost claim) throws StepInterrupted
   * with nothing recorded. `ownerId` fences every write by the claim.
   */
  async run(
    promotionId: string,
    signal?: AbortSignal,
    ownerId?: string,
  ): Promise<PromotionState | undefined> {
    const memory = new RunMemory(this.store, promotionId);
    for (let i = 0; i < 20; i++) {
      const before = await this.store.getPromotion(promotionId);
      if (
        !before ||
        isTerminal(before.state) ||
        !WORKABLE_STATES.includes(before.state) ||
        (ownerId && before.ownerId !== ownerId)
      ) {
        return before?.state;
      }
      let moved: boolean;
      try {
        moved = await this.step(before, signal, memory, ownerId);
      } catch (e) {
        if (e instanceof StepInterrupted && !signal?.aborted) continue;
        throw e;
      }
      if (!moved) return (await this.store.getPromotion(promotionId))?.state;
    }
    return (await this.store.getPromotion(promotionId))?.state;
  }

  /**
   * Does the work of the promotion's current state and moves it on. An
   * error that cannot heal fails the step at once; another is tried again
   * later (false: not moved) until the retry budget is spent, then fails
   * it. While the step runs its state is watched: when someone else moves
   * the promotion, the step is stopped (StepInterrupted).
   */
  async step(
    p: Promotion,
    signal?: AbortSignal,
    memory = new RunMemory(this.store, p.id),
    ownerId?: string,
  ): Promise<boolean> {
    await memory.load();
    const stop = new AbortController();
    const stepSignal = signal
      ? AbortSignal.any([signal, stop.signal])
      : stop.signal;
    const watch = setInterval(() => {
      this.store.getPromotion(p.id).then(
        now => {
          if (ownerId && now && now.ownerId !== ownerId) {
            // The claim is lost: the next holder adopts what runs.
            stop.abort(
              new StepInterrupted(
                `promotion ${p.id} is held by another worker`,
              ),
            );
          } else if (!now || now.state !== p.state) {
            // Cancelled (or otherwise moved): what the step started stops.
            stop.abort(
              new PromotionMoved(
                `promotion ${p.id} moved on (${now?.state ?? 'deleted'})`,
              ),
            );
          }
        },
        () => undefined,
      );
    }, this.options.watchIntervalMs ?? 1000);
    const timeout = setTimeout(
      () =>
        stop.abort(
          new StepTimeoutError(
            `the ${p.state} step ran longer than ${formatDuration(
              this.options.config.worker.stepTimeoutMs,
            )}`,
          ),
        ),
      this.options.config.worker.stepTimeoutMs,
    );
    let run: StepRun | undefined;
    let outcome: Outcome | undefined;
    try {
      const aborted = new Promise<never>((_, reject) => {
        const fail = () => reject(stepSignal.reason);
        if (stepSignal.aborted) fail();
        stepSignal.addEventListener('abort', fail, { once: true });
      });
      aborted.catch(() => undefined);
      // A call that ignores the signal cannot hold the step: it is raced.
      run = await Promise.race([
        this.prepare(p, stepSignal, memory, ownerId),
        aborted,
      ]);
      outcome = await Promise.race([this.work(run), aborted]);
      if (stepSignal.aborted) throw stepSignal.reason;
    } catch (e) {
      const reason = stepSignal.reason;
      if (stepSignal.aborted && !(reason instanceof StepTimeoutError)) {
        throw reason instanceof StepInterrupted
          ? reason
          : new StepInterrupted(`promotion ${p.id} was interrupted`);
      }
      if (e instanceof StepInterrupted) throw e;
      outcome = await this.afterError(p, memory, ownerId, e);
      if (!outcome) return false;
    } finally {
      clearInterval(watch);
      clearTimeout(timeout);
    }
    return this.move(p, run, memory, ownerId, outcome);
  }

  /** Everything the step works with: the stage, release and entity, read once. */
  private async prepare(
    p: Promotion,
    signal: AbortSignal,
    memory: RunMemory,
    ownerId?: string,
  ): Promise<StepRun> {
    const { pipeline, stage, index } = this.pipelineOf(p);
    const release = await this.store.getRelease(p.releaseId);
    if (!release) {
      throw new NotFoundError(
        `release ${p.releaseId} of promotion ${p.id} is missing`,
      );
    }
    return {
      p,
      pipeline,
      stage,
      index,
      release,
      // The catalog is asked once per step.
      entity: await this.options.resolveEntity(p.entityRef),
      signal,
      memory,
      ownerId,
    };
  }

  /**
   * After a step's error: undefined when it will be tried again (recorded,
   * with when), or the outcome that ends the step: at once for an error
   * that cannot heal, else when the retry budget is spent.
   */
  private async afterError(
    p: Promotion,
    memory: RunMemory,
    ownerId: string | undefined,
    e: unknown,
  ): Promise<Outcome | undefined> {
    const { retry } = this.options.config.worker;
    const reason = describeKubeError(e);
    const now = Date.now();
    const attempts = memory.failures.count + 1;
    const since = memory.failures.since || now;
    const spent = now - since >= retry.budgetMs;
    if (cannotHeal(e) || spent) {
      const why = spent
        ? `${reason} (still failing after ${attempts} attempts in ${formatDuration(
            now - since,
          )})`
        : reason;
      this.options.logger.warn(`promotion ${p.id}: ${why}; it ends here`);
      return this.failure(p, memory, why);
    }
    const delay = Math.min(
      retry.maxDelayMs,
      retry.initialDelayMs * 2 ** (attempts - 1),
    );
    const retryAt = new Date(now + delay);
    const deferred = await this.store.deferPromotion(p.id, ownerId, retryAt, {
      kind: 'error',
      name: p.state,
      status: 'error',
      actor: this.actor,
      reason,
      evidence: {
        attempt: attempts,
        since: new Date(since).toISOString(),
        retryAt: retryAt.toISOString(),
      },
    });
    if (!deferred) throw new StepInterrupted(`promotion ${p.id} was lost`);
    memory.failures = { count: attempts, since };
    this.options.logger.warn(
      `promotion ${p.id} ${
        p.state
      }: ${reason}; attempt ${attempts}, trying again in ${formatDuration(
        delay,
      )}`,
    );
    return undefined;
  }

  /** The outcome of a step that cannot go on: fail before the deploy, roll back after it. */
  private failure(p: Promotion, memory: RunMemory, reason: string): Outcome {
    const events: Partial<Record<PromotionState, PromotionEvent>> = {
      pending: 'preflight-failed',
      waiting: 'preflight-failed',
      preflight: 'preflight-failed',
      deploying: memory.deployRecord ? 'deploy-failed' : 'predeploy-failed',
      verifying: 'verify-failed',
      'rolling-back': 'rollback-failed',
    };
    return {
      event: events[p.state] ?? 'preflight-failed',
      kind: 'error',
      name: p.state,
      status: 'failed',
      reason,
      error: reason,
    };
  }

  /** Records the outcome and moves the promotion on (fenced by the claim). */
  private async move(
    p: Promotion,
    run: StepRun | undefined,
    memory: RunMemory,
    ownerId: string | undefined,
    outcome: Outcome,
  ): Promise<boolean> {
    // An on-demand rollback is the way out of trouble: no approval, and
    // nothing to roll back to if it fails. A stage that is no longer
    // configured has nothing to roll back with either.
    const rollback = p.kind === 'rollback';
    const step = {
      kind: outcome.kind,
      name: outcome.name,
      status: outcome.status,
      reason: outcome.reason,
      evidence: outcome.evidence,
      actor: this.actor,
      error: outcome.error,
    };
    if (outcome.stay) {
      // Still closed: looked at again later, recorded only when the
      // reason changed.
      await this.store.deferPromotion(
        p.id,
        ownerId,
        outcome.retryAt ?? new Date(Date.now() + MAX_WAIT_RECHECK_MS),
        outcome.stay.record ? step : undefined,
        p.state,
      );
      memory.failures = { count: 0, since: 0 };
      return false;
    }
    const context: TransitionContext = {
      approvalRequired: !rollback && Boolean(run?.stage.approval.required),
      automaticRollback:
        !rollback && Boolean(run?.stage.rollback.automatic ?? false),
      ...outcome.context,
    };
    const to = nextState(p.state, outcome.event, context);
    const enqueue = to === 'succeeded' && run ? this.onward(run) : undefined;
    const moved = await this.store.transition(p.id, p.state, to, step, {
      ownerId,
      enqueue,
      retryAt: outcome.retryAt,
    });
    if (moved) {
      memory.failures = { count: 0, since: 0 };
      this.options.onTransition?.({
        promotionId: p.id,
        entityRef: p.entityRef,
        stage: p.stage,
        from: p.state,
        to,
        reason: outcome.reason,
      });
      this.options.logger.info(
        `promotion ${p.id} of ${p.entityRef} ${
          run?.release.version ?? p.releaseId
        } to ${p.stage}: ${p.state} → ${to}${
          outcome.reason ? ` (${outcome.reason})` : ''
        }`,
      );
    }
    return moved;
  }

  private async work(run: StepRun): Promise<Outcome> {
    switch (run.p.state) {
      case 'pending':
        return (
          (await this.windowCheck(run)).closed ?? {
            event: 'start',
            kind: 'transition',
            name: 'start',
            status: 'passed',
          }
        );
      case 'waiting':
        return this.waitForWindow(run);
      case 'preflight':
        return this.preflight(run);
      case 'deploying':
        return this.deploy(run);
      case 'verifying':
        return this.verify(run);
      case 'rolling-back':
        return this.rollBack(run);
      default:
        throw new Error(
          `promotion ${run.p.id} is ${run.p.state}: nothing for the engine to do`,
        );
    }
  }

  /**
   * Whether the stage lets the promotion in now: open, or a window
   * override recorded on the promotion, or an on-demand rollback where
   * rollbacks may enter a closed stage. `closed` is the outcome that makes
   * it wait, with when to look again: at the next opening, or soon while
   * an alert (or Prometheus's silence) keeps it closed.
   */
  private async windowCheck(
    run: StepRun,
    facts?: WindowFacts,
  ): Promise<{ closed?: Outcome; state?: StageWindowState }> {
    const { p } = run;
    const windows = this.options.windows;
    const policy = windows?.policyOf(p.pipeline, p.stage);
    if (!windows || !policy) return {};
    if (p.kind === 'rollback' && policy.rollbacksWhenClosed === 'allow') {
      return {};
    }
    const state = await windows.state(p.pipeline, p.stage, { fresh: true });
    if (!state || state.open) return { state };
    // Read now, not from the run's memory: an override is recorded by
    // whoever made it, not by this run.
    const { overridden } =
      facts ?? windowFacts(await this.store.listSteps(p.id));
    if (overridden) return { state };
    const now = Date.now();
    let retryAt = now + MAX_WAIT_RECHECK_MS;
    if (state.alerts) retryAt = now + ALERT_RECHECK_MS;
    else if (state.nextOpening) {
      retryAt = Math.min(retryAt, state.nextOpening.getTime());
    }
    return {
      state,
      closed: {
        event: 'window-closed',
        kind: 'window',
        name: 'closed',
        status: 'waiting',
        reason: `${p.stage} is closed: ${state.reason}`,
        evidence: windowEvidence(state),
        retryAt: new Date(retryAt),
      },
    };
  }

  /**
   * A waiting promotion: goes on where it stopped once its stage opens,
   * else stays, to be looked at again.
   */
  private async waitForWindow(run: StepRun): Promise<Outcome> {
    const facts = windowFacts(await this.store.listSteps(run.p.id));
    const { closed, state } = await this.windowCheck(run, facts);
    if (closed) {
      return {
        ...closed,
        stay: { record: facts.lastWindowReason !== closed.reason },
      };
    }
    return {
      event: 'window-opened',
      kind: 'window',
      name: 'opened',
      status: 'passed',
      reason: `${run.p.stage} is open${state ? `: ${state.reason}` : ''}`,
      ...(state && { evidence: windowEvidence(state) }),
      context: { waitedBeforeDeploy: facts.waitedBeforeDeploy },
    };
  }

  /** No skipping (the pipeline's order rule), then the preflight gates. */
  private async preflight(run: StepRun): Promise<Outcome> {
    const { p, pipeline, index, release } = run;
    if (p.kind === 'rollback') {
      return {
        event: 'preflight-passed',
        kind: 'gate',
        name: 'progression',
        status: 'passed',
        reason: `a rollback to ${release.version} skips the pipeline's order`,
      };
    }
    const refusal = await refusalToEnter(this.store, {
      pipeline,
      stageIndex: index,
      entityRef: p.entityRef,
      release,
    });
    if (refusal) {
      return {
        event: 'preflight-failed',
        kind: 'gate',
        name: 'progression',
        status: 'failed',
        reason: refusal,
        error: refusal,
      };
    }
    const failed = firstBlocking(await this.gates.runGates(run, 'preflight'));
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
      // What an approver approves includes where it goes.
      evidence: { target: this.targetEvidence(run) },
    };
  }

  private async deploy(run: StepRun): Promise<Outcome> {
    const { p, stage, release, memory, signal } = run;
    const deployer = this.deployerOf(stage);
    const target = this.target(run);
    const request: DeployRequest = {
      promotionId: p.id,
      kind: p.kind,
      release: {
        id: release.id,
        version: release.version,
        image: release.image,
      },
      changeCause: `Progression: ${release.version} to ${p.stage} (promotion ${p.id})`,
      requestedBy: p.requestedBy,
      previous: memory.deployRecord,
    };
    if (!memory.deployRecord) {
      // After the approval, before anything is deployed: the stage may
      // have closed meanwhile.
      const { closed } = await this.windowCheck(run);
      if (closed) return closed;
    }
    if (
      stage.approval.required &&
      p.kind !== 'rollback' &&
      !memory.deployRecord
    ) {
      const changed = await this.recheck(run);
      if (changed) {
        return {
          event: 'evidence-changed',
          kind: 'transition',
          name: 'recheck',
          status: 'failed',
          reason: `${changed}; the approvals no longer count, approve again`,
          evidence: { target: this.targetEvidence(run) },
        };
      }
    }
    const planned = await deployer.plan(target, request);
    if (!planned.applied && !memory.deployRecord && p.kind !== 'rollback') {
      // Gates before the deploy (a migration Job): after the approval.
      const failed = firstBlocking(await this.gates.runGates(run, 'predeploy'));
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
    if (!planned.applied) {
      // Recorded before the change, so that a crash in between still
      // knows what to roll back to; and only while this worker still holds
      // the deploying promotion, so a cancel before it means no change.
      if (signal?.aborted) throw signal.reason;
      await this.gates.record(run, {
        kind: 'deploy',
        name: 'patch',
        status: 'started',
        actor: this.actor,
        reason: `${planned.record.fromImage} → ${planned.record.toImage}`,
        evidence: planned.record,
      });
      memory.deployRecord = planned.record;
      await deployer.apply(target, planned.record, request);
    }
    const started = Date.now();
    const rollout = await deployer.awaitRollout(
      target,
      memory.deployRecord ?? planned.record,
      { timeoutMs: stage.rolloutTimeoutMs, signal },
    );
    const evidence = {
      ...memory.deployRecord,
      rollout: rollout.message,
      // The pod whose state made the rollout fail, and why.
      ...(rollout.pod && { pod: rollout.pod }),
      // What the deployer saw of the system it deployed through.
      ...(rollout.evidence && { observed: rollout.evidence }),
      waitedMs: Date.now() - started,
    };
    if (rollout.done) {
      return {
        event: 'deployed',
        kind: 'deploy',
        name: 'rollout',
        status: 'passed',
        reason: rollout.message,
        evidence,
      };
    }
    return {
      event: 'deploy-failed',
      kind: 'deploy',
      name: 'rollout',
      status: 'failed',
      reason: rollout.message,
      evidence,
      error: rollout.message,
    };
  }

  /** Where this promotion deploys: what an approval is bound to. */
  private targetEvidence({ stage, entity }: StepRun): DeployTargetEvidence {
    return {
      cluster: stage.cluster,
      namespace: stage.namespace,
      kubernetesId: entity.kubernetesId,
      ...(entity.container && { container: entity.container }),
    };
  }

  /**
   * Just before an approved deploy: the target is still the approved one,
   * and the cheap read-only gates (isolation, parity) still say what the
   * approvers saw. Undefined when nothing changed, else what did.
   */
  private async recheck(run: StepRun): Promise<string | undefined> {
    const steps = await this.store.listSteps(run.p.id);
    const approved = preflightResults(steps);
    const target = this.targetEvidence(run);
    const recorded = recordedTarget(steps);
    if (recorded && stableStringify(recorded) !== stableStringify(target)) {
      return `the target moved since the approval (${recorded.namespace}/${recorded.kubernetesId} → ${target.namespace}/${target.kubernetesId})`;
    }
    const results = await this.gates.runGates(run, 'preflight', g =>
      Boolean(g.preview),
    );
    const changed = results.filter(r => {
      const before = approved.get(r.gate);
      return !before || verdict(before) !== verdict(r);
    });
    return changed.length
      ? `${changed
          .map(r => `${r.gate} now says: ${r.reason}`)
          .join('; ')} (it said otherwise when approved)`
      : undefined;
  }

  private async verify(run: StepRun): Promise<Outcome> {
    const results = await this.gates.runGates(run, 'verification');
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
   * Back to what ran before this promotion (the deployer's undo), the wait
   * for the rollout, then the stage's rollback gates (its smoke checks).
   */
  private async rollBack(run: StepRun): Promise<Outcome> {
    const { stage, release, memory, signal } = run;
    const started = Date.now();
    const record = memory.deployRecord;
    if (!record) {
      // Cancelled before the change was made: nothing to undo.
      return {
        event: 'rollback-succeeded',
        kind: 'rollback',
        name: 'rollback',
        status: 'skipped',
        reason: 'nothing was deployed',
      };
    }
    const deployer = this.deployerOf(stage);
    const target = this.target(run);
    const undo = await deployer.rollBack(target, record);
    const rollout = await deployer.awaitRollout(target, record, {
      timeoutMs: stage.rolloutTimeoutMs,
      signal,
    });
    // `kubectl rollout undo` + `kubectl rollout status`'s share of it.
    const undoAndRolloutMs = Date.now() - started;
    const checks = rollout.done
      ? await this.gates.runGates(run, 'rollback')
      : [];
    const healthy =
      rollout.done &&
      checks.every(c => c.status === 'passed' || c.status === 'skipped');
    const result = {
      from: release.image,
      to: record.fromImage,
      undo,
      rollout: rollout.message,
      ...(rollout.evidence && { observed: rollout.evidence }),
      checks,
      undoAndRolloutMs,
      durationMs: Date.now() - started,
    };
    const reason = healthy
      ? `back on ${record.fromImage} in ${(
          (Date.now() - started) /
          1000
        ).toFixed(1)} s`
      : `rollback to ${record.fromImage} did not end healthy: ${
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
    for (const p of await this.store.listInState('awaiting-approval')) {
      const stage = this.options.config.pipelines
        .get(p.pipeline)
        ?.stages.find(s => s.name === p.stage);
      const limit = stage?.approval.expiresAfterMs;
      if (limit === undefined) continue;
      const steps = await this.store.listSteps(p.id);
      // Since it last began to wait (evidence that changed starts it again).
      const since =
        [...steps].reverse().find(s => s.toState === 'awaiting-approval')
          ?.finishedAt ?? p.updatedAt;
      if (now - Date.parse(since) < limit) continue;
      const reason = `no approval within ${formatDuration(limit)}`;
      const moved = await this.store.transition(
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

  /**
   * After a success, a release flows on into a next stage that asks for
   * it: queued in the same transaction as the success, so a crash cannot
   * lose it, and started when that stage is free.
   */
  private onward({ p, pipeline, index, release }: StepRun) {
    const next = pipeline.stages[index + 1];
    if (p.kind === 'rollback' || !next?.autoPromote) return undefined;
    return {
      entityRef: p.entityRef,
      pipeline: p.pipeline,
      stage: next.name,
      releaseId: release.id,
      requestedBy: p.requestedBy,
      reason: `autoPromote after ${p.stage} passed ${release.version}`,
      idempotencyKey: `auto:${p.id}`,
    };
  }
}
