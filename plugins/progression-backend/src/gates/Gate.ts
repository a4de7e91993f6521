import { GateResult } from '@internal/backstage-plugin-progression-common';
import { StageConfig } from '../config/readProgressionConfig';
import {
  KubernetesWorkloads,
  StageLocation,
} from '../kubernetes/KubernetesWorkloads';

/** When a gate runs, relative to the deploy. */
export type GatePhase = GateResult['phase'];

/** What a gate gets to measure a stage. */
export interface GateContext {
  stage: StageConfig;
  /** The stage URL with the entity's values filled in. */
  stageUrl?: string;
  /** Stops the measurement, for example when the promotion is cancelled. */
  signal?: AbortSignal;
  /** The entity whose release moves. */
  entity?: {
    entityRef: string;
    name: string;
    namespace: string;
    kubernetesId: string;
    container?: string;
  };
  /** The release being promoted (for a rollback: the one rolled back to). */
  release?: { id: string; version: string; image: string };
  /** The promotion, for names of objects a gate creates. */
  promotionId?: string;
  /** Where the stage's workload runs. */
  location?: StageLocation;
  /** The stage the release comes from (the previous one), when there is one. */
  source?: { stage: StageConfig; location: StageLocation };
  /** The pipeline's other stages and where they run (isolation). */
  otherStages?: { stage: StageConfig; location: StageLocation }[];
  /** The cluster access; gates never talk to clusters any other way. */
  workloads?: KubernetesWorkloads;
  /**
   * What this gate measured for the last release that succeeded in this
   * stage (relative thresholds), by check name.
   */
  baseline?: (gate: string, check: string) => Promise<number | undefined>;
}

/**
 * One kind of check between stages. Gates return a result with evidence;
 * they do not throw for a failed measurement (that is `error`).
 */
export interface Gate {
  readonly name: string;
  /** Whether the stage configures this gate for this phase. */
  appliesTo(stage: StageConfig, phase: GatePhase): boolean;
  run(context: GateContext, phase: GatePhase): Promise<GateResult>;
}

/**
 * Starts a gate's clock: the function it returns builds the gate's result,
 * stamped with when the measurement started and ended.
 */
export function startGateResult(gate: string, phase: GatePhase) {
  const startedAt = new Date().toISOString();
  return (
    status: GateResult['status'],
    reason: string,
    evidence: unknown,
  ): GateResult => ({
    gate,
    phase,
    status,
    reason,
    evidence,
    startedAt,
    finishedAt: new Date().toISOString(),
  });
}
