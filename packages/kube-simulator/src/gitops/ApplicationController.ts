import { ApiError } from '../api/errors';
import { ObjectService } from '../api/ObjectService';
import { RESOURCES, ResourceType, findResource } from '../api/resources';
import { KubeObject, StoreEvent } from '../store/Store';
import {
  Health,
  INSTANCE_LABEL,
  SyncCode,
  TRACKING_ANNOTATION,
  imagesOf,
  isSynced,
  resourceHealth,
  timestamp,
  trackedBy,
  trackingId,
  worstHealth,
} from './compare';
import { Repositories } from './Repositories';

export const APPLICATIONS = findResource(
  'argoproj.io',
  'v1alpha1',
  'applications',
)!;
const NAMESPACES = findResource('', 'v1', 'namespaces')!;

/** Set on an Application (by the API server or kubectl) to ask for a refresh. */
export const REFRESH_ANNOTATION = 'argocd.argoproj.io/refresh';

/**
 * How far a reconcile goes, as the controller's comparison levels: `live`
 * compares live objects with the manifests already rendered (a watched
 * object changed), `normal` resolves the target revision again (periodic
 * refresh, spec change, `?refresh=normal`), `hard` also regenerates the
 * manifests (`?refresh=hard`).
 */
export type Level = 'live' | 'normal' | 'hard';
const RANK: Record<Level, number> = { live: 0, normal: 1, hard: 2 };
const higher = (a: Level, b: Level) => (RANK[a] >= RANK[b] ? a : b);

/** gitops-engine's kindOrder: what a sync applies first (pruning goes backwards). */
const KIND_ORDER = [
  'Namespace',
  'NetworkPolicy',
  'ResourceQuota',
  'LimitRange',
  'PodDisruptionBudget',
  'ServiceAccount',
  'Secret',
  'ConfigMap',
  'StorageClass',
  'PersistentVolume',
  'PersistentVolumeClaim',
  'CustomResourceDefinition',
  'ClusterRole',
  'ClusterRoleBinding',
  'Role',
  'RoleBinding',
  'Service',
  'DaemonSet',
  'Pod',
  'ReplicationController',
  'ReplicaSet',
  'Deployment',
  'HorizontalPodAutoscaler',
  'StatefulSet',
  'Job',
  'CronJob',
  'IngressClass',
  'Ingress',
];
const kindRank = (kind: string) => {
  const i = KIND_ORDER.indexOf(kind);
  return i === -1 ? KIND_ORDER.length : i;
};

const HISTORY_LIMIT = 10;

export interface ApplicationControllerOptions {
  namespace: string;
  reconcileMs: number;
  selfHealBackoffMs: number;
  maxSelfHealBackoffMs: number;
  /** Not Argo CD's: how long drift is left before the first self-heal (0: none). */
  selfHealDelayMs?: number;
}

/** A rendered object, placed in its namespace and labelled for the app. */
interface DesiredObject {
  type?: ResourceType;
  group: string;
  version: string;
  kind: string;
  namespace?: string;
  name: string;
  key: string;
  /** What is applied: the manifest with the app's tracking annotation and label. */
  object: KubeObject;
  /** What live objects are compared with: the same, with the server's defaults. */
  normalized: KubeObject;
}

interface Desired {
  sourceKey: string;
  revision: string;
  sourceType: string;
  manifests: KubeObject[];
  keys: Set<string>;
}

interface ResourceStatus {
  group: string;
  version: string;
  kind: string;
  namespace: string;
  name: string;
  status: SyncCode;
  health?: Health;
  requiresPruning?: boolean;
}

interface Comparison {
  status: SyncCode;
  resources: ResourceStatus[];
  health: Health;
  images: string[];
}

interface Slot {
  running?: Promise<void>;
  queued?: { level: Level; waiters: Array<() => void> };
  desired?: Desired;
  failed?: { sourceKey: string; error: string; revision?: string };
  spec?: string;
  /** An operation of this controller is being set or run. */
  operating: boolean;
  selfHealAttempts: number;
  lastFinishedMs?: number;
  /** When the live state was first seen drifted from a synced revision. */
  driftSinceMs?: number;
  retry?: NodeJS.Timeout;
}

const objectKey = (plural: string, namespace: string | undefined, n: string) =>
  `${plural}/${namespace ?? ''}/${n}`;

