import { Entity, stringifyEntityRef } from '@backstage/catalog-model';
import {
  ConflictError,
  InputError,
  NotAllowedError,
  NotFoundError,
} from '@backstage/errors';
import crypto from 'node:crypto';
import { LRUCache } from 'lru-cache';
import {
  EntityEnvironments,
  EntityValidation,
  PromotionDto,
  ReleaseDto,
  EntityFlags,
  EntityMetrics,
  GateResult,
  StageGateSummary,
  getContainerName,
  getPipelineName,
  KUBERNETES_ID_ANNOTATION,
  PROGRESSION_PIPELINE_ANNOTATION,
  StageMetrics,
  getKubernetesId,
  PromotionSummary,
  Stage,
} from '@internal/backstage-plugin-progression-common';
import { KubernetesWorkloads } from '../kubernetes/KubernetesWorkloads';
import {
  describeEnvironments,
  pipelineOf,
  stageUrlOf,
} from './describeEnvironments';
import { Gate } from '../gates/Gate';
import { gateContext } from '../gates/gateContext';
import {
  PipelineConfig,
  ProgressionConfig,
  StageConfig,
} from '../config/readProgressionConfig';
import { PrometheusClient } from '../prometheus/PrometheusClient';
import { renderQuery } from '../prometheus/promql';
import { flagMatrix, readStageFlags } from '../flags/readFlags';
import { StageResources } from '../kubernetes/StageResources';

/** The charts' time ranges, in seconds. */
const CHART_RANGES: Record<string, number> = {
  '15m': 900,
  '1h': 3600,
  '6h': 21_600,
  '24h': 86_400,
};
import {
  Approval,
  DatabasePromotionStore,
  Promotion,
  PromotionStep,
  Release,
} from '../database/DatabasePromotionStore';
import { PromotionState, isTerminal } from '../engine/transitions';

export type { PromotionDto, ReleaseDto };

function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}

function withTimeout<T>(
  p: Promise<T>,
  ms: number,
  message: string,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(message)), ms);
    p.then(
      v => {
        clearTimeout(t);
        resolve(v);
      },
      e => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}

const strip = <T extends object>(o: T): T =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;

interface StageHistory {
  summaries: Map<
    string,
    { last?: Promotion; active?: Promotion; lastSucceeded?: Promotion }
  >;
  releases: Map<string, Release>;
  /** Gate results by promotion id, newest per gate. */
  gates: Map<string, StageGateSummary[]>;
  /** Valid approvals of promotions awaiting approval, by promotion id. */
  approvals: Map<string, string[]>;
  /** The version of a live image, looked up once per image. */
  byImage: Map<string, Promise<string | undefined>>;
}

// A Kubernetes label value (IsValidLabelValue).
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

export function releaseDto(r: Release): ReleaseDto {
  return strip({
    id: r.id,
    entityRef: r.entityRef,
    version: r.version,
    image: r.image,
    commit: r.commit,
    url: r.buildUrl,
    createdBy: r.createdBy,
    createdAt: r.createdAt,
  });
}

/**
 * What the REST API does, one method per route, after the router has
 * authenticated, authorized and started the audit event.
 */
export class ProgressionService {
  constructor(
    private readonly options: {
      store: DatabasePromotionStore;
      config: ProgressionConfig;
      /** Called when a promotion may have work to do. */
      onWork: () => void;
      /** Reads the stages' live state; without it the environments are config only. */
      workloads?: KubernetesWorkloads;
      /** Where the charts' series come from; without it metrics say so. */
      prometheus?: PrometheusClient;
      /** Gates a preview may run: read-only ones before the approval. */
      previewGates?: Gate[];
    },
  ) {}

