import { ObjectService } from '../api/ObjectService';
import { findResource } from '../api/resources';
import { KubeObject, StoreEvent } from '../store/Store';
import { deleteIfPresent } from './deleteIfPresent';
import { ownerOf } from './ownerOf';
import { computeHash, equalIgnoreHash } from './podTemplateHash';
import { upsertCondition } from './upsertCondition';
import { WorkQueue } from './WorkQueue';

const DEPLOYMENTS = findResource('apps', 'v1', 'deployments')!;
const REPLICASETS = findResource('apps', 'v1', 'replicasets')!;

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

/**
 * The Deployment controller (upstream's pkg/controller/deployment/
 * {sync,rolling,recreate,progress}.go): a ReplicaSet per pod template,
 * scaled up and down as the strategy allows, and the Deployment's revision,
 * status and conditions.
 */
export class DeploymentController {
  constructor(
    private readonly objects: ObjectService,
    private readonly queue: WorkQueue,
  ) {
    queue.handle('deployments', (ns, n) => this.sync(ns, n));
  }

  onEvent(e: StoreEvent) {
    const o = e.object;
    if (e.resource === 'deployments' && e.type !== 'DELETED') {
      this.queue.enqueue('deployments', o.metadata.namespace, o.metadata.name);
    }
    const owner = ownerOf(o);
    if (e.resource === 'replicasets' && owner?.kind === 'Deployment') {
      this.queue.enqueue('deployments', o.metadata.namespace, owner.name);
    }
  }

  private ownedReplicaSets(d: KubeObject) {
    return this.objects.store
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

  private sync(namespace: string, name: string) {
    let d = this.objects.store.get('deployments', namespace, name);
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
    d = this.objects.store.get('deployments', namespace, name)!;
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
        this.objects.store.get('replicasets', namespace, rs.metadata.name) ??
        rs;
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
      this.objects.store.get('deployments', namespace, name)!,
    );
    const latestNew = latest.find(
      rs => rs.metadata.uid === newRS!.metadata.uid,
    );
    this.cleanupOldReplicaSets(d, latest, latestNew);
    this.updateDeploymentStatus(
      this.objects.store.get('deployments', namespace, name)!,
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
      const clash = this.objects.store.get(
        'replicasets',
        d.metadata.namespace,
        rsName,
      );
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
      deleteIfPresent(
        this.objects,
        REPLICASETS,
        rs.metadata.namespace,
        rs.metadata.name,
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
      this.queue.enqueue(
        'deployments',
        d.metadata.namespace,
        d.metadata.name,
        recheckMs,
      );
  }
}