const errorMessage = (e: unknown) =>
  e instanceof Error ? e.message : String(e);

function groupVersion(apiVersion: string | undefined) {
  const [group, version] = (apiVersion ?? '').includes('/')
    ? (apiVersion ?? '').split('/', 2)
    : ['', apiVersion ?? ''];
  return { group, version };
}

/** kubectl's name for an object in its messages: `deployment.apps/checkout`. */
const kubectlName = (d: { group: string; kind: string; name: string }) =>
  `${d.kind.toLowerCase()}${d.group ? `.${d.group}` : ''}/${d.name}`;

class Stopped extends Error {}

/**
 * Argo CD's application controller for the Applications of one namespace:
 * compares each app's manifests (from Git, rendered by {@link Repositories})
 * with the live objects, records sync and health status, runs sync
 * operations (requested through the API, or automated), prunes and
 * self-heals. One reconcile at a time per app; a request during one queues
 * one more.
 */
export class ApplicationController {
  private readonly slots = new Map<string, Slot>();
  private readonly unsubscribe: () => void;
  private readonly interval: NodeJS.Timeout;
  private stopped = false;

  constructor(
    private readonly objects: ObjectService,
    private readonly repositories: Repositories,
    private readonly options: ApplicationControllerOptions,
  ) {
    this.unsubscribe = objects.store.subscribe(e => this.onEvent(e));
    this.interval = setInterval(
      () => this.refreshAll('normal'),
      options.reconcileMs,
    );
    this.interval.unref?.();
    this.refreshAll('normal');
  }

  /** Reconciles an app now; resolves once its status (and any sync it started) is recorded. */
  async refresh(name: string, level: Level = 'hard'): Promise<KubeObject> {
    if (!this.get(name)) throw ApiError.notFound('applications', name);
    await this.enqueue(name, level);
    const app = this.get(name);
    if (!app) throw ApiError.notFound('applications', name);
    return app;
  }

  /** Resolves a revision of an app's source to a commit sha (fetching it). */
  resolveRevision(app: KubeObject, revision: string): Promise<string> {
    return this.repositories.resolve(app.spec?.source?.repoURL, revision);
  }

  async stop() {
    this.stopped = true;
    this.unsubscribe();
    clearInterval(this.interval);
    for (const slot of this.slots.values()) {
      clearTimeout(slot.retry);
    }
    await Promise.all([...this.slots.values()].map(s => s.running));
    for (const slot of this.slots.values()) {
      for (const w of slot.queued?.waiters ?? []) w();
      slot.queued = undefined;
    }
  }

  private get(name: string) {
    return this.objects.store.get('applications', this.options.namespace, name);
  }

  private slot(name: string): Slot {
    let slot = this.slots.get(name);
    if (!slot) {
      slot = { operating: false, selfHealAttempts: 0 };
      this.slots.set(name, slot);
    }
    return slot;
  }

  private refreshAll(level: Level) {
    for (const app of this.objects.store.list(
      'applications',
      this.options.namespace,
    )) {
      void this.enqueue(app.metadata.name, level);
    }
  }

  private onEvent(e: StoreEvent) {
    if (this.stopped) return;
    const o = e.object;
    if (e.resource === 'applications') {
      if (o.metadata.namespace !== this.options.namespace) return;
      const slot = this.slot(o.metadata.name);
      if (e.type === 'DELETED') {
        // Without Argo CD's resources finalizer its objects stay, as here.
        clearTimeout(slot.retry);
        slot.desired = undefined;
        slot.failed = undefined;
        slot.spec = undefined;
        return;
      }
      const spec = JSON.stringify(o.spec ?? {});
      const refresh = o.metadata.annotations?.[REFRESH_ANNOTATION];
      const changed = spec !== slot.spec;
      slot.spec = spec;
      if (
        e.type === 'ADDED' ||
        changed ||
        refresh ||
        (o.operation && !slot.operating)
      ) {
        void this.enqueue(
          o.metadata.name,
          refresh === 'hard' ? 'hard' : 'normal',
        );
      }
      return;
    }
    // A managed object (or one an app wants) changed: compare again.
    const owner = trackedBy(o);
    if (owner && this.slots.has(owner)) void this.enqueue(owner, 'live');
    const key = objectKey(e.resource, o.metadata.namespace, o.metadata.name);
    for (const [name, slot] of this.slots) {
      if (name !== owner && slot.desired?.keys.has(key)) {
        void this.enqueue(name, 'live');
      }
    }
  }