  /**
   * Whether an entity is ready for Progression with the pipelines this
   * backend runs (its configuration was checked at start-up: clusters and
   * stages are sound): the pipeline annotation names a configured pipeline,
   * and the workload label is a valid label value. A defaulted label is a
   * warning.
   */
  validateEntity(entity: Entity): EntityValidation {
    const problems: string[] = [];
    const warnings: string[] = [];
    const kubernetesId = getKubernetesId(entity);
    if (!entity.metadata.annotations?.[KUBERNETES_ID_ANNOTATION]?.trim()) {
      warnings.push(
        `the entity has no ${KUBERNETES_ID_ANNOTATION} annotation, so its workload is found by the label ${KUBERNETES_ID_ANNOTATION}=${kubernetesId} (the entity name)`,
      );
    }
    if (kubernetesId.length > 63 || !LABEL_VALUE.test(kubernetesId)) {
      problems.push(
        `'${kubernetesId}' is not a valid Kubernetes label value for ${KUBERNETES_ID_ANNOTATION}: use at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit`,
      );
    }
    const configured = [...this.options.config.pipelines.keys()];
    const listed = configured.length
      ? `configured pipelines: ${configured.map(n => `'${n}'`).join(', ')}`
      : 'no pipelines are configured (progression.pipelines)';
    const name = getPipelineName(entity);
    const pipeline = name ? this.options.config.pipelines.get(name) : undefined;
    if (!name) {
      problems.push(
        `the entity has no ${PROGRESSION_PIPELINE_ANNOTATION} annotation; add one naming a pipeline (${listed})`,
      );
    } else if (!pipeline) {
      problems.push(`pipeline '${name}' is not configured; ${listed}`);
    }
    return strip({
      valid: problems.length === 0,
      pipeline: name,
      stages: pipeline?.stages.map(st => st.name) ?? [],
      kubernetesId,
      problems,
      warnings,
    });
  }

  /**
   * What the read-only gates before the approval (isolation, parity) say
   * now about a promotion of the entity into `stageName`, without starting
   * one: for the promote dialog.
   */
  async previewPromotion(
    entity: Entity,
    stageName: string,
  ): Promise<{ stage: string; results: GateResult[] }> {
    const pipeline = this.pipelineOf(entity);
    const stage = pipeline.stages.find(s => s.name === stageName);
    if (!stage) {
      throw new NotFoundError(
        `${stringifyEntityRef(entity)}'s pipeline ${
          pipeline.name
        } has no stage '${stageName}'`,
      );
    }
    const workloads = this.options.workloads;
    const gates = (this.options.previewGates ?? []).filter(g =>
      g.appliesTo(stage, 'preflight'),
    );
    if (!workloads || !gates.length) return { stage: stageName, results: [] };
    const context = gateContext({
      config: this.options.config,
      pipeline,
      stage,
      workloads,
      entity: {
        entityRef: stringifyEntityRef(entity),
        name: entity.metadata.name,
        namespace: entity.metadata.namespace ?? 'default',
        kubernetesId: getKubernetesId(entity),
        container: getContainerName(entity),
      },
      stageUrl: stageUrlOf(entity, stage).url,
    });
    return {
      stage: stageName,
      results: await Promise.all(gates.map(g => g.run(context, 'preflight'))),
    };
  }

  /**
   * Every stage's feature flags, read live from its flagd ConfigMap, with
   * the flags that differ between stages marked. A stage whose flags cannot
   * be read is named in `errors`; the others still come back.
   */
  async flags(entity: Entity): Promise<EntityFlags> {
    const pipeline = this.pipelineOf(entity);
    const workloads = this.options.workloads;
    const stages = await Promise.all(
      pipeline.stages.map(async stage => {
        const cluster = this.options.config.clusters.get(stage.cluster);
        if (!workloads || !cluster) {
          return { stage: stage.name, error: 'the cluster is not available' };
        }
        return readStageFlags(
          new StageResources(workloads),
          stage.name,
          { cluster, namespace: stage.namespace },
          stage.flags,
        );
      }),
    );
    return { entityRef: stringifyEntityRef(entity), ...flagMatrix(stages) };
  }

