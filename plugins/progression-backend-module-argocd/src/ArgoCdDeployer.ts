import { LoggerService } from '@backstage/backend-plugin-api';
import { Config } from '@backstage/config';
import {
  InputError,
  NotAllowedError,
  NotFoundError,
  ServiceUnavailableError,
} from '@backstage/errors';
import { ScmIntegrations } from '@backstage/integration';
import {
  DeployRecord,
  DeployRequest,
  DeployTarget,
  Deployer,
  GitOpsState,
  LiveWorkload,
  RolloutResult,
} from '@progression-io/backstage-plugin-progression-node';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Application, ArgoCdClient, ArgoCdInstance } from './ArgoCdClient';
import {
  ArgoCdStageConfig,
  applicationAnnotation,
  applicationName,
  gitCredentialsFor,
  readArgoCdInstances,
  readArgoCdStageConfig,
} from './config';
import { GitRepository } from './GitRepository';
import { overlayImage, parseImage, setOverlayImage } from './kustomization';

/** The commit trailer that names the promotion a deploy commit belongs to. */
export const PROMOTION_TRAILER = 'Progression-Promotion';
/** The trailer of the roll-forward commit that undoes a promotion's commit. */
export const ROLLBACK_TRAILER = 'Progression-Rollback-Of';

const KUSTOMIZATION_FILES = [
  'kustomization.yaml',
  'kustomization.yml',
  'Kustomization',
];

/** What an argocd deploy records beside the common fields. */
export interface ArgoCdDeployRecord extends DeployRecord {
  promotionId: string;
  instance: string;
  application: string;
  repoUrl: string;
  branch: string;
  /** The overlay's kustomization file. */
  path: string;
  /** The branch head the deploy started from. */
  fromCommit: string;
  /** The deploy's commit, once made. */
  commit?: string;
  /** The roll-forward commit that put `fromImage` back, once made. */
  rollbackCommit?: string;
}

interface StageContext {
  config: ArgoCdStageConfig;
  client: ArgoCdClient;
  app: Application;
  name: string;
  repo: GitRepository;
  branch: string;
  /** The overlay's folder (the Application's `spec.source.path`). */
  path: string;
}

const short = (sha?: string) => sha?.slice(0, 7) ?? 'none';

/**
 * What Argo CD said when the wait ended, for the step's evidence: its last
 * sync operation (revision, phase, start and end, who started it) and the
 * Application's comparison and health.
 */
function observed(name: string, app: Application) {
  const status = app.status ?? {};
  const op = status.operationState;
  const by = op?.operation?.initiatedBy;
  return {
    application: name,
    ...(op && {
      sync: {
        revision: op.syncResult?.revision,
        phase: op.phase,
        message: op.message,
        startedAt: op.startedAt,
        finishedAt: op.finishedAt,
        initiatedBy: by?.automated ? 'automated sync' : by?.username,
      },
    }),
    syncStatus: status.sync?.status,
    revision: status.sync?.revision,
    health: status.health?.status,
    reconciledAt: status.reconciledAt,
  };
}
const subject = (message: string) => message.split('\n')[0];

/**
 * GitOps stages (`deploy.kind: argocd`): a release reaches the stage as one
 * Git commit that sets its image in the stage's Kustomize overlay (what
 * `kustomize edit set image` writes), pushed without force, and an Argo CD
 * refresh (automated sync) or sync (manual sync, after the approval). It
 * is deployed when Argo CD reports that commit synced (operation
 * Succeeded, reconciled after it finished), the Deployment rolled out, and
 * the Application Healthy. A rollback is a roll-forward commit that puts
 * the previous image back, synced and observed the same way. Progression
 * never patches what Argo CD manages.
 */
export class ArgoCdDeployer implements Deployer<ArgoCdStageConfig> {
  readonly kind = 'argocd';
  private instanceMap?: Map<string, ArgoCdInstance>;
  private readonly clients = new Map<string, ArgoCdClient>();
  private readonly repos = new Map<string, GitRepository>();
  private readonly integrations: ScmIntegrations;
  private readonly states = new Map<
    string,
    { at: number; state: Promise<GitOpsState> }
  >();
  private readonly pollMs: number;