  private enqueue(name: string, level: Level): Promise<void> {
    if (this.stopped) return Promise.resolve();
    const slot = this.slot(name);
    if (slot.queued) slot.queued.level = higher(slot.queued.level, level);
    else slot.queued = { level, waiters: [] };
    const done = new Promise<void>(resolve =>
      slot.queued!.waiters.push(resolve),
    );
    if (!slot.running) slot.running = this.drain(name, slot);
    return done;
  }

  private async drain(name: string, slot: Slot) {
    try {
      while (slot.queued && !this.stopped) {
        const { level, waiters } = slot.queued;
        slot.queued = undefined;
        try {
          await this.reconcile(name, slot, level);
        } catch (e) {
          this.recordUnexpected(name, e);
        }
        for (const w of waiters) w();
      }
    } finally {
      slot.running = undefined;
    }
  }

  /** Keeps a failure that is not the repository's nor the manifests' visible. */
  private recordUnexpected(name: string, e: unknown) {
    if (e instanceof Stopped || this.stopped) return;
    try {
      this.write(name, app => {
        app.status = {
          ...app.status,
          conditions: setCondition(
            app.status?.conditions,
            'UnknownError',
            errorMessage(e),
          ),
        };
      });
    } catch {
      // The app is gone.
    }
  }

  private write(name: string, change: (app: KubeObject) => void) {
    if (this.stopped) throw new Stopped();
    return this.objects.mutate(
      APPLICATIONS,
      this.options.namespace,
      name,
      change,
    );
  }

  private async reconcile(name: string, slot: Slot, requested: Level) {
    let app = this.get(name);
    if (!app) return;
    const refresh = app.metadata.annotations?.[REFRESH_ANNOTATION];
    let level = requested;
    if (refresh) level = higher(level, refresh === 'hard' ? 'hard' : 'normal');
    if (app.operation) {
      await this.operate(name, slot, app);
      app = this.get(name);
      if (!app) return;
      // As Argo CD does after an operation: compare with the latest revision.
      level = higher(level, 'normal');
    }
    const { desired, error, revision } = await this.desiredState(
      app,
      slot,
      level,
    );
    let comparison = desired && this.compare(name, app, desired);
    let syncError: string | undefined;
    if (desired && comparison && app.spec?.syncPolicy?.automated) {
      const decision = this.autoSync(name, app, slot, desired, comparison);
      syncError = decision.syncError;
      if (decision.operation) {
        const started = await this.operate(name, slot, app, decision.operation);
        if (started) {
          app = this.get(name);
          if (!app) return;
          comparison = this.compare(name, app, desired);
        }
      }
    }
    if (comparison?.status === 'Synced') {
      slot.selfHealAttempts = 0;
      slot.driftSinceMs = undefined;
    }
    this.recordStatus(name, {
      desired,
      comparison,
      error,
      revision,
      syncError,
      full: level !== 'live',
      refresh,
    });
  }

  /** The rendered manifests of the app's source, or why there are none. */
  private async desiredState(
    app: KubeObject,
    slot: Slot,
    level: Level,
  ): Promise<{ desired?: Desired; error?: string; revision?: string }> {
    const source = app.spec?.source ?? {};
    const sourceKey = JSON.stringify([
      source.repoURL,
      source.path ?? '',
      source.targetRevision ?? '',
    ]);
    if (level === 'live') {
      if (slot.desired?.sourceKey === sourceKey)
        return { desired: slot.desired };
      if (slot.failed?.sourceKey === sourceKey) return slot.failed;
    }
    if (!source.repoURL) {
      return { error: 'spec.source.repoURL is required' };
    }
    let revision: string | undefined;
    try {
      revision = await this.repositories.resolve(
        source.repoURL,
        source.targetRevision,
      );
      const rendered = await this.repositories.render(
        source.repoURL,
        revision,
        source.path,
        level === 'hard',
      );
      const destination = app.spec?.destination?.namespace;
      const keys = new Set(
        rendered.objects.map(o => this.place(app, o, destination).key),
      );
      slot.desired = {
        sourceKey,
        revision,
        sourceType: rendered.sourceType,
        manifests: rendered.objects,
        keys,
      };
      slot.failed = undefined;
      return { desired: slot.desired };
    } catch (e) {
      if (e instanceof Stopped || this.stopped) throw new Stopped();
      slot.desired = undefined;
      slot.failed = { sourceKey, error: errorMessage(e), revision };
      return slot.failed;
    }
  }

