import { GateResult } from '@progression-io/backstage-plugin-progression-common';
import {
  DeployRecord,
  EntityTarget,
} from '@progression-io/backstage-plugin-progression-node';
import { PipelineConfig, StageConfig } from '../config/types';
import { Promotion, PromotionStore, Release } from '../database/PromotionStore';
import { PromotionEvent, TransitionContext } from './transitions';

/** What a step did: the event that moves the promotion, and its record. */
export interface Outcome {
  event: PromotionEvent;
  kind: string;
  name: string;
  status: string;
  reason?: string;
  evidence?: unknown;
  error?: string;
  /** Not before: when the promotion is looked at again (one that waits). */
  retryAt?: Date;
  /** What the transition depends on beyond the stage's policy. */
  context?: Partial<TransitionContext>;
  /**
   * The promotion stays in its state until `retryAt` (a stage still
   * closed); the step is recorded only when `record` is set.
   */
  stay?: { record: boolean };
}

/**
 * What a run of the engine knows of its promotion beyond the row: what it
 * recorded itself (the deploy record, the gate results so far). Read from
 * the store once when a run starts (a restart resumes from there), then
 * kept as the engine adds steps.
 */
export class RunMemory {
  private loaded?: Promise<void>;
  deployRecord?: DeployRecord;
  results: GateResult[] = [];
  /** The failed attempts of the current state's step: how many, since when. */
  failures = { count: 0, since: 0 };

  constructor(
    private readonly store: PromotionStore,
    private readonly promotionId: string,
  ) {}

  load(): Promise<void> {
    this.loaded ??= this.store.listSteps(this.promotionId).then(steps => {
      this.deployRecord = steps.find(
        s => s.kind === 'deploy' && s.name === 'patch',
      )?.evidence as DeployRecord | undefined;
      this.results = steps
        .filter(s => s.kind === 'gate' && s.evidence)
        .map(s => s.evidence as GateResult)
        .filter(r => typeof r.gate === 'string' && typeof r.phase === 'string');
      for (const step of steps) {
        if (step.toState) this.failures = { count: 0, since: 0 };
        else if (step.kind === 'error') {
          // The evidence has the time to the millisecond; a step's own
          // start time may have whole seconds only (SQLite).
          const since = (step.evidence as { since?: string } | undefined)
            ?.since;
          this.failures = {
            count: this.failures.count + 1,
            since: this.failures.since || Date.parse(since ?? step.startedAt),
          };
        }
      }
    });
    return this.loaded;
  }
}

/** Everything one step works with, resolved once. */
export interface StepRun {
  p: Promotion;
  pipeline: PipelineConfig;
  stage: StageConfig;
  index: number;
  release: Release;
  entity: EntityTarget;
  signal?: AbortSignal;
  memory: RunMemory;
  /** The worker's claim: its writes are fenced by it. */
  ownerId?: string;
}