  constructor(
    private readonly options: {
      config: Config;
      /** Where the manifests repositories' object stores are kept. */
      cacheDir: string;
      logger?: LoggerService;
      /** How often Argo CD is asked while a deploy waits (default 250 ms). */
      pollMs?: number;
      /** Bounds each call to Argo CD and Git (default 30 s). */
      requestTimeoutMs?: number;
    },
  ) {
    this.integrations = ScmIntegrations.fromConfig(options.config);
    this.pollMs = options.pollMs ?? 250;
  }

  /** Read when a stage first uses the deployer: other apps need no Argo CD config. */
  private get instances() {
    this.instanceMap ??= readArgoCdInstances(this.options.config);
    return this.instanceMap;
  }

  readConfig(deploy: Config | undefined, options: { path: string }) {
    return readArgoCdStageConfig(deploy, options.path, this.instances);
  }

  private client(instance: string) {
    let client = this.clients.get(instance);
    if (!client) {
      client = new ArgoCdClient(
        this.instances.get(instance)!,
        this.options.requestTimeoutMs,
      );
      this.clients.set(instance, client);
    }
    return client;
  }

  /**
   * One object store per repository and credentials: stages that push with
   * different tokens never share a client (nor one another's access).
   */
  private repository(url: string, config: ArgoCdStageConfig) {
    const key = createHash('sha256')
      .update(
        `${url}\u0000${config.git.username}\u0000${config.git.token ?? ''}`,
      )
      .digest('hex');
    let repo = this.repos.get(key);
    if (!repo) {
      repo = new GitRepository(url, {
        cacheDir: path.join(this.options.cacheDir, key.slice(0, 16)),
        credentials: gitCredentialsFor(this.integrations, url, config.git),
        timeoutMs: this.options.requestTimeoutMs,
      });
      this.repos.set(key, repo);
    }
    return repo;
  }

