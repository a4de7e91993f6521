import { KubeObject } from '../store/Store';

/*
 * Argo CD's decisions as plain functions over objects: whether a live object
 * matches its desired state, the built-in health checks
 * (gitops-engine pkg/health), and resource tracking.
 */

export type SyncCode = 'Synced' | 'OutOfSync' | 'Unknown';
export type HealthCode =
  | 'Healthy'
  | 'Suspended'
  | 'Progressing'
  | 'Missing'
  | 'Degraded'
  | 'Unknown';

export interface Health {
  status: HealthCode;
  message?: string;
}

/** The annotation Argo CD 3.x tracks resources by (its default tracking method). */
export const TRACKING_ANNOTATION = 'argocd.argoproj.io/tracking-id';
/** The label Argo CD's label tracking (2.x's default) uses. */
export const INSTANCE_LABEL = 'app.kubernetes.io/instance';

/** `<app>:<group>/<Kind>:<namespace>/<name>`, Argo CD's tracking id. */
export function trackingId(
  app: string,
  group: string,
  kind: string,
  namespace: string | undefined,
  name: string,
) {
  return `${app}:${group}/${kind}:${namespace ?? ''}/${name}`;
}

/**
 * The application an object belongs to by its tracking annotation, when
 * that annotation names the object itself (a copied annotation does not
 * make a copy part of the application, as in Argo CD).
 */
export function trackedBy(o: KubeObject): string | undefined {
  const id = o.metadata.annotations?.[TRACKING_ANNOTATION];
  if (!id) return undefined;
  const m = /^([^:]+):([^/:]*)\/([^:]+):([^/]*)\/(.+)$/.exec(id);
  if (!m) return undefined;
  const [, app, group, kind, namespace, name] = m;
  const [apiGroup] = (o.apiVersion ?? '').includes('/')
    ? (o.apiVersion ?? '').split('/')
    : [''];
  const same =
    group === apiGroup &&
    kind === o.kind &&
    namespace === (o.metadata.namespace ?? '') &&
    name === o.metadata.name;
  return same ? app : undefined;
}

/**
 * Whether every field set in `desired` has the same value in `live`
 * (objects: key by key; arrays: same length, element by element). Fields
 * only the live object has (server defaults, status) do not matter.
 *
 * Real Argo CD diffs with a three-way merge (or a server-side dry run), so a
 * field removed from Git but still set live is a difference there; here it
 * is not, except inside arrays.
 */
export function isSubset(desired: unknown, live: unknown): boolean {
  if (desired === null || desired === undefined) {
    return live === null || live === undefined;
  }
  if (Array.isArray(desired)) {
    return (
      Array.isArray(live) &&
      live.length === desired.length &&
      desired.every((d, i) => isSubset(d, live[i]))
    );
  }
  if (typeof desired === 'object') {
    if (!live || typeof live !== 'object' || Array.isArray(live)) return false;
    return Object.entries(desired as Record<string, unknown>).every(([k, v]) =>
      isSubset(v, (live as Record<string, unknown>)[k]),
    );
  }
  return desired === live;
}

/**
 * Whether a live object is in its desired state: its kind, its desired
 * labels and annotations, and every other desired field but status.
 * Metadata the server sets (uid, resourceVersion, generation, …) is ignored.
 */
export function isSynced(desired: KubeObject, live: KubeObject): boolean {
  const { metadata, status: _status, ...rest } = desired;
  const { metadata: liveMetadata, status: _liveStatus, ...liveRest } = live;
  return (
    isSubset(metadata.labels ?? {}, liveMetadata.labels ?? {}) &&
    isSubset(metadata.annotations ?? {}, liveMetadata.annotations ?? {}) &&
    isSubset(rest, liveRest)
  );
}

const condition = (o: KubeObject, type: string) =>
  (o.status?.conditions ?? []).find((c: any) => c.type === type);

/**
 * The health of a live object: gitops-engine's Deployment check
 * (pkg/health/health_deployment.go), word for word; any other kind is
 * Healthy when present (Argo CD reports no health at all for kinds without
 * a check, such as ConfigMaps, which does not change the app's health).
 */
export function resourceHealth(live: KubeObject | undefined): Health {
  if (!live) return { status: 'Missing' };
  if (live.kind !== 'Deployment') return { status: 'Healthy' };
  const spec = live.spec ?? {};
  const st = live.status ?? {};
  if (spec.paused) {
    return { status: 'Suspended', message: 'Deployment is paused' };
  }
  if ((live.metadata.generation ?? 0) > (st.observedGeneration ?? 0)) {
    return {
      status: 'Progressing',
      message:
        'Waiting for rollout to finish: observed deployment generation less than desired generation',
    };
  }
  const replicas = spec.replicas ?? 1;
  const updated = st.updatedReplicas ?? 0;
  const current = st.replicas ?? 0;
  const available = st.availableReplicas ?? 0;
  if (condition(live, 'Progressing')?.reason === 'ProgressDeadlineExceeded') {
    return {
      status: 'Degraded',
      message: `Deployment "${live.metadata.name}" exceeded its progress deadline`,
    };
  }
  if (updated < replicas) {
    return {
      status: 'Progressing',
      message: `Waiting for rollout to finish: ${updated} out of ${replicas} new replicas have been updated...`,
    };
  }
  if (current > updated) {
    return {
      status: 'Progressing',
      message: `Waiting for rollout to finish: ${
        current - updated
      } old replicas are pending termination...`,
    };
  }
  if (available < updated) {
    return {
      status: 'Progressing',
      message: `Waiting for rollout to finish: ${available} of ${updated} updated replicas are available...`,
    };
  }
  return { status: 'Healthy' };
}

/** gitops-engine's order, best first; an app is as healthy as its worst resource. */
const HEALTH_ORDER: HealthCode[] = [
  'Healthy',
  'Suspended',
  'Progressing',
  'Missing',
  'Degraded',
  'Unknown',
];

export function worstHealth(healths: Health[]): Health {
  let worst: Health = { status: 'Healthy' };
  for (const h of healths) {
    if (HEALTH_ORDER.indexOf(h.status) > HEALTH_ORDER.indexOf(worst.status)) {
      worst = h;
    }
  }
  return worst;
}

/** The container images of a workload or pod (`status.summary.images`). */
export function imagesOf(o: KubeObject): string[] {
  let podSpec = o.spec?.template?.spec;
  if (o.kind === 'Pod') podSpec = o.spec;
  if (o.kind === 'CronJob') podSpec = o.spec?.jobTemplate?.spec?.template?.spec;
  return [...(podSpec?.initContainers ?? []), ...(podSpec?.containers ?? [])]
    .map((c: any) => c.image)
    .filter((i: unknown): i is string => typeof i === 'string');
}

/** Argo CD's timestamps: RFC 3339, UTC, whole seconds. */
export function timestamp(at = new Date()): string {
  return at.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
