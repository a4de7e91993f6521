import { ObjectService, randomSuffix } from '../api/ObjectService';
import { RESOURCES, ResourceType } from '../api/resources';
import { KubeObject, StoreEvent } from '../store/Store';
import { behaviourOf } from './behaviour';
import { PodLogs } from './PodLogs';
import { computeHash, equalIgnoreHash } from './podTemplateHash';

const type = (plural: string) =>
  RESOURCES.find(r => r.plural === plural)! as ResourceType;
const DEPLOYMENTS = type('deployments');
const REPLICASETS = type('replicasets');
const PODS = type('pods');
const JOBS = type('jobs');

const REVISION = 'deployment.kubernetes.io/revision';
const REVISION_HISTORY = 'deployment.kubernetes.io/revision-history';
const DESIRED_REPLICAS = 'deployment.kubernetes.io/desired-replicas';
const MAX_REPLICAS = 'deployment.kubernetes.io/max-replicas';
// Annotations a Deployment does not copy to its ReplicaSets
// (annotationsToSkip in pkg/controller/deployment/util/deployment_util.go).
const SKIPPED_ANNOTATIONS = new Set([
  'kubectl.kubernetes.io/last-applied-configuration',
  REVISION,
  REVISION_HISTORY,
  DESIRED_REPLICAS,
  MAX_REPLICAS,
  'deprecated.deployment.rollback.to',
]);

export interface ControllerOptions {
  /** How long a pod takes to become ready, in milliseconds. */
  podReadyDelayMs: number;
  /** How long a Job's pod runs before it exits, in milliseconds. */
  jobRunMs: number;
  /** Called when a pod starts running, to start its workload. */
  onPodRunning?: (pod: KubeObject) => void;
  /** Called when a pod is deleted. */
  onPodDeleted?: (pod: KubeObject) => void;
}

type Key = string; // kind/namespace/name

const ownerOf = (o: KubeObject) =>
  o.metadata.ownerReferences?.find(r => r.controller);
const now = () => new Date().toISOString();

/** Resolves an int-or-percent against a total (intstr.GetScaledValueFromIntOrPercent). */
function scaled(
  value: number | string | undefined,
  total: number,
  roundUp: boolean,
): number {
  if (value === undefined) return 0;
  if (typeof value === 'number') return value;
  const m = /^(\d+)%$/.exec(value);
  if (!m) return Number(value) || 0;
  const exact = (Number(m[1]) * total) / 100;
  return roundUp ? Math.ceil(exact) : Math.floor(exact);
}

/** ResolveFenceposts in pkg/controller/deployment/util/deployment_util.go. */
function fenceposts(d: KubeObject): { surge: number; unavailable: number } {
  const desired = d.spec.replicas ?? 1;
  if (d.spec.strategy?.type === 'Recreate')
    return { surge: 0, unavailable: desired };
  const ru = d.spec.strategy?.rollingUpdate ?? {};
  const surge = scaled(ru.maxSurge ?? '25%', desired, true);
  let unavailable = scaled(ru.maxUnavailable ?? '25%', desired, false);
  if (surge === 0 && unavailable === 0) unavailable = 1;
  return { surge, unavailable: Math.min(unavailable, desired) };
}

const revisionOf = (rs: KubeObject) =>
  Number(rs.metadata.annotations?.[REVISION] ?? 0);
const isPodReady = (p: KubeObject) =>
  !p.metadata.deletionTimestamp &&
  (p.status?.conditions ?? []).some(
    (c: any) => c.type === 'Ready' && c.status === 'True',
  );
const isPodActive = (p: KubeObject) =>
  p.status?.phase !== 'Succeeded' &&
  p.status?.phase !== 'Failed' &&
  !p.metadata.deletionTimestamp;

/**
 * The controllers of kube-controller-manager and the kubelet, for the kinds
 * the plugins use. Work is queued by object key when anything it depends on
 * changes, or after a delay for time-based transitions (pods becoming ready,
 * progress deadlines, Jobs finishing).
 */