  /**
   * Request rate, error rate and p95 of the entity's stages (or one stage)
   * over the last `range`, for the charts: 60 points per series. A stage
   * whose series cannot be read says why; the others still come back.
   */
  async metrics(
    entity: Entity,
    options: { stage?: string; range?: string } = {},
  ): Promise<EntityMetrics> {
    const pipeline = this.pipelineOf(entity);
    const entityRef = stringifyEntityRef(entity);
    const range = options.range ?? '1h';
    const rangeSeconds = CHART_RANGES[range];
    if (!rangeSeconds) {
      throw new InputError(
        `range must be one of ${Object.keys(CHART_RANGES).join(', ')}`,
      );
    }
    const stepSeconds = rangeSeconds / 60;
    const stages = options.stage
      ? pipeline.stages.filter(s => s.name === options.stage)
      : pipeline.stages;
    if (options.stage && !stages.length) {
      throw new NotFoundError(
        `${entityRef}'s pipeline ${pipeline.name} has no stage '${options.stage}'`,
      );
    }
    const prometheus = this.options.prometheus;
    if (!prometheus) {
      return {
        entityRef,
        available: false,
        reason:
          'No Prometheus is configured (progression.prometheus.url), so there are no metrics to show.',
        range,
        stepSeconds,
        stages: stages.map(s => ({ stage: s.name })),
      };
    }
    const end = Math.floor(Date.now() / 1000);
    const window = { start: end - rangeSeconds, end, step: stepSeconds };
    const series = async (template: string, stage: StageConfig) => {
      const query = renderQuery(template, {
        namespace: stage.namespace,
        app: getKubernetesId(entity),
        stage: stage.name,
        entity: entity.metadata.name,
        // Charts span releases; their templates cannot use it.
        version: 'unused',
      });
      const { series: result } = await prometheus.queryRange(query, window);
      if (result.length > 1) {
        throw new Error(
          `a chart query returned ${result.length} series; aggregate it to one`,
        );
      }
      return (result[0]?.points ?? []).map(p => ({
        t: p.time,
        v: Number.isFinite(p.value) ? p.value : null,
      }));
    };
    return {
      entityRef,
      available: true,
      range,
      stepSeconds,
      stages: await Promise.all(
        stages.map(async (stage): Promise<StageMetrics> => {
          try {
            const [requestRate, errorRate, p95] = await Promise.all([
              series(pipeline.charts.requestRate, stage),
              series(pipeline.charts.errorRate, stage),
              series(pipeline.charts.p95, stage),
            ]);
            return { stage: stage.name, requestRate, errorRate, p95 };
          } catch (e) {
            return { stage: stage.name, error: (e as Error).message };
          }
        }),
      ),
    };
  }

  /**
   * Each entity's promotion history as the environments read needs it,
   * reused for a second: many readers of one entity (the tab polls while a
   * promotion runs) cost one set of queries. Every write through this
   * backend drops the entity's entry at once; a write through another
   * replica shows within the second.
   */
  private readonly history = new LRUCache<
    string,
    { stages: string; history: Promise<StageHistory> }
  >({ max: 5000, ttl: 1000 });

  /** Forgets what `environments` knows of the entity's promotions. */
  invalidate(entityRef: string) {
    this.history.delete(entityRef);
  }

  private stageHistory(
    entityRef: string,
    stageNames: string[],
  ): Promise<StageHistory> {
    const stages = stageNames.join(',');
    const cached = this.history.get(entityRef);
    // A pipeline change (other stages) is a miss.
    if (cached?.stages === stages) return cached.history;
    const history = (async () => {
      const summaries = await this.store.stageSummaries(entityRef, stageNames);
      const releases = await this.store.getReleases(
        [...summaries.values()].flatMap(({ last, active, lastSucceeded }) =>
          [last, active, lastSucceeded].flatMap(p => (p ? [p.releaseId] : [])),
        ),
      );
      // Each stage's gate results, from its active or else last promotion.
      const shown = [...summaries.values()].flatMap(({ active, last }) =>
        active ?? last ? [(active ?? last)!.id] : [],
      );
      const gates = new Map<string, StageGateSummary[]>();
      for (const step of await this.store.listGateSteps(shown)) {
        const list = gates.get(step.promotionId) ?? [];
        // The newest result of each gate wins.
        const kept = list.filter(g => g.gate !== step.name);
        kept.push(
          strip({
            gate: step.name,
            status: step.status,
            reason: step.reason,
            promotionId: step.promotionId,
            at: step.finishedAt ?? step.startedAt,
          }),
        );
        gates.set(step.promotionId, kept);
      }
      // Who approved what awaits approval, for the current evidence.
      const approvals = new Map<string, string[]>();
      for (const { active } of summaries.values()) {
        if (active?.state !== 'awaiting-approval') continue;
        const hash = await this.evidenceHash(active);
        approvals.set(
          active.id,
          (await this.store.listApprovals(active.id))
            .filter(a => a.decision === 'approved' && a.evidenceHash === hash)
            .map(a => a.approver),
        );
      }
      return { summaries, releases, gates, approvals, byImage: new Map() };
    })();
    const entry = { stages, history };
    this.history.set(entityRef, entry);
    history.catch(() => {
      if (this.history.get(entityRef) === entry) this.history.delete(entityRef);
    });
    return history;
  }