  /** Where a manifest goes and what it looks like once the app manages it. */
  private place(
    app: KubeObject,
    manifest: KubeObject,
    destination: string | undefined,
  ): DesiredObject {
    const { group, version } = groupVersion(manifest.apiVersion);
    const kind = manifest.kind ?? '';
    const type = RESOURCES.find(
      r =>
        !r.derive &&
        r.group === group &&
        r.version === version &&
        r.kind === kind,
    );
    const namespace =
      type && !type.namespaced
        ? undefined
        : manifest.metadata.namespace || destination;
    const name = manifest.metadata.name;
    const object = structuredClone(manifest);
    object.metadata = {
      ...object.metadata,
      labels: {
        ...object.metadata.labels,
        [INSTANCE_LABEL]: app.metadata.name,
      },
      annotations: {
        ...object.metadata.annotations,
        [TRACKING_ANNOTATION]: trackingId(
          app.metadata.name,
          group,
          kind,
          namespace,
          name,
        ),
      },
    };
    if (namespace) object.metadata.namespace = namespace;
    else delete object.metadata.namespace;
    const normalized = structuredClone(object);
    // Server defaults (Secret stringData folded into data, …) so that an
    // object as the API server stores it compares equal.
    type?.defaults?.(normalized);
    return {
      type,
      group,
      version,
      kind,
      namespace,
      name,
      key: objectKey(type?.plural ?? kind, namespace, name),
      object,
      normalized,
    };
  }

  /** Live objects whose tracking annotation names this app. */
  private tracked(name: string): KubeObject[] {
    const seen = new Set<string>();
    const found: KubeObject[] = [];
    for (const type of RESOURCES) {
      if (type.derive || seen.has(type.plural)) continue;
      seen.add(type.plural);
      found.push(
        ...this.objects.store.list(
          type.plural,
          undefined,
          o => trackedBy(o) === name,
        ),
      );
    }
    return found;
  }

  private liveOf(d: DesiredObject) {
    return d.type
      ? this.objects.store.get(d.type.plural, d.namespace, d.name)
      : undefined;
  }

  private compare(name: string, app: KubeObject, desired: Desired): Comparison {
    const destination = app.spec?.destination?.namespace;
    const placed = desired.manifests.map(m => this.place(app, m, destination));
    const resources: ResourceStatus[] = [];
    const images = new Set<string>();
    for (const d of placed) {
      const live = this.liveOf(d);
      for (const image of live ? imagesOf(live) : []) images.add(image);
      resources.push({
        group: d.group,
        version: d.version,
        kind: d.kind,
        namespace: d.namespace ?? '',
        name: d.name,
        status: live && isSynced(d.normalized, live) ? 'Synced' : 'OutOfSync',
        health: resourceHealth(live),
      });
    }
    const keys = new Set(placed.map(d => d.key));
    for (const live of this.tracked(name)) {
      const d = this.place(app, live, destination);
      if (keys.has(d.key)) continue;
      resources.push({
        group: d.group,
        version: d.version,
        kind: d.kind,
        namespace: d.namespace ?? '',
        name: d.name,
        status: 'OutOfSync',
        requiresPruning: true,
      });
    }
    resources.sort(
      (a, b) =>
        a.group.localeCompare(b.group) ||
        a.kind.localeCompare(b.kind) ||
        a.namespace.localeCompare(b.namespace) ||
        a.name.localeCompare(b.name),
    );
    return {
      status: resources.every(r => r.status === 'Synced')
        ? 'Synced'
        : 'OutOfSync',
      resources,
      health: worstHealth(resources.filter(r => r.health).map(r => r.health!)),
      images: [...images].sort(),
    };
  }

