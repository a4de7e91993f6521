import crypto from 'node:crypto';
import stableStringify from 'fast-json-stable-stringify';
import { GateResult } from '@progression-io/backstage-plugin-progression-common';
import {
  Promotion,
  PromotionStep,
  PromotionStore,
} from '../database/PromotionStore';

/** Where a promotion deploys, as the preflight resolved it. */
export interface DeployTargetEvidence {
  cluster: string;
  namespace: string;
  kubernetesId: string;
  container?: string;
}

/** The newest target a promotion's steps recorded. */
export function recordedTarget(
  steps: PromotionStep[],
): DeployTargetEvidence | undefined {
  for (const step of [...steps].reverse()) {
    const target = (step.evidence as { target?: DeployTargetEvidence })?.target;
    if (target) return target;
  }
  return undefined;
}

/** The newest result of each gate that ran before the approval, by gate. */
export function preflightResults(
  steps: PromotionStep[],
): Map<string, GateResult> {
  const latest = new Map<string, GateResult>();
  for (const step of steps) {
    const result = step.evidence as GateResult | undefined;
    if (step.kind === 'gate' && result?.phase === 'preflight') {
      latest.set(step.name, result);
    }
  }
  return latest;
}

/** A gate result without when it ran: what it said. */
export const verdict = (r: GateResult) =>
  stableStringify([r.status, r.reason, r.evidence]);

/**
 * What an approver is shown and approves: the release, the target it
 * deploys to, and what every gate before the approval said (the newest
 * result of each, with its evidence). An approval given for other evidence
 * does not count: a gate that says something else when it runs again just
 * before the deploy, or a workload label edited after the approval, voids
 * it.
 */
export async function evidenceHash(
  store: PromotionStore,
  p: Promotion,
): Promise<string> {
  const release = await store.getRelease(p.releaseId);
  const steps = await store.listSteps(p.id);
  const gates = [...preflightResults(steps)].map(([name, r]) => [
    name,
    verdict(r),
  ]);
  return `sha256:${crypto
    .createHash('sha256')
    .update(
      stableStringify({
        release: [release?.id, release?.image],
        target: recordedTarget(steps) ?? null,
        gates,
      }),
    )
    .digest('hex')}`;
}
