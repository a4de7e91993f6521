import { PipelineConfig } from '../config/types';
import { PromotionStore, Release } from '../database/PromotionStore';
import { isTerminal } from './transitions';

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
  // The outcome counts, not only history: the release's newest promotion
  // into the previous stage must have succeeded, and it must still be what
  // that stage runs (not rolled back out of it since).
  const latest = await store.findLatest(entityRef, previous.name, release.id);
  if (!latest) return `${previous.name} has not passed ${release.version} yet`;
  if (latest.state !== 'succeeded') {
    // Ended rolled back or failed there: it has not passed, whatever an
    // earlier promotion of it did.
    return isTerminal(latest.state)
      ? `${previous.name} has not passed ${release.version} yet`
      : `${previous.name} has not passed ${release.version} yet: it is still being promoted there (promotion ${latest.id}, ${latest.state})`;
  }
  const passed = latest;
  const [rolledBack] = await store.findRollbacksAfter(passed);
  if (rolledBack && rolledBack.releaseId !== release.id) {
    return `${previous.name} was rolled back from ${release.version} (promotion ${rolledBack.id}); promote it there again first`;
  }
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