export class Controllers {
  private readonly queue = new Set<Key>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private scheduled = false;
  private stopped = false;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly objects: ObjectService,
    private readonly logs: PodLogs,
    private readonly options: ControllerOptions,
  ) {
    this.unsubscribe = objects.store.subscribe(e => this.onEvent(e));
  }

  stop() {
    this.stopped = true;
    this.unsubscribe();
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.queue.clear();
  }

  private get store() {
    return this.objects.store;
  }

  private enqueue(
    kind: string,
    namespace: string | undefined,
    name: string,
    delayMs = 0,
  ) {
    if (this.stopped) return;
    const key = `${kind}/${namespace ?? ''}/${name}`;
    if (delayMs > 0) {
      const t = setTimeout(() => {
        this.timers.delete(t);
        this.enqueue(kind, namespace, name);
      }, delayMs);
      t.unref?.();
      this.timers.add(t);
      return;
    }
    this.queue.add(key);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.drain());
    }
  }

  private drain() {
    this.scheduled = false;
    let budget = 2000;
    while (this.queue.size && budget-- > 0 && !this.stopped) {
      const key = this.queue.values().next().value as Key;
      this.queue.delete(key);
      const [kind, namespace, ...rest] = key.split('/');
      const name = rest.join('/');
      try {
        this.sync(kind, namespace || undefined, name);
      } catch (e) {
        // A failed sync is retried, as a controller's work queue does.
        this.enqueue(kind, namespace || undefined, name, 200);
      }
    }
    if (this.queue.size && !this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.drain());
    }
  }

  private onEvent(e: StoreEvent) {
    const o = e.object;
    const ns = o.metadata.namespace;
    const owner = ownerOf(o);
    switch (e.resource) {
      case 'deployments':
        if (e.type === 'DELETED') this.collect('replicasets', o);
        else this.enqueue('deployment', ns, o.metadata.name);
        break;
      case 'replicasets':
        if (e.type === 'DELETED') this.collect('pods', o);
        else this.enqueue('replicaset', ns, o.metadata.name);
        if (owner?.kind === 'Deployment')
          this.enqueue('deployment', ns, owner.name);
        break;
      case 'pods':
        if (e.type === 'DELETED') {
          this.logs.remove(ns ?? '', o.metadata.name);
          this.options.onPodDeleted?.(o);
        }
        if (owner?.kind === 'ReplicaSet')
          this.enqueue('replicaset', ns, owner.name);
        if (owner?.kind === 'Job') this.enqueue('job', ns, owner.name);
        break;
      case 'jobs':
        if (e.type === 'DELETED') this.collect('pods', o);
        else this.enqueue('job', ns, o.metadata.name);
        break;
      case 'namespaces':
        if (e.type === 'DELETED') this.deleteNamespaceContents(o.metadata.name);
        break;
      default:
    }
  }

  /** Garbage collection of an owner's dependents (background propagation). */
  private collect(plural: string, owner: KubeObject) {
    const t = type(plural);
    for (const d of this.store.list(plural, owner.metadata.namespace, o =>
      (o.metadata.ownerReferences ?? []).some(
        r => r.uid === owner.metadata.uid,
      ),
    )) {
      this.safely(() =>
        this.objects.delete(t, d.metadata.namespace, d.metadata.name),
      );
    }
  }

  private deleteNamespaceContents(namespace: string) {
    for (const r of RESOURCES.filter(x => x.namespaced)) {
      for (const o of this.store.list(r.plural, namespace)) {
        this.safely(() => this.objects.delete(r, namespace, o.metadata.name));
      }
    }
  }

  private safely(fn: () => void) {
    try {
      fn();
    } catch {
      // Already gone: nothing to do.
    }
  }

  private sync(kind: string, namespace: string | undefined, name: string) {
    const handlers: Record<string, (ns: string, n: string) => void> = {
      deployment: (ns, n) => this.syncDeployment(ns, n),
      replicaset: (ns, n) => this.syncReplicaSet(ns, n),
      pod: (ns, n) => this.syncPod(ns, n),
      job: (ns, n) => this.syncJob(ns, n),
    };
    handlers[kind]?.(namespace!, name);
  }

  // ---------------------------------------------------------------------
  // Deployment: pkg/controller/deployment/{sync,rolling,recreate,progress}.go

  private ownedReplicaSets(d: KubeObject) {
    return this.store
      .list(
        'replicasets',
        d.metadata.namespace,
        rs => ownerOf(rs)?.uid === d.metadata.uid,
      )
      .sort(
        (a, b) =>
          Date.parse(a.metadata.creationTimestamp!) -
            Date.parse(b.metadata.creationTimestamp!) ||
          a.metadata.name.localeCompare(b.metadata.name),
      );
  }

  private syncDeployment(namespace: string, name: string) {
    let d = this.store.get('deployments', namespace, name);
    if (!d) return;
    const all = this.ownedReplicaSets(d);
    const maxRevision = Math.max(0, ...all.map(revisionOf));
    let newRS = all.find(rs =>
      equalIgnoreHash(rs.spec.template, d!.spec.template),
    );
    const { surge, unavailable } = fenceposts(d);
    const desired = d.spec.replicas ?? 1;

    if (d.spec.paused) {
      // A paused Deployment only scales (sync.go sync()); no new rollout.
      if (newRS && newRS.spec.replicas !== desired && all.length === 1) {
        this.scaleReplicaSet(newRS, desired, d);
      }
      this.updateDeploymentStatus(d, newRS, all, false);
      return;
    }

    if (!newRS) {
      newRS = this.createNewReplicaSet(d, maxRevision + 1, all);
      all.push(newRS);
      this.setProgressing(
        d,
        'True',
        'NewReplicaSetCreated',
        `Created new replica set "${newRS.metadata.name}"`,
      );
    } else if (
      revisionOf(newRS) < maxRevision ||
      newRS.metadata.annotations?.[REVISION] === undefined
    ) {
      // A rollback: the old ReplicaSet is reused and moves to the newest
      // revision; its old number goes to revision-history (sync.go
      // getNewReplicaSet, SetNewReplicaSetAnnotations).
      newRS = this.updateReplicaSetAnnotations(d, newRS, maxRevision + 1);
      this.setProgressing(
        d,
        'True',
        'FoundNewReplicaSet',
        `Found new replica set "${newRS.metadata.name}"`,
      );
    } else {
      newRS = this.updateReplicaSetAnnotations(d, newRS, revisionOf(newRS));
    }
    d = this.store.get('deployments', namespace, name)!;
    const olds = all.filter(rs => rs.metadata.uid !== newRS!.metadata.uid);

    if (d.spec.strategy?.type === 'Recreate') {
      // recreate.go: scale old down to zero, wait for their pods to go, then up.
      const oldActive = olds.some(
        rs => (rs.spec.replicas ?? 0) > 0 || (rs.status?.replicas ?? 0) > 0,
      );
      for (const rs of olds)
        if ((rs.spec.replicas ?? 0) > 0) this.scaleReplicaSet(rs, 0, d);
      if (!oldActive && newRS.spec.replicas !== desired)
        this.scaleReplicaSet(newRS, desired, d);
    } else {
      // rolling.go reconcileNewReplicaSet.
      const totalReplicas = (rs: KubeObject[]) =>
        rs.reduce((n, x) => n + (x.spec.replicas ?? 0), 0);
      const newReplicas = newRS.spec.replicas ?? 0;
      if (newReplicas > desired) {
        newRS = this.scaleReplicaSet(newRS, desired, d);
      } else if (newReplicas < desired) {
        const current = totalReplicas(
          all.map(rs =>
            rs.metadata.uid === newRS!.metadata.uid ? newRS! : rs,
          ),
        );
        const scaleUp = Math.min(
          desired + surge - current,
          desired - newReplicas,
        );
        if (scaleUp > 0)
          newRS = this.scaleReplicaSet(newRS, newReplicas + scaleUp, d);
      }
      // rolling.go reconcileOldReplicaSets.
      const fresh = (rs: KubeObject) =>
        this.store.get('replicasets', namespace, rs.metadata.name) ?? rs;
      const current = [newRS, ...olds].map(fresh);
      const oldNow = current.slice(1);
      if (totalReplicas(oldNow) > 0) {
        const minAvailable = desired - unavailable;
        const nrs = current[0];
        const newUnavailable =
          (nrs.spec.replicas ?? 0) - (nrs.status?.availableReplicas ?? 0);
        let maxScaledDown =
          totalReplicas(current) - minAvailable - newUnavailable;
        if (maxScaledDown > 0) {
          // cleanupUnhealthyReplicas: first remove old pods that are not available.
          for (const rs of oldNow) {
            if (maxScaledDown <= 0) break;
            const unhealthy =
              (rs.spec.replicas ?? 0) - (rs.status?.availableReplicas ?? 0);
            const cut = Math.min(
              maxScaledDown,
              unhealthy,
              rs.spec.replicas ?? 0,
            );
            if (cut > 0) {
              this.scaleReplicaSet(rs, (rs.spec.replicas ?? 0) - cut, d);
              maxScaledDown -= cut;
            }
          }
          // scaleDownOldReplicaSetsForRollingUpdate.
          const after = [nrs, ...oldNow].map(fresh);
          const available = after.reduce(
            (n, x) => n + (x.status?.availableReplicas ?? 0),
            0,
          );
          let toScaleDown = available - minAvailable;
          for (const rs of after.slice(1)) {
            if (toScaleDown <= 0) break;
            const r = rs.spec.replicas ?? 0;
            if (r === 0) continue;
            const cut = Math.min(r, toScaleDown);
            this.scaleReplicaSet(rs, r - cut, d);
            toScaleDown -= cut;
          }
        }
      }
    }

    const latest = this.ownedReplicaSets(
      this.store.get('deployments', namespace, name)!,
    );
    const latestNew = latest.find(
      rs => rs.metadata.uid === newRS!.metadata.uid,
    );
    this.cleanupOldReplicaSets(d, latest, latestNew);
    this.updateDeploymentStatus(
      this.store.get('deployments', namespace, name)!,
      latestNew,
      latest,
      true,
    );
  }

  private createNewReplicaSet(
    d: KubeObject,
    revision: number,
    existing: KubeObject[],
  ): KubeObject {
    let collisionCount = d.status?.collisionCount ?? 0;
    for (;;) {
      const hash = computeHash(d.spec.template, collisionCount);
      const rsName = `${d.metadata.name}-${hash}`;
      const clash = this.store.get('replicasets', d.metadata.namespace, rsName);
      if (
        clash &&
        !existing.some(
          rs =>
            rs.metadata.uid === clash.metadata.uid &&
            equalIgnoreHash(rs.spec.template, d.spec.template),
        )
      ) {
        collisionCount++;
        continue;
      }
      const template = structuredClone(d.spec.template);
      template.metadata = {
        ...template.metadata,
        labels: { ...template.metadata?.labels, 'pod-template-hash': hash },
      };
      const selector = structuredClone(d.spec.selector);
      selector.matchLabels = {
        ...selector.matchLabels,
        'pod-template-hash': hash,
      };
      const { surge } = fenceposts(d);
      const rs: KubeObject = {
        metadata: {
          name: rsName,
          namespace: d.metadata.namespace,
          labels: { ...template.metadata.labels },
          annotations: {
            ...this.copiedAnnotations(d),
            [REVISION]: String(revision),
            [DESIRED_REPLICAS]: String(d.spec.replicas ?? 1),
            [MAX_REPLICAS]: String((d.spec.replicas ?? 1) + surge),
          },
          ownerReferences: [
            {
              apiVersion: 'apps/v1',
              kind: 'Deployment',
              name: d.metadata.name,
              uid: d.metadata.uid!,
              controller: true,
              blockOwnerDeletion: true,
            },
          ],
        },
        spec: {
          replicas: 0,
          minReadySeconds: d.spec.minReadySeconds ?? 0,
          selector,
          template,
        },
      };
      if (collisionCount !== (d.status?.collisionCount ?? 0)) {
        this.recordCollisionCount(d, collisionCount);
      }
      return this.objects.create(REPLICASETS, rs, d.metadata.namespace);
    }
  }

  private recordCollisionCount(d: KubeObject, collisionCount: number) {
    this.objects.mutate(
      DEPLOYMENTS,
      d.metadata.namespace,
      d.metadata.name,
      o => {
        o.status = { ...o.status, collisionCount };
      },
      'status',
    );
  }

  private copiedAnnotations(d: KubeObject) {
    return Object.fromEntries(
      Object.entries(d.metadata.annotations ?? {}).filter(
        ([k]) => !SKIPPED_ANNOTATIONS.has(k),
      ),
    );
  }

  /** SetNewReplicaSetAnnotations and the Deployment's own revision annotation. */
  private updateReplicaSetAnnotations(
    d: KubeObject,
    rs: KubeObject,
    revision: number,
  ): KubeObject {
    const old = rs.metadata.annotations?.[REVISION];
    const wanted: Record<string, string> = {
      ...rs.metadata.annotations,
      ...this.copiedAnnotations(d),
      [REVISION]: String(revision),
    };
    if (old && old !== String(revision)) {
      const history = rs.metadata.annotations?.[REVISION_HISTORY];
      wanted[REVISION_HISTORY] = history ? `${history},${old}` : old;
    }
    // change-cause follows the Deployment (it is removed when the Deployment has none).
    if (!d.metadata.annotations?.['kubernetes.io/change-cause']) {
      delete wanted['kubernetes.io/change-cause'];
    }
    let result = rs;
    if (
      JSON.stringify(wanted) !== JSON.stringify(rs.metadata.annotations ?? {})
    ) {
      result = this.objects.mutate(
        REPLICASETS,
        rs.metadata.namespace,
        rs.metadata.name,
        o => {
          o.metadata.annotations = wanted;
        },
      );
    }
    if (d.metadata.annotations?.[REVISION] !== String(revision)) {
      this.objects.mutate(
        DEPLOYMENTS,
        d.metadata.namespace,
        d.metadata.name,
        o => {
          o.metadata.annotations = {
            ...o.metadata.annotations,
            [REVISION]: String(revision),
          };
        },
      );
    }
    return result;
  }

  private scaleReplicaSet(
    rs: KubeObject,
    replicas: number,
    d: KubeObject,
  ): KubeObject {
    const { surge } = fenceposts(d);
    return this.objects.mutate(
      REPLICASETS,
      rs.metadata.namespace,
      rs.metadata.name,
      o => {
        o.spec.replicas = replicas;
        o.metadata.annotations = {
          ...o.metadata.annotations,
          [DESIRED_REPLICAS]: String(d.spec.replicas ?? 1),
          [MAX_REPLICAS]: String((d.spec.replicas ?? 1) + surge),
        };
      },
    );
  }

  /** cleanupDeployment in sync.go: keep revisionHistoryLimit old ReplicaSets. */
  private cleanupOldReplicaSets(
    d: KubeObject,
    all: KubeObject[],
    newRS?: KubeObject,
  ) {
    const limit = d.spec.revisionHistoryLimit ?? 10;
    const old = all
      .filter(rs => rs.metadata.uid !== newRS?.metadata.uid)
      .filter(
        rs => (rs.spec.replicas ?? 0) === 0 && (rs.status?.replicas ?? 0) === 0,
      )
      .sort((a, b) => revisionOf(a) - revisionOf(b));
    const excess = old.length - limit;
    for (const rs of old.slice(0, Math.max(0, excess))) {
      this.safely(() =>
        this.objects.delete(
          REPLICASETS,
          rs.metadata.namespace,
          rs.metadata.name,
        ),
      );
    }
  }

  private setProgressing(
    d: KubeObject,
    status: string,
    reason: string,
    message: string,
  ) {
    this.objects.mutate(
      DEPLOYMENTS,
      d.metadata.namespace,
      d.metadata.name,
      o => {
        o.status = {
          ...o.status,
          conditions: upsertCondition(o.status?.conditions, {
            type: 'Progressing',
            status,
            reason,
            message,
          }),
        };
      },
      'status',
    );
  }

  private updateDeploymentStatus(
    d: KubeObject,
    newRS: KubeObject | undefined,
    all: KubeObject[],
    rollingOut: boolean,
  ) {
    const desired = d.spec.replicas ?? 1;
    const { unavailable } = fenceposts(d);
    const sum = (f: (rs: KubeObject) => number) =>
      all.reduce((n, rs) => n + f(rs), 0);
    const replicas = sum(rs => rs.status?.replicas ?? 0);
    const updatedReplicas = newRS?.status?.replicas ?? 0;
    const readyReplicas = sum(rs => rs.status?.readyReplicas ?? 0);
    const availableReplicas = sum(rs => rs.status?.availableReplicas ?? 0);
    const previous = d.status ?? {};
    let conditions = upsertCondition(
      previous.conditions,
      availableReplicas >= desired - unavailable
        ? {
            type: 'Available',
            status: 'True',
            reason: 'MinimumReplicasAvailable',
            message: 'Deployment has minimum availability.',
          }
        : {
            type: 'Available',
            status: 'False',
            reason: 'MinimumReplicasUnavailable',
            message: 'Deployment does not have minimum availability.',
          },
    );

    // progress.go syncRolloutStatus.
    const rsName = newRS?.metadata.name ?? d.metadata.name;
    const current = conditions.find((c: any) => c.type === 'Progressing');
    const complete =
      updatedReplicas === desired &&
      replicas === desired &&
      availableReplicas === desired &&
      (newRS?.spec?.replicas ?? 0) === desired;
    const deadline = d.spec.progressDeadlineSeconds;
    let recheckMs: number | undefined;
    if (d.spec.paused) {
      conditions = upsertCondition(conditions, {
        type: 'Progressing',
        status: 'Unknown',
        reason: 'DeploymentPaused',
        message: 'Deployment is paused',
      });
    } else if (rollingOut && complete) {
      conditions = upsertCondition(conditions, {
        type: 'Progressing',
        status: 'True',
        reason: 'NewReplicaSetAvailable',
        message: `ReplicaSet "${rsName}" has successfully progressed.`,
      });
    } else if (rollingOut) {
      const progressed =
        updatedReplicas > (previous.updatedReplicas ?? 0) ||
        readyReplicas > (previous.readyReplicas ?? 0) ||
        availableReplicas > (previous.availableReplicas ?? 0) ||
        replicas - updatedReplicas <
          (previous.replicas ?? 0) - (previous.updatedReplicas ?? 0);
      if (
        progressed ||
        !current ||
        current.reason === 'NewReplicaSetAvailable'
      ) {
        conditions = upsertCondition(
          conditions,
          {
            type: 'Progressing',
            status: 'True',
            reason: 'ReplicaSetUpdated',
            message: `ReplicaSet "${rsName}" is progressing.`,
          },
          true,
        );
      } else if (
        current.reason !== 'ProgressDeadlineExceeded' &&
        deadline !== undefined
      ) {
        const since = Date.parse(current.lastUpdateTime);
        const remaining = since + deadline * 1000 - Date.now();
        if (remaining <= 0) {
          conditions = upsertCondition(conditions, {
            type: 'Progressing',
            status: 'False',
            reason: 'ProgressDeadlineExceeded',
            message: `ReplicaSet "${rsName}" has timed out progressing.`,
          });
        } else {
          recheckMs = Math.min(remaining + 10, 1000);
        }
      }
    }
    const status = {
      ...previous,
      observedGeneration: d.metadata.generation,
      replicas,
      updatedReplicas,
      readyReplicas,
      availableReplicas,
      unavailableReplicas: Math.max(0, desired - availableReplicas),
      conditions,
    };
    for (const k of [
      'replicas',
      'updatedReplicas',
      'readyReplicas',
      'availableReplicas',
      'unavailableReplicas',
    ] as const) {
      if (status[k] === 0) delete (status as any)[k];
    }
    this.objects.mutate(
      DEPLOYMENTS,
      d.metadata.namespace,
      d.metadata.name,
      o => {
        o.status = status;
      },
      'status',
    );
    if (recheckMs !== undefined)
      this.enqueue(
        'deployment',
        d.metadata.namespace,
        d.metadata.name,
        recheckMs,
      );
  }

  // ---------------------------------------------------------------------
  // ReplicaSet: pkg/controller/replicaset/replica_set.go manageReplicas

  private syncReplicaSet(namespace: string, name: string) {
    const rs = this.store.get('replicasets', namespace, name);
    if (!rs) return;
    const pods = this.store.list(
      'pods',
      namespace,
      p => ownerOf(p)?.uid === rs.metadata.uid && isPodActive(p),
    );
    const want = rs.spec.replicas ?? 0;
    if (pods.length < want) {
      for (let i = pods.length; i < want; i++)
        this.createPod(rs, 'ReplicaSet', rs.spec.template);
    } else if (pods.length > want) {
      // Delete the least useful first: not ready, then the newest.
      const victims = pods
        .sort(
          (a, b) =>
            Number(isPodReady(a)) - Number(isPodReady(b)) ||
            Date.parse(b.metadata.creationTimestamp!) -
              Date.parse(a.metadata.creationTimestamp!),
        )
        .slice(0, pods.length - want);
      for (const p of victims)
        this.safely(() =>
          this.objects.delete(PODS, namespace, p.metadata.name),
        );
    }
    const current = this.store.list(
      'pods',
      namespace,
      p => ownerOf(p)?.uid === rs.metadata.uid && isPodActive(p),
    );
    const ready = current.filter(isPodReady).length;
    const status = {
      replicas: current.length,
      fullyLabeledReplicas: current.length,
      readyReplicas: ready,
      availableReplicas: ready,
      observedGeneration: rs.metadata.generation,
    };
    for (const k of [
      'fullyLabeledReplicas',
      'readyReplicas',
      'availableReplicas',
    ] as const) {
      if (status[k] === 0) delete (status as any)[k];
    }
    this.objects.mutate(
      REPLICASETS,
      namespace,
      name,
      o => {
        o.status = status;
      },
      'status',
    );
  }

  private createPod(
    owner: KubeObject,
    kind: 'ReplicaSet' | 'Job',
    template: any,
    extraLabels: Record<string, string> = {},
  ) {
    const pod: KubeObject = {
      metadata: {
        name: `${owner.metadata.name}-${randomSuffix()}`,
        namespace: owner.metadata.namespace,
        labels: { ...template?.metadata?.labels, ...extraLabels },
        annotations: { ...template?.metadata?.annotations },
        ownerReferences: [
          {
            apiVersion: kind === 'Job' ? 'batch/v1' : 'apps/v1',
            kind,
            name: owner.metadata.name,
            uid: owner.metadata.uid!,
            controller: true,
            blockOwnerDeletion: true,
          },
        ],
      },
      spec: { ...structuredClone(template.spec), nodeName: 'simulator-node' },
    };
    const created = this.objects.create(PODS, pod, owner.metadata.namespace);
    const containers = (created.spec.containers ?? []) as any[];
    this.objects.mutate(
      PODS,
      created.metadata.namespace,
      created.metadata.name,
      o => {
        o.status = {
          phase: 'Pending',
          conditions: [
            {
              type: 'PodScheduled',
              status: 'True',
              lastProbeTime: null,
              lastTransitionTime: now(),
            },
          ],
          hostIP: '10.0.0.1',
          qosClass: 'BestEffort',
          containerStatuses: containers.map(c => ({
            name: c.name,
            image: c.image,
            imageID: '',
            ready: false,
            restartCount: 0,
            started: false,
            state: { waiting: { reason: 'ContainerCreating' } },
          })),
        };
      },
      'status',
    );
    this.enqueue(
      'pod',
      created.metadata.namespace,
      created.metadata.name,
      this.options.podReadyDelayMs,
    );
    return created;
  }

  // ---------------------------------------------------------------------
  // The kubelet: pods start, become ready, and Job pods exit.

  private syncPod(namespace: string, name: string) {
    const pod = this.store.get('pods', namespace, name);
    if (!pod || !isPodActive(pod)) return;
    const containers = (pod.spec.containers ?? []) as any[];
    const behaviour = behaviourOf(containers.map(c => c.image));
    const isJobPod = ownerOf(pod)?.kind === 'Job';
    if (pod.status?.phase === 'Pending') {
      const started = now();
      const ready = isJobPod || behaviour.becomesReady;
      const updated = this.objects.mutate(
        PODS,
        namespace,
        name,
        o => {
          o.status = {
            ...o.status,
            phase: 'Running',
            startTime: started,
            podIP: `10.244.${Math.floor(Math.random() * 250)}.${
              Math.floor(Math.random() * 250) + 2
            }`,
            conditions: [
              {
                type: 'Initialized',
                status: 'True',
                lastProbeTime: null,
                lastTransitionTime: started,
              },
              {
                type: 'Ready',
                status: ready ? 'True' : 'False',
                lastProbeTime: null,
                lastTransitionTime: started,
                ...(!ready && {
                  reason: 'ContainersNotReady',
                  message: 'containers with unready status',
                }),
              },
              {
                type: 'ContainersReady',
                status: ready ? 'True' : 'False',
                lastProbeTime: null,
                lastTransitionTime: started,
              },
              {
                type: 'PodScheduled',
                status: 'True',
                lastProbeTime: null,
                lastTransitionTime: started,
              },
            ],
            containerStatuses: containers.map(c => ({
              name: c.name,
              image: c.image,
              imageID: `simulator://${c.image}`,
              ready,
              restartCount: 0,
              started: true,
              state: { running: { startedAt: started } },
            })),
          };
        },
        'status',
      );
      for (const c of containers) {
        this.logs.append(
          namespace,
          name,
          c.name,
          `${started} starting ${c.image}${
            c.command ? ` command=${JSON.stringify(c.command)}` : ''
          }${c.args ? ` args=${JSON.stringify(c.args)}` : ''}`,
        );
        if (!ready)
          this.logs.append(
            namespace,
            name,
            c.name,
            `${started} readiness probe failing: the image's tag asks for an unready pod`,
          );
      }
      if (isJobPod) this.enqueue('pod', namespace, name, this.options.jobRunMs);
      else this.options.onPodRunning?.(updated);
      return;
    }
    if (isJobPod && pod.status?.phase === 'Running') {
      const finished = now();
      const succeeded = behaviour.jobSucceeds;
      for (const c of containers) {
        if (succeeded) {
          this.logs.append(
            namespace,
            name,
            c.name,
            `${finished} applying migrations... done`,
          );
          this.logs.append(
            namespace,
            name,
            c.name,
            `${finished} completed successfully`,
          );
        } else {
          this.logs.append(
            namespace,
            name,
            c.name,
            `${finished} ERROR: migration failed: relation "orders" is locked (the image's tag asks for a failing job)`,
          );
        }
      }
      this.objects.mutate(
        PODS,
        namespace,
        name,
        o => {
          o.status = {
            ...o.status,
            phase: succeeded ? 'Succeeded' : 'Failed',
            conditions: (o.status.conditions ?? []).map((c: any) =>
              c.type === 'Ready' || c.type === 'ContainersReady'
                ? {
                    ...c,
                    status: 'False',
                    reason: 'PodCompleted',
                    lastTransitionTime: finished,
                  }
                : c,
            ),
            containerStatuses: (o.status.containerStatuses ?? []).map(
              (cs: any) => ({
                ...cs,
                ready: false,
                started: false,
                state: {
                  terminated: {
                    exitCode: succeeded ? 0 : 1,
                    reason: succeeded ? 'Completed' : 'Error',
                    startedAt: o.status.startTime,
                    finishedAt: finished,
                  },
                },
              }),
            ),
          };
        },
        'status',
      );
    }
  }

  // ---------------------------------------------------------------------
  // Job: pkg/controller/job/job_controller.go, one completion at a time.

  private syncJob(namespace: string, name: string) {
    const job = this.store.get('jobs', namespace, name);
    if (!job) return;
    const done = (job.status?.conditions ?? []).some(
      (c: any) =>
        (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True',
    );
    if (done || job.spec.suspend) return;
    const pods = this.store.list(
      'pods',
      namespace,
      p => ownerOf(p)?.uid === job.metadata.uid,
    );
    const succeeded = pods.filter(p => p.status?.phase === 'Succeeded').length;
    const failed = pods.filter(p => p.status?.phase === 'Failed').length;
    const active = pods.filter(isPodActive).length;
    const completions = job.spec.completions ?? 1;
    const backoffLimit = job.spec.backoffLimit ?? 6;
    const startTime = job.status?.startTime ?? now();
    let conditions = job.status?.conditions ?? [];
    let completionTime: string | undefined;

    if (succeeded >= completions) {
      completionTime = now();
      conditions = upsertCondition(conditions, {
        type: 'SuccessCriteriaMet',
        status: 'True',
        reason: 'CompletionsReached',
        message: 'Reached expected number of succeeded pods',
      });
      conditions = upsertCondition(conditions, {
        type: 'Complete',
        status: 'True',
        reason: 'CompletionsReached',
        message: 'Reached expected number of succeeded pods',
      });
    } else if (failed > backoffLimit) {
      conditions = upsertCondition(conditions, {
        type: 'FailureTarget',
        status: 'True',
        reason: 'BackoffLimitExceeded',
        message: 'Job has reached the specified backoff limit',
      });
      conditions = upsertCondition(conditions, {
        type: 'Failed',
        status: 'True',
        reason: 'BackoffLimitExceeded',
        message: 'Job has reached the specified backoff limit',
      });
    } else if (active === 0) {
      this.createPod(job, 'Job', job.spec.template);
    }
    const current = this.store.list(
      'pods',
      namespace,
      p => ownerOf(p)?.uid === job.metadata.uid,
    );
    const status: Record<string, unknown> = {
      ...job.status,
      startTime,
      active: current.filter(isPodActive).length || undefined,
      succeeded: succeeded || undefined,
      failed: failed || undefined,
      ready: current.filter(isPodReady).length,
      terminating: 0,
      uncountedTerminatedPods: {},
      ...(completionTime && { completionTime }),
      ...(conditions.length && { conditions }),
    };
    for (const k of Object.keys(status))
      if (status[k] === undefined) delete status[k];
    this.objects.mutate(
      JOBS,
      namespace,
      name,
      o => {
        o.status = status;
      },
      'status',
    );
  }
}

function upsertCondition(
  conditions: any[] | undefined,
  c: { type: string; status: string; reason: string; message: string },
  touch = false,
) {
  const list = [...(conditions ?? [])];
  const t = now();
  const i = list.findIndex(x => x.type === c.type);
  if (i === -1) {
    list.push({ ...c, lastUpdateTime: t, lastTransitionTime: t });
  } else {
    const prev = list[i];
    const same =
      prev.status === c.status &&
      prev.reason === c.reason &&
      prev.message === c.message;
    list[i] = {
      ...c,
      lastUpdateTime: same && !touch ? prev.lastUpdateTime : t,
      lastTransitionTime:
        prev.status === c.status ? prev.lastTransitionTime : t,
    };
  }
  return list;
}
