import {
  PromotionDto,
  ReleaseDto,
} from '@progression-io/backstage-plugin-progression-common';
import { Promotion, PromotionStore, Release } from '../database/PromotionStore';

/** The object without its undefined fields, as the API answers. */
export const strip = <T extends object>(o: T): T =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;

export function releaseDto(r: Release): ReleaseDto {
  return strip({
    id: r.id,
    entityRef: r.entityRef,
    version: r.version,
    image: r.image,
    commit: r.commit,
    committedAt: r.committedAt,
    url: r.buildUrl,
    createdBy: r.createdBy,
    createdAt: r.createdAt,
  });
}

/** A promotion as the API answers, with its release (read when not given). */
export async function promotionDto(
  store: PromotionStore,
  p: Promotion,
  release?: Release,
): Promise<PromotionDto> {
  const r = release ?? (await store.getRelease(p.releaseId));
  return strip({
    id: p.id,
    kind: p.kind,
    entityRef: p.entityRef,
    pipeline: p.pipeline,
    stage: p.stage,
    state: p.state,
    release: releaseDto(r!),
    requestedBy: p.requestedBy,
    reason: p.reason,
    error: p.error,
    createdAt: p.createdAt,
    updatedAt: p.updatedAt,
    finishedAt: p.finishedAt,
  });
}