  /**
   * The entity's stages with what runs in each (from the informer cache),
   * the last and the active promotion, and drift. A stage whose cluster
   * cannot be read says why; the others still render.
   */
  async environments(entity: Entity): Promise<EntityEnvironments> {
    const base = describeEnvironments(entity, this.options.config);
    const entityRef = base.entityRef;
    const { summaries, releases, gates, approvals, byImage } =
      await this.stageHistory(
        entityRef,
        base.pipeline.stages.map(s => s.name),
      );
    const versionOf = (image: string) => {
      let found = byImage.get(image);
      if (!found) {
        found = this.store
          .findReleaseByImage(entityRef, image)
          .then(r => r?.version);
        byImage.set(image, found);
      }
      return found;
    };
    const pipelineConfig = this.pipelineOf(entity);
    const summary = (p: Promotion): PromotionSummary => {
      const approvedBy = approvals.get(p.id);
      const needed = pipelineConfig.stages.find(st => st.name === p.stage)
        ?.approval.minApprovals;
      return strip({
        id: p.id,
        state: p.state,
        version: releases.get(p.releaseId)?.version ?? p.releaseId,
        requestedBy: p.requestedBy,
        createdAt: p.createdAt,
        finishedAt: p.finishedAt,
        error: p.error,
        ...(approvedBy && { approvals: { approvedBy, needed: needed ?? 1 } }),
      });
    };
    const stages = await Promise.all(
      base.pipeline.stages.map(async (stage): Promise<Stage> => {
        const {
          last,
          active,
          lastSucceeded: lastSuccess,
        } = summaries.get(stage.name) ?? {};
        const shownGates = gates.get((active ?? last)?.id ?? '');
        const result: Stage = {
          ...stage,
          ...(shownGates?.length && { gates: shownGates }),
          ...(last && { lastPromotion: summary(last) }),
          ...(active && { activePromotion: summary(active) }),
        };
        const workloads = this.options.workloads;
        const cluster = this.options.config.clusters.get(stage.cluster);
        if (!workloads || !cluster) return result;
        try {
          const live = await withTimeout(
            workloads.readCached(
              { cluster, namespace: stage.namespace },
              base.kubernetesId,
            ),
            5000,
            `cluster ${stage.cluster} did not answer within 5 s`,
          );
          if (!live) {
            return {
              ...result,
              error: `no Deployment labelled backstage.io/kubernetes-id=${base.kubernetesId} in ${stage.namespace}`,
            };
          }
          const version =
            (lastSuccess &&
            releases.get(lastSuccess.releaseId)?.image === live.image
              ? releases.get(lastSuccess.releaseId)?.version
              : await versionOf(live.image)) ??
            live.image.split('@')[0].split('/').pop()?.split(':')[1] ??
            live.image;
          const expected = lastSuccess
            ? releases.get(lastSuccess.releaseId)?.image
            : undefined;
          let health: 'healthy' | 'degraded' | 'progressing' = 'progressing';
          if (live.rollout.done) health = 'healthy';
          else if (live.rollout.failed) health = 'degraded';
          return {
            ...result,
            live: {
              deployment: live.deployment,
              image: live.image,
              version,
              revision: live.revision,
              replicas: live.replicas,
              readyReplicas: live.readyReplicas,
              updatedReplicas: live.updatedReplicas,
              availableReplicas: live.availableReplicas,
              health,
              message: live.rollout.message,
            },
            ...(expected &&
              expected !== live.image &&
              !active && {
                drift: { expectedImage: expected, liveImage: live.image },
              }),
          };
        } catch (e) {
          return {
            ...result,
            error: `could not read cluster ${stage.cluster}: ${
              (e as Error).message
            }`,
          };
        }
      }),
    );
    return { ...base, pipeline: { ...base.pipeline, stages } };
  }