  /**
   * Argo CD's autoSync (controller/appcontroller.go): sync an OutOfSync app
   * to a revision not yet attempted; after a failed attempt of that
   * revision, report SyncError and wait for a new one; with selfHeal, sync
   * the same revision again after a back-off that doubles per consecutive
   * attempt (Argo CD 3.x: 2 s, factor 3, up to 5 min, the first attempt at
   * once; here the first waits `selfHealBackoffMs` after the last operation
   * finished, so a drift made right after a sync is not fought at once).
   */
  private autoSync(
    name: string,
    app: KubeObject,
    slot: Slot,
    desired: Desired,
    comparison: Comparison,
  ): { operation?: Record<string, any>; syncError?: string } {
    const automated = app.spec.syncPolicy.automated;
    if (comparison.status !== 'OutOfSync' || app.operation) return {};
    if (
      !automated.prune &&
      comparison.resources.every(
        r => r.status === 'Synced' || r.requiresPruning,
      )
    ) {
      // Only pruning would change anything, and automated prune is off.
      return {};
    }
    const last = app.status?.operationState;
    const lastRevision =
      last?.syncResult?.revision ?? last?.operation?.sync?.revision;
    const operation = (selfHealAttemptsCount?: number) => ({
      sync: {
        revision: desired.revision,
        prune: Boolean(automated.prune),
        ...(selfHealAttemptsCount && { selfHealAttemptsCount }),
      },
      initiatedBy: { automated: true },
      retry: {},
    });
    if (!last || lastRevision !== desired.revision) {
      slot.selfHealAttempts = 0;
      return { operation: operation() };
    }
    if (last.phase === 'Running') return {};
    if (last.phase !== 'Succeeded') {
      return {
        syncError: `Failed sync attempt to ${desired.revision}: ${last.message}`,
      };
    }
    if (!automated.selfHeal) return {};
    const { selfHealBackoffMs, maxSelfHealBackoffMs } = this.options;
    const delay = Math.min(
      selfHealBackoffMs * 2 ** slot.selfHealAttempts,
      maxSelfHealBackoffMs,
    );
    const finished =
      slot.lastFinishedMs ?? (Date.parse(last.finishedAt ?? '') || 0);
    slot.driftSinceMs ??= Date.now();
    const wait = Math.max(
      finished + delay - Date.now(),
      // The demo's pause, so that a drift can be seen before it heals.
      slot.selfHealAttempts === 0
        ? slot.driftSinceMs + (this.options.selfHealDelayMs ?? 0) - Date.now()
        : 0,
    );
    if (wait > 0) {
      clearTimeout(slot.retry);
      slot.retry = setTimeout(() => void this.enqueue(name, 'live'), wait);
      slot.retry.unref?.();
      return {};
    }
    slot.selfHealAttempts += 1;
    return { operation: operation(slot.selfHealAttempts) };
  }

  /**
   * Runs the app's pending operation, or sets `operation` first (an
   * automated sync) unless another one is already there. Like Argo CD,
   * `operation` stays set until the operation completes.
   */
  private async operate(
    name: string,
    slot: Slot,
    app: KubeObject,
    automated?: Record<string, any>,
  ): Promise<boolean> {
    slot.operating = true;
    try {
      let pending = app;
      if (automated) {
        let busy = false;
        pending = this.write(name, a => {
          if (a.operation) busy = true;
          else a.operation = automated;
        });
        if (busy) return false;
      }
      await this.runOperation(name, slot, pending);
      return true;
    } finally {
      slot.operating = false;
    }
  }

  private async runOperation(name: string, slot: Slot, app: KubeObject) {
    const operation = app.operation;
    const sync = operation.sync ?? {};
    const source = app.spec?.source ?? {};
    const startedAt = timestamp();
    this.write(name, a => {
      a.status = {
        ...a.status,
        operationState: {
          operation,
          phase: 'Running',
          message: 'syncing',
          startedAt,
        },
      };
    });
    let revision: string = sync.revision || source.targetRevision || 'HEAD';
    let outcome: { phase: string; message: string; resources: any[] };
    try {
      revision = await this.repositories.resolve(source.repoURL, revision);
      const rendered = await this.repositories.render(
        source.repoURL,
        revision,
        source.path,
      );
      outcome = this.syncObjects(name, app, rendered.objects, sync);
    } catch (e) {
      if (e instanceof Stopped || this.stopped) throw new Stopped();
      // Manifests that cannot be generated end the operation in Error.
      outcome = { phase: 'Error', message: errorMessage(e), resources: [] };
    }
    const finishedAt = timestamp();
    slot.lastFinishedMs = Date.now();
    this.write(name, a => {
      const history: any[] = a.status?.history ?? [];
      const record = outcome.phase === 'Succeeded' && !sync.dryRun;
      const limit = a.spec?.revisionHistoryLimit ?? HISTORY_LIMIT;
      a.status = {
        ...a.status,
        operationState: {
          operation,
          phase: outcome.phase,
          message: outcome.message,
          startedAt,
          finishedAt,
          syncResult: { revision, source, resources: outcome.resources },
        },
        ...(record && {
          history: [
            ...history,
            {
              id: Math.max(-1, ...history.map(h => h.id ?? 0)) + 1,
              revision,
              deployedAt: finishedAt,
              deployStartedAt: startedAt,
              source,
              initiatedBy: operation.initiatedBy,
            },
          ].slice(-limit),
        }),
      };
      delete a.operation;
    });
  }