  /**
   * The stage's Application and where its overlay lives (its source: the
   * repository, the branch it tracks, the path); refuses an Application
   * that deploys somewhere else than the stage's namespace.
   */
  private async context(
    target: DeployTarget,
    options: { refresh?: 'hard' } = {},
  ): Promise<StageContext> {
    const config = target.stage.deploy.config as ArgoCdStageConfig;
    const client = this.client(config.instance);
    const { name, annotated } = applicationName(
      target.entity,
      target.stage,
      config,
    );
    const app = await client.getApplication(name, options);
    const destination = app.spec.destination?.namespace;
    if (destination !== target.location.namespace) {
      throw new NotAllowedError(
        `Argo CD Application ${name} deploys to namespace ${
          destination ?? '(none)'
        }, not to stage ${target.stage.name}'s namespace ${
          target.location.namespace
        }${
          annotated
            ? ` (the entity's annotation ${applicationAnnotation(
                target.stage.name,
              )} may only name an Application of the stage)`
            : ''
        }`,
      );
    }
    const source = app.spec.source;
    if (!source?.repoURL) {
      throw new InputError(
        `Argo CD Application ${name} has no spec.source.repoURL (Applications with several sources are not supported)`,
      );
    }
    const repo = this.repository(source.repoURL, config);
    const revision = source.targetRevision;
    if (revision && /^[0-9a-f]{40}$/.test(revision)) {
      throw new InputError(
        `Argo CD Application ${name} pins commit ${revision}; a GitOps stage needs an Application that tracks a branch`,
      );
    }
    const branch =
      !revision || revision === 'HEAD' ? await repo.defaultBranch() : revision;
    return {
      config,
      client,
      app,
      name,
      repo,
      branch,
      path: (source.path ?? '').replace(/^\.?\/*|\/*$/g, ''),
    };
  }

  /** The overlay's kustomization file at a commit, and its text. */
  private async overlayFile(ctx: StageContext, sha: string) {
    for (const file of KUSTOMIZATION_FILES) {
      const filepath = ctx.path ? `${ctx.path}/${file}` : file;
      const text = await ctx.repo.readFile(sha, filepath);
      if (text !== undefined) return { filepath, text };
    }
    throw new NotFoundError(
      `no kustomization.yaml in ${ctx.path || 'the root'} of ${
        ctx.repo.url
      } at ${ctx.branch} (${short(sha)}), the source of Argo CD Application ${
        ctx.name
      }`,
    );
  }

  async describeLive(
    target: DeployTarget,
    options: { cached?: boolean } = {},
  ): Promise<LiveWorkload | undefined> {
    const { entity, location, workloads } = target;
    const live = options.cached
      ? await workloads.readCached(
          location,
          entity.kubernetesId,
          entity.container,
        )
      : await workloads.readLive(
          location,
          entity.kubernetesId,
          entity.container,
        );
    if (!live) return undefined;
    return { ...live, gitops: await this.gitopsState(target, live, options) };
  }

  /**
   * The three sides of the stage. Git's and Argo CD's are kept for 5 s for
   * cached reads (the tab); the live side is compared on every read.
   */
  private async gitopsState(
    target: DeployTarget,
    live: LiveWorkload,
    options: { cached?: boolean },
  ): Promise<GitOpsState> {
    const key = `${target.stage.name}\u0000${target.entity.entityRef}`;
    let hit = this.states.get(key);
    if (!options.cached || !hit || Date.now() - hit.at >= 5000) {
      hit = {
        at: Date.now(),
        state: this.readSides(target, live.image, Boolean(options.cached)),
      };
      this.states.set(key, hit);
      if (this.states.size > 1000) {
        this.states.delete(this.states.keys().next().value!);
      }
    }
    const state = await hit.state;
    const image = state.head?.image;
    return image && image !== live.image
      ? {
          ...state,
          drift: [
            ...state.drift,
            {
              side: 'live',
              message: `the Deployment runs ${live.image}; the overlay names ${image}`,
            },
          ],
        }
      : state;
  }

  /**
   * Git's side (the overlay at the branch head) and Argo CD's. A cached
   * read (the tab) shares a branch head fetched in the last 2 s with the
   * other stages on the branch.
   */
  private async readSides(
    target: DeployTarget,
    liveImage: string,
    cached: boolean,
  ): Promise<GitOpsState> {
    const config = target.stage.deploy.config as ArgoCdStageConfig;
    let ctx: StageContext;
    try {
      ctx = await this.context(target);
    } catch (e: any) {
      return {
        repoUrl: '',
        branch: '',
        path: '',
        application: {
          name: applicationName(target.entity, target.stage, config).name,
          instance: config.instance,
          automated: false,
          selfHeal: false,
        },
        drift: [],
        errors: [e.message],
      };
    }
    const { app } = ctx;
    const status = app.status ?? {};
    const op = status.operationState;
    const state: GitOpsState = {
      repoUrl: ctx.repo.url,
      branch: ctx.branch,
      path: ctx.path,
      application: {
        name: ctx.name,
        instance: config.instance,
        sync: status.sync?.status,
        revision: status.sync?.revision,
        health: status.health?.status,
        automated: Boolean(app.spec.syncPolicy?.automated),
        selfHeal: Boolean(app.spec.syncPolicy?.automated?.selfHeal),
        ...(op?.phase && {
          operation: {
            phase: op.phase,
            revision: op.syncResult?.revision,
            message: op.message,
            finishedAt: op.finishedAt,
          },
        }),
      },
      drift: [],
    };
    try {
      const head = cached
        ? await ctx.repo.recentHead(ctx.branch)
        : await ctx.repo.head(ctx.branch);
      const { filepath, text } = await this.overlayFile(ctx, head.sha);
      const image = overlayImage(text, parseImage(liveImage).name, filepath);
      // The branch holds every stage's overlay: the head may be another
      // stage's commit. For the tab only (cached reads): a deploy's own
      // reads need no history. Not knowing it is no reason to show nothing.
      const change = cached
        ? await ctx.repo.lastChange(head.sha, filepath).catch(() => undefined)
        : undefined;
      state.head = {
        sha: head.sha,
        message: subject(head.message),
        ...(image && { image }),
        ...(change &&
          change.sha !== head.sha && {
            overlayChange: {
              sha: change.sha,
              message: subject(change.message),
            },
          }),
      };
      if (head.sha !== status.sync?.revision) {
        state.drift.push({
          side: 'git',
          message: `the branch head ${short(
            head.sha,
          )} is not the commit Argo CD compared (${short(
            status.sync?.revision,
          )})`,
        });
      }
    } catch (e: any) {
      state.errors = [e.message];
    }
    if (status.sync?.status !== 'Synced') {
      state.drift.push({
        side: 'argocd',
        message: `Argo CD says ${ctx.name} is ${
          status.sync?.status ?? 'not compared yet'
        }`,
      });
    } else if (status.health?.status && status.health.status !== 'Healthy') {
      state.drift.push({
        side: 'argocd',
        message: `Argo CD says ${ctx.name} is ${status.health.status}`,
      });
    }
    return state;
  }

  async plan(
    target: DeployTarget,
    request: DeployRequest,
  ): Promise<{ record: ArgoCdDeployRecord; applied: boolean }> {
    const ctx = await this.context(target);
    const { entity, location, workloads } = target;
    const live = await workloads.readLive(
      location,
      entity.kubernetesId,
      entity.container,
    );
    const head = await ctx.repo.head(ctx.branch);
    const { filepath, text } = await this.overlayFile(ctx, head.sha);
    const inOverlay = overlayImage(
      text,
      parseImage(request.release.image).name,
      filepath,
    );
    // After a restart the commit may already be there: never make it twice.
    const existing = await ctx.repo.findCommit(
      ctx.branch,
      `${PROMOTION_TRAILER}: ${request.promotionId}`,
    );
    const previous = request.previous as ArgoCdDeployRecord | undefined;
    const record: ArgoCdDeployRecord = {
      cluster: target.stage.cluster,
      namespace: target.stage.namespace,
      deployment: live.deployment,
      container: live.container,
      fromImage: previous?.fromImage ?? inOverlay ?? live.image,
      fromRevision: previous?.fromRevision ?? live.revision,
      toImage: request.release.image,
      promotionId: request.promotionId,
      instance: ctx.config.instance,
      application: ctx.name,
      repoUrl: ctx.repo.url,
      branch: ctx.branch,
      path: filepath,
      fromCommit: previous?.fromCommit ?? head.sha,
      ...(existing && { commit: existing.sha }),
    };
    return { record, applied: Boolean(existing) };
  }

  async apply(
    target: DeployTarget,
    record: DeployRecord,
    request: DeployRequest,
  ): Promise<void> {
    const r = record as ArgoCdDeployRecord;
    const ctx = await this.context(target);
    const verb = request.kind === 'rollback' ? 'Roll back' : 'Promote';
    const result = await ctx.repo.commitFile({
      branch: r.branch,
      filepath: r.path,
      edit: text => this.edit(text, r, r.toImage),
      author: ctx.config.git.author,
      attempts: ctx.config.git.pushAttempts,
      message: [
        `${verb} ${target.entity.name} ${request.release.version} to ${target.stage.name}`,
        '',
        `Progression sets ${r.toImage} in ${r.path} (it named ${r.fromImage}).`,
        request.requestedBy ? `Requested by ${request.requestedBy}.` : '',
        '',
        `${PROMOTION_TRAILER}: ${request.promotionId}`,
        `Progression-Stage: ${target.stage.name}`,
        `Progression-Release: ${request.release.version}`,
        ...(request.requestedBy
          ? [`Progression-Requested-By: ${request.requestedBy}`]
          : []),
      ]
        .filter((line, i, all) => line || all[i - 1] !== '')
        .join('\n'),
    });
    r.commit = result.sha;
    this.options.logger?.info(
      `${r.repoUrl} ${r.branch}: ${
        result.created ? `committed ${short(result.sha)}` : 'already set'
      } for promotion ${request.promotionId} (${r.toImage})`,
    );
    await this.trigger(ctx, result.sha).catch(() => undefined);
  }

  private edit(text: string | undefined, r: ArgoCdDeployRecord, image: string) {
    if (text === undefined) {
      throw new NotFoundError(
        `${r.path} is gone from ${r.repoUrl} ${r.branch}`,
      );
    }
    const next = setOverlayImage(text, image, r.path);
    return next === text ? undefined : next;
  }

  /** A refresh (automated sync picks the commit up) or a sync to it (manual). */
  private async trigger(ctx: StageContext, revision: string) {
    if (ctx.app.spec.syncPolicy?.automated) {
      await ctx.client.getApplication(ctx.name, { refresh: 'hard' });
    } else {
      await ctx.client.sync(ctx.name, { revision });
    }
  }

  async rollBack(target: DeployTarget, record: DeployRecord): Promise<unknown> {
    const r = record as ArgoCdDeployRecord;
    const ctx = await this.context(target);
    const deployCommit =
      r.commit ??
      (
        await ctx.repo.findCommit(
          r.branch,
          `${PROMOTION_TRAILER}: ${r.promotionId}`,
        )
      )?.sha;
    const done = await ctx.repo.findCommit(
      r.branch,
      `${ROLLBACK_TRAILER}: ${r.promotionId}`,
    );
    const result = done
      ? { sha: done.sha, created: true }
      : await ctx.repo.commitFile({
          branch: r.branch,
          filepath: r.path,
          edit: text => this.edit(text, r, r.fromImage),
          author: ctx.config.git.author,
          attempts: ctx.config.git.pushAttempts,
          message: [
            `Roll back ${target.entity.name} in ${target.stage.name} to ${r.fromImage}`,
            '',
            `Progression puts ${r.fromImage} back in ${r.path}, undoing ${short(
              deployCommit,
            )} (${r.toImage}).`,
            '',
            `${ROLLBACK_TRAILER}: ${r.promotionId}`,
            `Progression-Stage: ${target.stage.name}`,
          ].join('\n'),
        });
    r.rollbackCommit = result.sha;
    await this.trigger(ctx, result.sha).catch(() => undefined);
    if (!result.created) return undefined;
    return {
      commit: result.sha,
      deployCommit,
      repoUrl: r.repoUrl,
      branch: r.branch,
      path: r.path,
      application: r.application,
    };
  }

  /**
   * The stage's context for a wait: while Argo CD answers 503 (away, or
   * restarting) it is asked again until the wait's deadline, which then
   * fails the wait naming Argo CD's last answer, as the wait's own polls do.
   */
  private async contextWithin(
    target: DeployTarget,
    deadline: number,
    options: { timeoutMs: number; signal?: AbortSignal },
  ): Promise<{ ctx: StageContext } | { away: RolloutResult }> {
    const { signal } = options;
    for (;;) {
      try {
        return { ctx: await this.context(target) };
      } catch (e) {
        if (!(e instanceof ServiceUnavailableError)) throw e;
        if (Date.now() + this.pollMs >= deadline) {
          return {
            away: {
              done: false,
              failed: true,
              message: `Argo CD did not answer within ${Math.round(
                options.timeoutMs / 1000,
              )} s; last error: ${e.message}`,
            },
          };
        }
        await sleep(this.pollMs, undefined, { signal }).catch(error => {
          throw signal?.aborted ? signal.reason : error;
        });
      }
    }
  }

  /**
   * Waits until Argo CD reports the commit (the deploy's, or the
   * rollback's once made) synced — its revision, or a later one that still
   * names the image — the operation Succeeded and reconciled after it
   * finished, the Deployment rolled out and the Application Healthy; a
   * failed operation, a comparison error, Degraded health or a failed
   * rollout fail it at once. Starts the sync of a manual Application.
   */
  async awaitRollout(
    target: DeployTarget,
    record: DeployRecord,
    options: { timeoutMs: number; signal?: AbortSignal },
  ): Promise<RolloutResult> {
    const r = record as ArgoCdDeployRecord;
    const { signal } = options;
    signal?.throwIfAborted();
    const deadline = Date.now() + options.timeoutMs;
    const reached = await this.contextWithin(target, deadline, options);
    if ('away' in reached) return reached.away;
    const { ctx } = reached;
    const rollingBack = Boolean(r.rollbackCommit);
    const image = rollingBack ? r.fromImage : r.toImage;
    const expected =
      r.rollbackCommit ??
      r.commit ??
      (
        await ctx.repo.findCommit(
          r.branch,
          `${PROMOTION_TRAILER}: ${r.promotionId}`,
        )
      )?.sha;
    if (!expected) {
      return {
        done: false,
        failed: true,
        message: `no commit of promotion ${r.promotionId} on ${r.branch} of ${r.repoUrl}; nothing was deployed`,
      };
    }
    // Found again by its trailer after a restart: the step's evidence names it.
    if (!rollingBack) r.commit = expected;
    const reaches = async (revision?: string) => {
      if (!revision) return false;
      if (revision === expected) return true;
      // A later commit (someone else's) that still names the image counts.
      await ctx.repo.head(r.branch);
      if (!(await ctx.repo.includes(revision, expected))) return false;
      const text = await ctx.repo.readFile(revision, r.path);
      return (
        text !== undefined &&
        overlayImage(text, parseImage(image).name, r.path) === image
      );
    };
    const what = `${short(expected)} (${image})`;
    let app = ctx.app;
    let lastError: string | undefined;
    let syncRequestedAt = 0;
    let refreshedAt = 0;
    let rolledOut: RolloutResult | undefined;
    // Asked again at once: first with a hard refresh, and right after the
    // rollout, whose end Argo CD's health follows.
    let askNow = true;
    for (let refreshed = false; ; ) {
      const status = app.status ?? {};
      const op = status.operationState;
      const synced = await reaches(status.sync?.revision);
      const opOurs = await reaches(op?.syncResult?.revision);
      const comparison = status.conditions?.find(
        c => c.type === 'ComparisonError',
      );
      if (synced && comparison) {
        return failed(`Argo CD cannot compare ${what}: ${comparison.message}`);
      }
      if (opOurs && (op?.phase === 'Failed' || op?.phase === 'Error')) {
        return failed(
          `Argo CD's sync of ${what} ended ${op.phase}: ${op.message}`,
        );
      }
      // Argo CD compared the commit (or a later one that keeps it) and
      // found the cluster matching it, after its last operation ended: a
      // sync of it Succeeded, or none was needed (a commit that changed
      // nothing Argo CD renders).
      const operated =
        synced &&
        status.sync?.status === 'Synced' &&
        op?.phase !== 'Running' &&
        (!opOurs || op?.phase === 'Succeeded');
      const applied =
        operated &&
        Date.parse(status.reconciledAt ?? '') >=
          (Date.parse(op?.finishedAt ?? '') || 0);
      // Compared before its sync ended: ask Argo CD to compare again.
      const compareAgain =
        operated && !applied && Date.now() - refreshedAt > 2000;
      if (applied) {
        if (!rolledOut) {
          // Argo CD applied it: the Deployment's rollout, failing fast on
          // pods that cannot come up, as the kubernetes deployer does.
          rolledOut = await target.workloads.waitForRollout(
            target.location,
            r.deployment,
            {
              timeoutMs: Math.max(1, deadline - Date.now()),
              readyTimeoutMs: target.stage.readyTimeoutMs,
              signal,
            },
          );
          if (!rolledOut.done) {
            return {
              ...rolledOut,
              done: false,
              message: `Argo CD synced ${what}; the rollout: ${rolledOut.message}`,
              evidence: observed(ctx.name, app),
            };
          }
          askNow = true;
        }
        const health = status.health?.status;
        if (health === 'Healthy') {
          return {
            done: true,
            failed: false,
            message: `Argo CD synced ${what} to ${ctx.name} and reports it Healthy; ${rolledOut.message}`,
            evidence: observed(ctx.name, app),
          };
        }
        if (health === 'Degraded') {
          return failed(
            `Argo CD synced ${what} and reports ${ctx.name} Degraded: ${
              status.health?.message ?? ''
            }`.trim(),
          );
        }
      }
      if (
        !ctx.app.spec.syncPolicy?.automated &&
        !opOurs &&
        op?.phase !== 'Running' &&
        Date.now() - syncRequestedAt > 10_000
      ) {
        // A manual Application: Progression syncs it (after the approval).
        syncRequestedAt = Date.now();
        try {
          await ctx.client.sync(ctx.name, { revision: expected });
        } catch (e: any) {
          // Another operation runs, or Argo CD is away: asked again later.
          lastError = e.message;
        }
      }
      if (Date.now() >= deadline) {
        return failed(
          `Argo CD did not report ${what} synced and healthy within ${Math.round(
            options.timeoutMs / 1000,
          )} s: ${ctx.name} is ${status.sync?.status ?? 'unknown'} at ${short(
            status.sync?.revision,
          )}, operation ${op?.phase ?? 'none'}, health ${
            status.health?.status ?? 'unknown'
          }${lastError ? `; last error: ${lastError}` : ''}`,
        );
      }
      if (!askNow) {
        await sleep(this.pollMs, undefined, { signal }).catch(e => {
          // An interrupted wait is not a failed deploy: the abort's reason.
          throw signal?.aborted ? signal.reason : e;
        });
      }
      askNow = false;
      signal?.throwIfAborted();
      try {
        // A hard refresh first, so that Argo CD looks at Git now instead
        // of in 3 minutes; a normal one when it compared before its sync
        // ended.
        let refresh: 'hard' | 'normal' | undefined;
        if (!refreshed) refresh = 'hard';
        else if (compareAgain) refresh = 'normal';
        app = await ctx.client.getApplication(ctx.name, {
          ...(refresh && { refresh }),
        });
        if (refresh) refreshedAt = Date.now();
        refreshed = true;
        lastError = undefined;
      } catch (e: any) {
        // Argo CD unreachable for a while: the deadline still ends the wait.
        if (!(e instanceof ServiceUnavailableError)) throw e;
        lastError = e.message;
      }
    }
    function failed(message: string): RolloutResult {
      return {
        done: false,
        failed: true,
        message,
        evidence: observed(ctx.name, app),
      };
    }
  }
}