  private get store() {
    return this.options.store;
  }

  pipelineOf(entity: Entity): PipelineConfig {
    return pipelineOf(entity, this.options.config);
  }

  private async dto(p: Promotion, release?: Release): Promise<PromotionDto> {
    const r = release ?? (await this.store.getRelease(p.releaseId));
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

  /** The stage's position in the pipeline; 404 naming the stages otherwise. */
  private stageIndex(pipeline: PipelineConfig, name: string): number {
    const index = pipeline.stages.findIndex(s => s.name === name);
    if (index === -1) {
      throw new NotFoundError(
        `Pipeline ${
          pipeline.name
        } has no stage '${name}'; stages: ${pipeline.stages
          .map(s => s.name)
          .join(', ')}`,
      );
    }
    return index;
  }

  /** What a request with the same idempotency key created before, if any. */
  private async repeated(
    entityRef: string,
    idempotencyKey?: string,
  ): Promise<PromotionDto | undefined> {
    if (!idempotencyKey) return undefined;
    const again = await this.store.findByIdempotencyKey(
      entityRef,
      idempotencyKey,
    );
    return again ? this.dto(again) : undefined;
  }

  async listReleases(entity: Entity): Promise<ReleaseDto[]> {
    this.pipelineOf(entity);
    return (await this.store.listReleases(stringifyEntityRef(entity))).map(
      releaseDto,
    );
  }

  /**
   * Registers a release; with autoPromote on the first stage its promotion
   * starts (once: the release id is its idempotency key).
   */
  async registerRelease(
    entity: Entity,
    input: { version: string; image: string; commit?: string; url?: string },
    actor: string,
  ): Promise<{
    release: ReleaseDto;
    created: boolean;
    promotion?: PromotionDto;
  }> {
    const pipeline = this.pipelineOf(entity);
    const entityRef = stringifyEntityRef(entity);
    if (input.url !== undefined && !isHttpUrl(input.url)) {
      throw new InputError(
        `url must be an http or https URL, got '${input.url}'`,
      );
    }
    const { release, created } = await this.store.registerRelease({
      entityRef,
      version: input.version,
      image: input.image,
      commit: input.commit,
      buildUrl: input.url,
      createdBy: actor,
    });
    let promotion: PromotionDto | undefined;
    const first = pipeline.stages[0];
    if (first.autoPromote) {
      const result = await this.store.createPromotion({
        entityRef,
        pipeline: pipeline.name,
        stage: first.name,
        releaseId: release.id,
        requestedBy: actor,
        reason: `autoPromote of release ${release.version}`,
        idempotencyKey: `release:${release.id}`,
      });
      promotion = await this.dto(result.promotion, release);
      this.options.onWork();
    }
    return { release: releaseDto(release), created, promotion };
  }

  /**
   * Requests a promotion. 404 for an unknown stage or version; 409 when
   * the release has not passed (and soaked in) the previous stage, or the
   * stage is busy.
   */
  async requestPromotion(
    entity: Entity,
    input: { stage: string; version?: string; reason?: string },
    actor: string,
    idempotencyKey?: string,
  ): Promise<PromotionDto> {
    const pipeline = this.pipelineOf(entity);
    const entityRef = stringifyEntityRef(entity);
    const index = this.stageIndex(pipeline, input.stage);
    const again = await this.repeated(entityRef, idempotencyKey);
    if (again) return again;
    const release = input.version
      ? await this.store.findRelease(entityRef, input.version)
      : (await this.store.listReleases(entityRef, 1))[0];
    if (!release) {
      throw new NotFoundError(
        input.version
          ? `${entityRef} has no release ${input.version}; register it first`
          : `${entityRef} has no releases yet; register one first`,
      );
    }
    if (index > 0) {
      const previous = pipeline.stages[index - 1];
      const passed = await this.store.findSucceeded(
        entityRef,
        previous.name,
        release.id,
      );
      if (!passed) {
        throw new ConflictError(
          `${previous.name} has not passed ${release.version} yet`,
        );
      }
      const soakedFor =
        Date.now() - Date.parse(passed.finishedAt ?? passed.updatedAt);
      if (soakedFor < previous.soakMs) {
        throw new ConflictError(
          `${release.version} must soak in ${previous.name} for ${Math.ceil(
            (previous.soakMs - soakedFor) / 1000,
          )} s more`,
        );
      }
    }
    const { promotion } = await this.store.createPromotion({
      entityRef,
      pipeline: pipeline.name,
      stage: input.stage,
      releaseId: release.id,
      requestedBy: actor,
      reason: input.reason,
      idempotencyKey,
    });
    this.options.onWork();
    return this.dto(promotion, release);
  }

  /**
   * Requests an on-demand rollback of a stage to an earlier release: the
   * named one, or the one that ran there before what runs now. It skips the
   * pipeline's order and approvals; 409 while the stage is busy (cancel the
   * active promotion instead: that rolls back too).
   */
  async requestRollback(
    entity: Entity,
    input: { stage: string; toVersion?: string; reason?: string },
    actor: string,
    idempotencyKey?: string,
  ): Promise<PromotionDto> {
    const pipeline = this.pipelineOf(entity);
    const entityRef = stringifyEntityRef(entity);
    const stage = pipeline.stages[this.stageIndex(pipeline, input.stage)];
    const again = await this.repeated(entityRef, idempotencyKey);
    if (again) return again;
    let target: Release | undefined;
    if (input.toVersion) {
      target = await this.store.findRelease(entityRef, input.toVersion);
      if (!target)
        throw new NotFoundError(
          `${entityRef} has no release ${input.toVersion}`,
        );
    } else {
      // What runs there now, from the informer cache: one stage, no more.
      const cluster = this.options.config.clusters.get(stage.cluster);
      const liveImage =
        this.options.workloads && cluster
          ? (
              await this.options.workloads.readCached(
                { cluster, namespace: stage.namespace },
                getKubernetesId(entity),
                getContainerName(entity),
              )
            )?.image
          : undefined;
      const succeeded = (
        await this.store.listPromotions(entityRef, {
          stage: stage.name,
          state: 'succeeded',
          limit: 100,
        })
      ).items;
      for (const p of succeeded) {
        const r = await this.store.getRelease(p.releaseId);
        if (r && r.image !== liveImage) {
          target = r;
          break;
        }
      }
      if (!target) {
        throw new NotFoundError(
          `No earlier release of ${entityRef} ran in ${stage.name}; name one with toVersion`,
        );
      }
    }
    const { promotion } = await this.store.createPromotion({
      entityRef,
      pipeline: pipeline.name,
      stage: stage.name,
      releaseId: target.id,
      requestedBy: actor,
      reason: input.reason ?? `roll back ${stage.name} to ${target.version}`,
      idempotencyKey,
      kind: 'rollback',
    });
    this.options.onWork();
    return this.dto(promotion, target);
  }

  async listPromotions(
    entity: Entity,
    options: {
      stage?: string;
      state?: PromotionState;
      limit?: number;
      cursor?: string;
    },
  ): Promise<{ items: PromotionDto[]; nextCursor?: string }> {
    this.pipelineOf(entity);
    const page = await this.store.listPromotions(
      stringifyEntityRef(entity),
      options,
    );
    return strip({
      items: await Promise.all(page.items.map(p => this.dto(p))),
      nextCursor: page.nextCursor,
    });
  }

  async getPromotion(id: string): Promise<Promotion> {
    const p = await this.store.getPromotion(id);
    if (!p) throw new NotFoundError(`No promotion ${id}`);
    return p;
  }

  async promotionDetails(p: Promotion): Promise<{
    promotion: PromotionDto;
    steps: PromotionStep[];
    approvals: Array<Approval & { valid: boolean }>;
    evidenceHash: string;
  }> {
    const evidenceHash = await this.evidenceHash(p);
    return {
      promotion: await this.dto(p),
      steps: (await this.store.listSteps(p.id)).map(s => strip(s)),
      approvals: (await this.store.listApprovals(p.id)).map(a =>
        strip({ ...a, valid: a.evidenceHash === evidenceHash }),
      ),
      evidenceHash,
    };
  }

  /**
   * What an approver is shown and approves: the release and every gate
   * result so far. An approval given for other evidence does not count.
   */
  async evidenceHash(p: Promotion): Promise<string> {
    const release = await this.store.getRelease(p.releaseId);
    const steps = await this.store.listSteps(p.id);
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

  /**
   * An approver's decision. Only members of the stage's approvers may
   * decide, the requester only where the pipeline allows it; a rejection
   * ends the promotion, enough approvals (for the current evidence) let it
   * deploy.
   */
  async decide(
    p: Promotion,
    input: { decision: 'approve' | 'reject'; comment?: string },
    approver: { userEntityRef: string; ownershipEntityRefs: string[] },
  ): Promise<PromotionDto> {
    if (p.state !== 'awaiting-approval') {
      throw new ConflictError(
        `Promotion ${p.id} is ${p.state}, not awaiting approval`,
      );
    }
    const pipeline = this.options.config.pipelines.get(p.pipeline);
    const stage = pipeline?.stages.find(s => s.name === p.stage);
    if (!stage)
      throw new NotFoundError(
        `Stage ${p.pipeline}/${p.stage} is no longer configured`,
      );
    const allowed = stage.approval.approvers.map(r =>
      r.toLocaleLowerCase('en-US'),
    );
    const mine = approver.ownershipEntityRefs.map(r =>
      r.toLocaleLowerCase('en-US'),
    );
    if (!allowed.some(r => mine.includes(r))) {
      throw new NotAllowedError(
        `${approver.userEntityRef} may not approve promotions to ${
          p.stage
        }; approvers: ${stage.approval.approvers.join(', ')}`,
      );
    }
    if (
      approver.userEntityRef === p.requestedBy &&
      !stage.approval.allowSelfApproval
    ) {
      throw new NotAllowedError(
        `${approver.userEntityRef} requested this promotion and may not approve it too`,
      );
    }
    const evidenceHash = await this.evidenceHash(p);
    await this.store.addApproval(p.id, {
      approver: approver.userEntityRef,
      decision: input.decision === 'approve' ? 'approved' : 'rejected',
      comment: input.comment,
      evidenceHash,
    });
    if (input.decision === 'reject') {
      await this.store.transition(p.id, 'awaiting-approval', 'rejected', {
        kind: 'approval',
        name: 'rejected',
        status: 'failed',
        actor: approver.userEntityRef,
        reason: input.comment ?? `rejected by ${approver.userEntityRef}`,
        error: `rejected by ${approver.userEntityRef}${
          input.comment ? `: ${input.comment}` : ''
        }`,
      });
    } else {
      const approvals = (await this.store.listApprovals(p.id)).filter(
        a => a.decision === 'approved' && a.evidenceHash === evidenceHash,
      );
      const approvers = new Set(approvals.map(a => a.approver));
      if (approvers.size >= stage.approval.minApprovals) {
        await this.store.transition(p.id, 'awaiting-approval', 'deploying', {
          kind: 'approval',
          name: 'approved',
          status: 'passed',
          actor: approver.userEntityRef,
          reason: `approved by ${[...approvers].join(', ')}`,
          evidence: { approvers: [...approvers], evidenceHash },
        });
        this.options.onWork();
      }
    }
    return this.dto((await this.store.getPromotion(p.id))!);
  }

  /** Before the deploy a cancel stops the promotion; after it, it rolls back. */
  async cancel(p: Promotion, actor: string): Promise<PromotionDto> {
    const to: Partial<Record<PromotionState, PromotionState>> = {
      pending: 'cancelled',
      preflight: 'cancelled',
      'awaiting-approval': 'cancelled',
      deploying: 'rolling-back',
      verifying: 'rolling-back',
    };
    const target = to[p.state];
    if (!target || isTerminal(p.state)) {
      throw new ConflictError(
        `Promotion ${p.id} is ${p.state} and cannot be cancelled`,
      );
    }
    const moved = await this.store.transition(p.id, p.state, target, {
      kind: 'transition',
      name: 'cancel',
      status: 'passed',
      actor,
      reason: `cancelled by ${actor}`,
      error: `cancelled by ${actor}`,
    });
    if (!moved) {
      throw new ConflictError(
        `Promotion ${p.id} moved on while it was being cancelled; try again`,
      );
    }
    this.options.onWork();
    return this.dto((await this.store.getPromotion(p.id))!);
  }
}