  /**
   * The sync itself: every desired object checked first (a refusal applies
   * nothing, as Argo CD's dry run before a sync), then the OutOfSync ones
   * applied in kind order, then pruning (when asked) in reverse order.
   */
  private syncObjects(
    name: string,
    app: KubeObject,
    manifests: KubeObject[],
    sync: { prune?: boolean; dryRun?: boolean },
  ): { phase: string; message: string; resources: any[] } {
    const destination = app.spec?.destination?.namespace;
    const options: string[] = app.spec?.syncPolicy?.syncOptions ?? [];
    const dryRun = Boolean(sync.dryRun);
    const suffix = dryRun ? ' (dry run)' : '';
    const desired = manifests
      .map(m => this.place(app, m, destination))
      .sort((a, b) => kindRank(a.kind) - kindRank(b.kind));
    const result = (d: DesiredObject, status: string, message: string) => ({
      group: d.group,
      version: d.version,
      kind: d.kind,
      namespace: d.namespace ?? '',
      name: d.name,
      status,
      message,
      hookPhase: status === 'SyncFailed' ? 'Failed' : 'Running',
      syncPhase: 'Sync',
    });
    const failed = (message: string, resources: any[]) => ({
      phase: 'Failed',
      message: `one or more objects failed to apply, reason: ${message}`,
      resources,
    });

    if (
      options.includes('CreateNamespace=true') &&
      destination &&
      !dryRun &&
      !this.objects.store.get('namespaces', undefined, destination)
    ) {
      this.objects.create(NAMESPACES, {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: destination },
      });
    }
    for (const d of desired) {
      const problem = this.refusal(d);
      if (problem) {
        return failed(problem, [result(d, 'SyncFailed', problem)]);
      }
    }
    const resources: any[] = [];
    let failure: string | undefined;
    for (const d of desired) {
      const live = this.liveOf(d);
      if (live && isSynced(d.normalized, live)) {
        resources.push(result(d, 'Synced', `${kubectlName(d)} unchanged`));
        continue;
      }
      try {
        if (!dryRun) this.apply(d, live);
        const verb = live ? 'configured' : 'created';
        resources.push(
          result(d, 'Synced', `${kubectlName(d)} ${verb}${suffix}`),
        );
      } catch (e) {
        failure ??= errorMessage(e);
        resources.push(result(d, 'SyncFailed', errorMessage(e)));
      }
    }
    const keys = new Set(desired.map(d => d.key));
    const extra = this.tracked(name)
      .map(live => this.place(app, live, destination))
      .filter(d => !keys.has(d.key))
      .sort((a, b) => kindRank(b.kind) - kindRank(a.kind));
    for (const d of extra) {
      if (!sync.prune) {
        resources.push(result(d, 'PruneSkipped', 'ignored (requires pruning)'));
        continue;
      }
      try {
        if (!dryRun) this.objects.delete(d.type!, d.namespace, d.name);
        resources.push(result(d, 'Pruned', `pruned${suffix}`));
      } catch (e) {
        failure ??= errorMessage(e);
        resources.push(result(d, 'SyncFailed', errorMessage(e)));
      }
    }
    if (failure) return failed(failure, resources);
    return {
      phase: 'Succeeded',
      message: 'successfully synced (all tasks run)',
      resources,
    };
  }

  /** Why the API server would refuse an object (Argo CD's dry run), if it would. */
  private refusal(d: DesiredObject): string | undefined {
    if (!d.type) {
      return `The Kubernetes API could not find ${d.group}/${
        d.kind
      } for requested resource ${d.namespace ?? ''}/${d.name}. Make sure the "${
        d.kind
      }" CRD is installed on the destination cluster.`;
    }
    if (
      d.namespace &&
      !this.objects.store.get('namespaces', undefined, d.namespace)
    ) {
      return ApiError.notFound('namespaces', d.namespace).message;
    }
    const problems = d.type.validate?.(structuredClone(d.normalized)) ?? [];
    return problems.length
      ? ApiError.invalid(d.kind, d.name, problems).message
      : undefined;
  }

  /**
   * Creates the object, or replaces what Git sets on the live one: every
   * top-level field but metadata and status (spec, data, …) becomes the
   * desired one, desired labels and annotations are merged into the live
   * ones, and the server's metadata and the live status stay. (Argo CD runs
   * `kubectl apply`, a three-way merge: fields set live by others and absent
   * from Git, such as replicas set by an autoscaler, survive there but are
   * reset here.)
   */
  private apply(d: DesiredObject, live: KubeObject | undefined) {
    const type = d.type!;
    if (!live) {
      this.objects.create(type, d.object, d.namespace);
      return;
    }
    this.objects.mutate(type, d.namespace, d.name, current => {
      const next: KubeObject = {
        apiVersion: current.apiVersion,
        kind: current.kind,
        metadata: {
          ...current.metadata,
          labels: { ...current.metadata.labels, ...d.object.metadata.labels },
          annotations: {
            ...current.metadata.annotations,
            ...d.object.metadata.annotations,
          },
        },
      };
      for (const [k, v] of Object.entries(d.object)) {
        if (!['apiVersion', 'kind', 'metadata', 'status'].includes(k)) {
          next[k] = v;
        }
      }
      if (current.status !== undefined) next.status = current.status;
      return next;
    });
  }

  private recordStatus(
    name: string,
    r: {
      desired?: Desired;
      comparison?: Comparison;
      error?: string;
      revision?: string;
      syncError?: string;
      full: boolean;
      refresh?: string;
    },
  ) {
    this.write(name, app => {
      const status = { ...app.status };
      const comparedTo = {
        source: app.spec?.source,
        destination: app.spec?.destination,
      };
      if (r.desired && r.comparison) {
        status.sync = {
          status: r.comparison.status,
          comparedTo,
          revision: r.desired.revision,
        };
        status.resources = r.comparison.resources;
        status.health = {
          ...r.comparison.health,
          lastTransitionTime:
            status.health?.status === r.comparison.health.status
              ? status.health.lastTransitionTime
              : timestamp(),
        };
        if (r.comparison.images.length) {
          status.summary = { ...status.summary, images: r.comparison.images };
        } else {
          delete status.summary;
        }
        status.sourceType = r.desired.sourceType;
      } else {
        status.sync = {
          status: 'Unknown',
          comparedTo,
          ...(r.revision && { revision: r.revision }),
        };
        status.health ??= {
          status: 'Unknown',
          lastTransitionTime: timestamp(),
        };
      }
      let conditions = (status.conditions ?? []).filter(
        (c: any) =>
          !['ComparisonError', 'SyncError', 'UnknownError'].includes(c.type),
      );
      if (r.error) {
        conditions = setCondition(
          status.conditions,
          'ComparisonError',
          r.error,
          conditions,
        );
      }
      if (r.syncError) {
        conditions = setCondition(
          status.conditions,
          'SyncError',
          r.syncError,
          conditions,
        );
      }
      if (conditions.length) status.conditions = conditions;
      else delete status.conditions;
      if (r.full) status.reconciledAt = timestamp();
      status.controllerNamespace = this.options.namespace;
      app.status = status;
      if (r.refresh && app.metadata.annotations?.[REFRESH_ANNOTATION]) {
        delete app.metadata.annotations[REFRESH_ANNOTATION];
      }
    });
  }
}

/**
 * Adds (or keeps) a condition of `type` to `into`, keeping the
 * lastTransitionTime of the same condition in `previous`.
 */
function setCondition(
  previous: any[] | undefined,
  type: string,
  message: string,
  into: any[] = (previous ?? []).filter((c: any) => c.type !== type),
) {
  const same = (previous ?? []).find(
    (c: any) => c.type === type && c.message === message,
  );
  return [
    ...into,
    {
      type,
      message,
      lastTransitionTime: same?.lastTransitionTime ?? timestamp(),
    },
  ];
}
