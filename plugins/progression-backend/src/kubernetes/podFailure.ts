import { V1ContainerStatus, V1Pod } from '@kubernetes/client-node';
import { RolloutResult } from '@progression-io/backstage-plugin-progression-node';

/** Restarts after which a CrashLoopBackOff is taken as the container's fate. */
const CRASH_LOOP_RESTARTS = 2;
/** Waiting reasons that mean the container cannot start without a change. */
const CANNOT_START = new Set([
  'CreateContainerConfigError',
  'CreateContainerError',
  'InvalidImageName',
]);
const CANNOT_PULL = new Set(['ErrImagePull', 'ImagePullBackOff']);
/** How much of the kubelet's message the result keeps. */
const MESSAGE_CHARS = 300;

export type PodFailure = Required<Pick<RolloutResult, 'message' | 'pod'>>;

// client-node gives dates as Date objects; a hand-made pod may hold strings.
const time = (t: Date | string | undefined) =>
  t === undefined ? NaN : new Date(t).getTime();
const createdAt = (p: V1Pod) => time(p.metadata?.creationTimestamp) || 0;

const clip = (text: string) =>
  text.length > MESSAGE_CHARS ? `${text.slice(0, MESSAGE_CHARS - 1)}…` : text;

function waitingFailure(
  pod: string,
  c: V1ContainerStatus,
  image: string,
): PodFailure | undefined {
  const reason = c.state?.waiting?.reason ?? '';
  const detail = c.state?.waiting?.message
    ? clip(c.state.waiting.message)
    : undefined;
  const restartCount = c.restartCount ?? 0;
  const failure = (message: string): PodFailure => ({
    message: `pod ${pod}: container ${c.name} ${message}`,
    pod: {
      name: pod,
      container: c.name,
      reason,
      ...(detail && { message: detail }),
      restartCount,
    },
  });
  if (reason === 'CrashLoopBackOff' && restartCount >= CRASH_LOOP_RESTARTS) {
    const last = c.lastState?.terminated;
    const exit = last
      ? ` (last exit code ${last.exitCode}${
          last.reason ? `, ${last.reason}` : ''
        })`
      : '';
    return failure(
      `is in CrashLoopBackOff after ${restartCount} restarts${exit}`,
    );
  }
  if (CANNOT_PULL.has(reason))
    return failure(
      `cannot pull image "${image}" (${reason}${detail ? `: ${detail}` : ''})`,
    );
  if (CANNOT_START.has(reason))
    return failure(`cannot start (${reason}${detail ? `: ${detail}` : ''})`);
  return undefined;
}

/**
 * Whether a rollout cannot succeed because of its new pods, without waiting
 * for the Deployment's progress deadline: a container waits for a reason
 * that does not heal by itself (a crash loop that already restarted
 * `CRASH_LOOP_RESTARTS` times, an image that cannot be pulled, a
 * configuration it cannot start with), or has been running without
 * becoming ready for longer than `readyTimeoutMs` (not checked when
 * undefined). The first such container of the oldest pod, in plain words
 * naming the pod, container and reason; undefined when there is none.
 */
export function podFailure(
  pods: V1Pod[],
  options: { now: number; readyTimeoutMs?: number },
): PodFailure | undefined {
  const live = pods
    .filter(p => !p.metadata?.deletionTimestamp)
    .sort(
      (a, b) =>
        createdAt(a) - createdAt(b) ||
        String(a.metadata?.name).localeCompare(String(b.metadata?.name)),
    );
  for (const p of live) {
    const name = p.metadata?.name ?? '';
    const images = new Map(
      [...(p.spec?.initContainers ?? []), ...(p.spec?.containers ?? [])].map(
        c => [c.name, c.image ?? ''],
      ),
    );
    for (const c of [
      ...(p.status?.initContainerStatuses ?? []),
      ...(p.status?.containerStatuses ?? []),
    ]) {
      const failure = waitingFailure(name, c, images.get(c.name) ?? c.image);
      if (failure) return failure;
    }
    if (options.readyTimeoutMs === undefined) continue;
    for (const c of p.status?.containerStatuses ?? []) {
      const startedAt = c.state?.running?.startedAt;
      if (c.ready || !startedAt) continue;
      const unreadyMs = options.now - time(startedAt);
      if (!(unreadyMs > options.readyTimeoutMs)) continue;
      const seconds = (ms: number) => `${Number((ms / 1000).toFixed(1))} s`;
      const condition = p.status?.conditions?.find(
        x => x.type === 'ContainersReady' && x.status === 'False',
      );
      return {
        message: `pod ${name}: container ${
          c.name
        } has not been ready for ${seconds(
          unreadyMs,
        )} since it started (readyTimeout ${seconds(
          options.readyTimeoutMs,
        )}; its readiness probe is failing)`,
        pod: {
          name,
          container: c.name,
          reason: 'NotReady',
          ...(condition?.message && { message: clip(condition.message) }),
          restartCount: c.restartCount ?? 0,
        },
      };
    }
  }
  return undefined;
}
