import { LoggerService } from '@backstage/backend-plugin-api';
import { GateResult } from '@progression-io/backstage-plugin-progression-common';
import {
  EntityTarget,
  GateContext,
  GateDefinition,
  GatePhase,
  configuredPhases,
} from '@progression-io/backstage-plugin-progression-node';
import { resolveStageUrl } from '../config/stageUrl';
import { ProgressionConfig, StageConfig } from '../config/types';
import { NewStep, Promotion, PromotionStore } from '../database/PromotionStore';
import { gateContext } from '../gates/gateContext';
import { KubernetesWorkloads } from '../kubernetes/KubernetesWorkloads';
import { StepInterrupted } from './failures';
import { StepRun } from './StepRun';

/**
 * Runs the gates a stage configures for a phase, in their order, and
 * records each result with its evidence: only while the worker still holds
 * the promotion in that state. What a gate says after it was stopped is not
 * a measurement and is not recorded.
 */
export class GateRunner {
  constructor(
    private readonly options: {
      store: PromotionStore;
      config: ProgressionConfig;
      /** The cluster access gates get. */
      workloads: KubernetesWorkloads;
      /** The gates, in the order they run within a phase. */
      gates: readonly GateDefinition<any>[];
      logger: LoggerService;
      /** Who the engine acts as in the steps it records. */
      actor: string;
    },
  ) {}

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

  /** What the gates get to measure the promotion's stage. */
  private gateContext(run: StepRun): GateContext {
    const { p, pipeline, stage, release, entity, signal, memory } = run;
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
      results: memory.results,
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

  /**
   * Records a step of the running state, only while this worker holds the
   * promotion in that state: one that lost it writes nothing and stops.
   */
  async record(run: StepRun, step: NewStep) {
    const held = await this.options.store.addStep(run.p.id, step, {
      state: run.p.state,
      ownerId: run.ownerId,
    });
    if (!held) {
      throw new StepInterrupted(`promotion ${run.p.id} moved on`);
    }
  }

  /**
   * Runs the gates the stage configures for `phase`, in order, recording
   * each result. A gate whose effect outlasts a retry (`once`) and that
   * already passed in this phase is not run again.
   */
  async runGates(
    run: StepRun,
    phase: GatePhase,
    only: (gate: GateDefinition<any>) => boolean = () => true,
  ): Promise<GateResult[]> {
    const { pipeline, stage, index, memory } = run;
    const source = pipeline.stages[index - 1];
    const gates = this.options.gates.filter(
      g => only(g) && configuredPhases(g, stage, source).includes(phase),
    );
    if (!gates.length) return [];
    const context = this.gateContext(run);
    const results: GateResult[] = [];
    for (const gate of gates) {
      const done = memory.results.some(
        r =>
          r.gate === gate.name &&
          r.phase === phase &&
          (r.status === 'passed' || r.status === 'skipped'),
      );
      if (gate.once && done) continue;
      const result = await gate.run(context, phase);
      // What a gate says once it was stopped is not a measurement.
      if (run.signal?.aborted) throw run.signal.reason;
      results.push(result);
      if (phase !== 'rollback') {
        await this.record(run, {
          kind: 'gate',
          name: gate.name,
          status: result.status,
          actor: this.options.actor,
          reason: result.reason,
          evidence: result,
        });
        memory.results.push(result);
      }
    }
    return results;
  }
}
