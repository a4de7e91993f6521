import { PipelineConfig } from '../config/types';
import { PromotionStore, Release } from '../database/PromotionStore';

/** A duration in the words a refusal uses. */
export function formatDuration(ms: number): string {
  if (ms < 60_000) return `${Math.ceil(ms / 1000)} s`;
  const minutes = Math.ceil(ms / 60_000);
  return minutes >= 60 ? `${Math.ceil(minutes / 60)} h` : `${minutes} min`;
}

/**
 * The pipeline's order rule, the one answer to "may this release enter
 * this stage": the first stage takes any release; any other only one that
 * succeeded in the stage before it and soaked there for that stage's soak
 * time. Undefined when it may; otherwise why not. Both the commands (a 409)
 * and the engine's preflight ask it.
 */
export async function refusalToEnter(
  store: PromotionStore,
  input: {
    pipeline: PipelineConfig;
    stageIndex: number;
    entityRef: string;
    release: Release;
    now?: number;
  },
): Promise<string | undefined> {
  const { pipeline, stageIndex, entityRef, release } = input;
  if (stageIndex === 0) return undefined;
  const previous = pipeline.stages[stageIndex - 1];
  const passed = await store.findSucceeded(
    entityRef,
    previous.name,
    release.id,
  );
  if (!passed) return `${previous.name} has not passed ${release.version} yet`;
  const soakedFor =
    (input.now ?? Date.now()) -
    Date.parse(passed.finishedAt ?? passed.updatedAt);
  if (soakedFor < previous.soakMs) {
    return `${release.version} must soak in ${
      previous.name
    } for ${formatDuration(previous.soakMs - soakedFor)} more`;
  }
  return undefined;
}
