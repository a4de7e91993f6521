import crypto from 'node:crypto';
import { Promotion, PromotionStore } from '../database/PromotionStore';

/**
 * What an approver is shown and approves: the release and every gate
 * result before the approval. An approval given for other evidence does
 * not count.
 */
export async function evidenceHash(
  store: PromotionStore,
  p: Promotion,
): Promise<string> {
  const release = await store.getRelease(p.releaseId);
  const steps = await store.listSteps(p.id);
  // What was shown before the approval; later gates do not void it.
  const approvedAt = steps.findIndex(
    s => s.kind === 'approval' && s.name === 'approved',
  );
  const gates = (approvedAt === -1 ? steps : steps.slice(0, approvedAt))
    .filter(s => s.kind === 'gate')
    .map(s => [s.name, s.status, s.reason ?? '']);
  return `sha256:${crypto
    .createHash('sha256')
    .update(JSON.stringify({ release: [release?.id, release?.image], gates }))
    .digest('hex')}`;
}
