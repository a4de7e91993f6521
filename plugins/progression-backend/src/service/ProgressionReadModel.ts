import { Entity, stringifyEntityRef } from '@backstage/catalog-model';
import { InputError, NotFoundError } from '@backstage/errors';
import { LRUCache } from 'lru-cache';
import crypto from 'node:crypto';
import {
  DeliveryInsights,
  EntityEnvironments,
  EntityFlags,
  EntityMetrics,
  EntityValidation,
  GateResult,
  KUBERNETES_ID_ANNOTATION,
  PROGRESSION_PIPELINE_ANNOTATION,
  PromotionDto,
  PromotionSummary,
  ReleaseDto,
  Stage,
  StageGateSummary,
  StageMetrics,
  getKubernetesId,
  getPipelineName,
} from '@progression-io/backstage-plugin-progression-common';
import {
  Deployer,
  GateDefinition,
  configuredPhases,
} from '@progression-io/backstage-plugin-progression-node';
import { entityTarget } from '../catalog/entityTarget';
import {
  PipelineConfig,
  ProgressionConfig,
  StageConfig,
} from '../config/types';
import {
  Approval,
  DeliveryQuery,
  Promotion,
  PromotionStep,
  PromotionStore,
  Release,
} from '../database/PromotionStore';
import { evidenceHash } from '../engine/evidenceHash';
import { PromotionState } from '../engine/transitions';
import { readStageFlags, flagMatrix } from '../flags/readFlags';
import { gateContext, stageLocation } from '../gates/gateContext';
import { KubernetesDeployer } from '../kubernetes/KubernetesDeployer';
import { KubernetesWorkloads } from '../kubernetes/KubernetesWorkloads';
import { isLabelValue } from '../kubernetes/names';
import { StageResources } from '../kubernetes/StageResources';
import { PrometheusClient } from '../prometheus/PrometheusClient';
import { renderQuery } from '../prometheus/promql';
import { withTimeout } from '../util/withTimeout';
import { StageWindows } from '../windows/StageWindows';
import {
  describeEnvironments,
  pipelineOf,
  stageUrlOf,
} from './describeEnvironments';
import { promotionDto, releaseDto, strip } from './dto';

/** Delivery insights' ranges, in UTC days (today included). */
const INSIGHT_RANGES: Record<string, number> = {
  '7d': 7,
  '30d': 30,
  '90d': 90,
};
const DAY_MS = 86_400_000;
/**
 * What one stage-day of an insights answer holds: the day's object in the
 * answer and its share of the serialized copy kept for ETags. Measured
 * (2026-11-30, Node 20): 1,000 answers of 3 stages × 90 days took 29 KiB of
 * heap and 27 KiB of JSON bytes each, 209 bytes a stage-day; the rest is
 * room for longer names and figures.
 */
const INSIGHTS_BYTES_PER_STAGE_DAY = 250;
/** The insights cache's bound: 64 MiB of estimated answers. */
const INSIGHTS_CACHE_BYTES = 64 * 1024 * 1024;

/** The charts' time ranges, in seconds. */
const CHART_RANGES: Record<string, number> = {
  '15m': 900,
  '1h': 3600,
  '6h': 21_600,
  '24h': 86_400,
};

interface StageHistory {
  summaries: Map<
    string,
    { last?: Promotion; active?: Promotion; lastSucceeded?: Promotion }
  >;
  releases: Map<string, Release>;
  /** Gate results by promotion id, newest per gate. */
  gates: Map<string, StageGateSummary[]>;
  /** Valid approvals of promotions awaiting approval, and the hash they count for, by promotion id. */
  approvals: Map<string, { approvedBy: string[]; evidenceHash: string }>;
  /** The version of a live image, looked up once per image. */
  byImage: Map<string, Promise<string | undefined>>;
}

/**
 * What the REST API reads: an entity's environments with their live state,
 * metrics and flags, a preview of the gates, its releases and promotions.
 * Nothing here changes state; reads of an entity's promotion history are
 * cached for a second and dropped by every write through this backend.
 */
export class ProgressionReadModel {
  private readonly deployers: Map<string, Deployer<any>>;

