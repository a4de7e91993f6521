import { GateResult } from '@internal/backstage-plugin-progression-common';
import { StageConfig } from '../config/readProgressionConfig';

/** What a gate gets to measure a stage. */
export interface GateContext {
  stage: StageConfig;
  /** The stage URL with the entity's values filled in. */
  stageUrl?: string;
  /** Stops the measurement, for example when the promotion is cancelled. */
  signal?: AbortSignal;
}

/**
 * One kind of check between stages. Gates return a result with evidence;
 * they do not throw for a failed measurement (that is `error`).
 */
export interface Gate {
  readonly name: string;
  /** Whether the stage configures this gate at all. */
  appliesTo(stage: StageConfig): boolean;
  run(context: GateContext, phase: GateResult['phase']): Promise<GateResult>;
}