  constructor(
    private readonly options: {
      store: PromotionStore;
      config: ProgressionConfig;
      /** The installed gates: what a stage lists, and what a preview runs. */
      gates: readonly GateDefinition<any>[];
      /** Reads the stages' live state; without it the environments are config only. */
      workloads?: KubernetesWorkloads;
      /** How releases reach stages; the built-in one over `workloads` by default. */
      deployers?: readonly Deployer<any>[];
      /** Where the charts' series come from; without it metrics say so. */
      prometheus?: PrometheusClient;
      /** The stages' windows and freezes: whether each takes promotions now. */
      windows?: StageWindows;
    },
  ) {
    const deployers =
      options.deployers ??
      (options.workloads ? [new KubernetesDeployer(options.workloads)] : []);
    this.deployers = new Map(deployers.map(d => [d.kind, d]));
  }

  private get store() {
    return this.options.store;
  }

  pipelineOf(entity: Entity): PipelineConfig {
    return pipelineOf(entity, this.options.config);
  }

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
    if (!isLabelValue(kubernetesId)) {
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
   * What the gates that may preview (cheap, read-only ones before the
   * approval, such as isolation and parity) say now about a promotion of
   * the entity into `stageName`, without starting one: for the promote
   * dialog.
   */
  async previewPromotion(
    entity: Entity,
    stageName: string,
  ): Promise<{ stage: string; results: GateResult[] }> {
    const pipeline = this.pipelineOf(entity);
    const index = pipeline.stages.findIndex(s => s.name === stageName);
    const stage = pipeline.stages[index];
    if (!stage) {
      throw new NotFoundError(
        `${stringifyEntityRef(entity)}'s pipeline ${
          pipeline.name
        } has no stage '${stageName}'`,
      );
    }
    const workloads = this.options.workloads;
    const gates = this.options.gates.filter(
      g =>
        g.preview &&
        configuredPhases(g, stage, pipeline.stages[index - 1]).includes(
          'preflight',
        ),
    );
    if (!workloads || !gates.length) return { stage: stageName, results: [] };
    const context = gateContext({
      config: this.options.config,
      pipeline,
      stage,
      workloads,
      entity: entityTarget(entity, this.options.config),
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

  /**
   * Each entity's delivery insights by range. An answer is reused as it is
   * for a second, so that many readers of one entity cost nothing; after
   * that, while the store's fingerprint of the range (an index-only count)
   * is unchanged, with `to` moved to now. The figures move only when a
   * promotion ends, through this replica or another, and the fingerprint
   * sees both. The cache is bounded by the answers' estimated size (an
   * answer and its serialized copy grow with stages × days), not by their
   * number: 5,000 entities' 90-day answers would not fit in memory.
   */
  private readonly insightsCache = new LRUCache<
    string,
    {
      /** The range's first day and the stages: another is a miss. */
      shape: string;
      fingerprint: Promise<string>;
      answer: Promise<DeliveryInsights>;
      checkedAt: number;
      /** Estimated bytes held for the answer, its parts and its JSON. */
      bytes: number;
    }
  >({ maxSize: INSIGHTS_CACHE_BYTES, sizeCalculation: entry => entry.bytes });

  /**
   * Each insights answer's figures, hashed without `to`: answers that
   * differ only in when they were checked share it.
   */
  private readonly insightsTags = new WeakMap<DeliveryInsights, string>();

  /**
   * A tag of the answer's figures (everything but `to`, the time it was
   * last checked), for a weak ETag: a client that holds an answer with the
   * same figures need not read it again.
   */
  insightsTag(answer: DeliveryInsights): string | undefined {
    return this.insightsTags.get(answer);
  }

  /** Forgets what `environments` and `insights` know of the entity's promotions. */
  invalidate(entityRef: string) {
    this.history.delete(entityRef);
    for (const range of Object.keys(INSIGHT_RANGES)) {
      this.insightsCache.delete(`${entityRef}|${range}`);
    }
  }

  /**
   * Deployment frequency, lead time, change failure rate and time to
   * restore of each stage over the last `range` (UTC days, today
   * included), with a series per day; computed by the store.
   */
  async insights(
    entity: Entity,
    options: { range?: string } = {},
  ): Promise<DeliveryInsights> {
    const pipeline = this.pipelineOf(entity);
    const entityRef = stringifyEntityRef(entity);
    const range = options.range ?? '30d';
    const days = INSIGHT_RANGES[range];
    if (!days) {
      throw new InputError(
        `range must be one of ${Object.keys(INSIGHT_RANGES).join(', ')}`,
      );
    }
    const stages = pipeline.stages.map(st => ({
      name: st.name,
      title: st.title,
    }));
    const now = new Date();
    const today = Date.UTC(
      now.getUTCFullYear(),
      now.getUTCMonth(),
      now.getUTCDate(),
    );
    const since = new Date(today - (days - 1) * DAY_MS);
    const query = { entityRef, stages: stages.map(st => st.name), since };
    const shape = JSON.stringify([today, stages]);
    const key = `${entityRef}|${range}`;

    const cached = this.insightsCache.get(key);
    if (cached?.shape === shape) {
      if (now.getTime() - cached.checkedAt < 1000) return cached.answer;
      // One check a second; readers meanwhile take the answer as it is.
      cached.checkedAt = now.getTime();
      const [was, is] = await Promise.all([
        cached.fingerprint,
        this.store.deliveryFingerprint(query),
      ]);
      if (was === is && this.insightsCache.get(key) === cached) {
        cached.answer = cached.answer.then(answer => {
          const checked = { ...answer, to: new Date().toISOString() };
          const tag = this.insightsTags.get(answer);
          if (tag) this.insightsTags.set(checked, tag);
          return checked;
        });
        return cached.answer;
      }
      // Changed: the fingerprint just read is the one the new figures go with.
      return this.computeAndKeep(key, shape, Promise.resolve(is), query, {
        stages,
        range,
        days,
      });
    }
    // The fingerprint is read before the figures: a promotion that ends in
    // between is in the figures and makes the next check compute again.
    return this.computeAndKeep(
      key,
      shape,
      this.store.deliveryFingerprint(query),
      query,
      { stages, range, days },
    );
  }

  private computeAndKeep(
    key: string,
    shape: string,
    fingerprint: Promise<string>,
    query: DeliveryQuery,
    of: {
      stages: { name: string; title: string }[];
      range: string;
      days: number;
    },
  ): Promise<DeliveryInsights> {
    const answer = fingerprint
      .then(() => this.computeInsights(query, of.stages, of.range, of.days))
      .then(computed => {
        const { to: _checkedAt, ...figures } = computed;
        this.insightsTags.set(
          computed,
          crypto
            .createHash('sha1')
            .update(JSON.stringify(figures))
            .digest('base64url'),
        );
        return computed;
      });
    const entry = {
      shape,
      fingerprint,
      answer,
      checkedAt: Date.now(),
      bytes: INSIGHTS_BYTES_PER_STAGE_DAY * of.stages.length * (of.days + 1),
    };
    this.insightsCache.set(key, entry);
    answer.catch(() => {
      if (this.insightsCache.get(key) === entry) {
        this.insightsCache.delete(key);
      }
    });
    return answer;
  }

  private async computeInsights(
    query: DeliveryQuery,
    stages: { name: string; title: string }[],
    range: string,
    days: number,
  ): Promise<DeliveryInsights> {
    const { entityRef, since } = query;
    const figures = await this.store.deliveryInsights(query);
    const dates = Array.from({ length: days }, (_, i) =>
      new Date(since.getTime() + i * DAY_MS).toISOString().slice(0, 10),
    );
    return {
      entityRef,
      range,
      days,
      from: since.toISOString(),
      to: new Date().toISOString(),
      stages: figures.map((f, i) => {
        const deployments = f.succeeded + f.failed;
        const byDate = new Map(f.daily.map(d => [d.date, d]));
        return {
          stage: f.stage,
          title: stages[i].title,
          deployments: {
            count: deployments,
            succeeded: f.succeeded,
            failed: f.failed,
            perDay: deployments / days,
          },
          leadTime: {
            count: f.leadTime.count,
            fromCommit: f.leadTime.fromCommit,
            medianMs: f.leadTime.medianMs ?? null,
            p90Ms: f.leadTime.p90Ms ?? null,
          },
          changeFailureRate: {
            failed: f.failed,
            deployments,
            rate: deployments ? f.failed / deployments : null,
          },
          timeToRestore: {
            incidents: f.restore.incidents,
            restored: f.restore.restored,
            open: f.restore.incidents - f.restore.restored,
            medianMs: f.restore.medianMs ?? null,
          },
          daily: dates.map(date => {
            const d = byDate.get(date);
            return {
              date,
              deployments: d ? d.succeeded + d.failed : 0,
              failed: d?.failed ?? 0,
              leadTimeMedianMs: d?.leadTimeMedianMs ?? null,
              restoreMedianMs: d?.restoreMedianMs ?? null,
            };
          }),
        };
      }),
    };
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
      const approvals = new Map<
        string,
        { approvedBy: string[]; evidenceHash: string }
      >();
      for (const { active } of summaries.values()) {
        if (active?.state !== 'awaiting-approval') continue;
        const hash = await evidenceHash(this.store, active);
        approvals.set(active.id, {
          approvedBy: (await this.store.listApprovals(active.id))
            .filter(a => a.decision === 'approved' && a.evidenceHash === hash)
            .map(a => a.approver),
          evidenceHash: hash,
        });
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
    const base = describeEnvironments(
      entity,
      this.options.config,
      this.options.gates,
    );
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
    const target = entityTarget(entity, this.options.config);
    const summary = (p: Promotion): PromotionSummary => {
      const approved = approvals.get(p.id);
      const needed = pipelineConfig.stages.find(st => st.name === p.stage)
        ?.approval.minApprovals;
      return strip({
        id: p.id,
        kind: p.kind,
        state: p.state,
        version: releases.get(p.releaseId)?.version ?? p.releaseId,
        requestedBy: p.requestedBy,
        createdAt: p.createdAt,
        finishedAt: p.finishedAt,
        error: p.error,
        ...(approved && { approvals: { ...approved, needed: needed ?? 1 } }),
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
        const window = await this.options.windows?.state(
          pipelineConfig.name,
          stage.name,
        );
        const result: Stage = {
          ...stage,
          ...(window && {
            window: {
              open: window.open,
              source: window.source,
              reason: window.reason,
              reasonParts: window.reasonParts.map(part =>
                typeof part === 'string'
                  ? { text: part }
                  : { at: part.toISOString() },
              ),
              ...(window.nextOpening && {
                nextOpening: window.nextOpening.toISOString(),
              }),
              rollbacksWhenClosed: window.rollbacksWhenClosed,
            },
          }),
          ...(shownGates?.length && { gates: shownGates }),
          ...(last && { lastPromotion: summary(last) }),
          ...(active && { activePromotion: summary(active) }),
        };
        const stageConfig = pipelineConfig.stages.find(
          st => st.name === stage.name,
        )!;
        const deployer = this.deployers.get(stageConfig.deploy.kind);
        const workloads = this.options.workloads;
        if (!deployer || !workloads) return result;
        try {
          const live = await withTimeout(
            () =>
              deployer.describeLive(
                {
                  entity: target,
                  stage: stageConfig,
                  location: stageLocation(this.options.config, stageConfig),
                  workloads,
                },
                { cached: true },
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
            ...(live.gitops && { gitops: live.gitops }),
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

  async listReleases(entity: Entity): Promise<ReleaseDto[]> {
    this.pipelineOf(entity);
    return (await this.store.listReleases(stringifyEntityRef(entity))).map(
      releaseDto,
    );
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
      items: await Promise.all(
        page.items.map(p => promotionDto(this.store, p)),
      ),
      nextCursor: page.nextCursor,
    });
  }

  async getPromotion(id: string): Promise<Promotion> {
    const p = await this.store.getPromotion(id);
    if (!p) throw new NotFoundError(`No promotion ${id}`);
    return p;
  }

  /**
   * A promotion with a page of its steps (oldest first), its approvals and
   * the evidence hash an approval is bound to.
   */
  async promotionDetails(
    p: Promotion,
    page: { after?: number; limit?: number } = {},
  ): Promise<{
    promotion: PromotionDto;
    steps: PromotionStep[];
    nextStepCursor?: string;
    approvals: Array<Approval & { valid: boolean }>;
    evidenceHash: string;
  }> {
    const hash = await evidenceHash(this.store, p);
    const limit = page.limit ?? 200;
    // One more than asked tells whether another page follows.
    const steps = await this.store.listSteps(p.id, {
      after: page.after,
      limit: limit + 1,
    });
    const shown = steps.slice(0, limit);
    return strip({
      promotion: await promotionDto(this.store, p),
      steps: shown.map(s => strip(s)),
      nextStepCursor:
        steps.length > limit ? String(shown[shown.length - 1].id) : undefined,
      approvals: (await this.store.listApprovals(p.id)).map(a =>
        strip({ ...a, valid: a.evidenceHash === hash }),
      ),
      evidenceHash: hash,
    });
  }
}
