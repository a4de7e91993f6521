import { ContainerBehaviour } from './behaviour';

/** The kubelet's back-off for restarts and pulls, on a real node. */
const KUBELET_BACK_OFF_S = 10;
/** MaxContainerBackOff: the doubling stops at 300 s. */
const KUBELET_MAX_BACK_OFF_S = 300;

export interface ContainerTiming {
  /** How long a crash-looping container runs before it exits. */
  runMs: number;
  /** The first back-off, which stands for the kubelet's 10 s. */
  backOffMs: number;
}

export interface ContainerStep {
  /** The container's new entry of `status.containerStatuses`. */
  status: any;
  /** In how many ms its next transition is due; undefined when none is. */
  dueInMs?: number;
  /** How many back-offs the kubelet has recorded for it so far. */
  backOffs: number;
  /** What the container writes to its log. */
  log: string[];
}

/** The kubelet's n-th back-off (n ≥ 1), as Go prints a duration. */
function kubeletBackOff(n: number): string {
  const s = Math.min(KUBELET_BACK_OFF_S * 2 ** (n - 1), KUBELET_MAX_BACK_OFF_S);
  return s >= 60 ? `${Math.floor(s / 60)}m${s % 60}s` : `${s}s`;
}

/** The simulated n-th back-off: the kubelet's, scaled to `backOffMs`. */
function scaledBackOff(n: number, timing: ContainerTiming): number {
  return (
    timing.backOffMs *
    Math.min(2 ** (n - 1), KUBELET_MAX_BACK_OFF_S / KUBELET_BACK_OFF_S)
  );
}

/**
 * One step of the kubelet for one container whose transition is due
 * (pkg/kubelet/kuberuntime: EnsureImageExists, generateContainerConfig,
 * doBackOff), from its current status:
 *
 * - to start it, the image is pulled (a failing pull is `ErrImagePull`, then
 *   `ImagePullBackOff` until the pull back-off ends), its environment made
 *   (`CreateContainerConfigError` while a reference is missing, retried),
 *   then it runs;
 * - a crash-looping container exits 1; the first time it is restarted at
 *   once, after that it waits `CrashLoopBackOff` for a doubling back-off,
 *   capped as MaxContainerBackOff caps it (10 s … 5 min on a real node,
 *   `backOffMs` × 1 … 30 here; messages quote the real node's delays).
 *
 * Job containers do not crash-loop: their pods use the `fail` tags.
 */
export function nextContainerState(input: {
  pod: { name: string; namespace: string; uid: string };
  container: any;
  status: any;
  behaviour: ContainerBehaviour;
  configError?: string;
  backOffs: number;
  isJob: boolean;
  now: Date;
  timing: ContainerTiming;
}): ContainerStep {
  const { pod, container, status, behaviour, backOffs, now, timing } = input;
  const at = now.toISOString();
  const base = {
    name: container.name,
    image: container.image,
    imageID: status?.imageID ?? '',
    restartCount: status?.restartCount ?? 0,
    ...(status?.lastState && { lastState: status.lastState }),
  };
  const waiting = (reason: string, message: string) => ({
    ...base,
    ready: false,
    started: false,
    state: { waiting: { reason, message } },
  });
  const run = (restartCount: number, lastState?: unknown): ContainerStep => ({
    status: {
      ...base,
      imageID: `simulator://${container.image}`,
      restartCount,
      ...(lastState ? { lastState } : {}),
      ready: input.isJob || behaviour.becomesReady,
      started: true,
      state: { running: { startedAt: at } },
    },
    dueInMs: behaviour.crashes && !input.isJob ? timing.runMs : undefined,
    backOffs,
    log: [
      `${at} starting ${container.image}${
        container.command ? ` command=${JSON.stringify(container.command)}` : ''
      }${container.args ? ` args=${JSON.stringify(container.args)}` : ''}`,
      ...(!input.isJob && !behaviour.becomesReady && !behaviour.crashes
        ? [
            `${at} Readiness probe failed: HTTP probe failed with statuscode: 503 (the image's tag asks for an unready pod)`,
          ]
        : []),
    ],
  });

  const reason = status?.state?.waiting?.reason;
  if (status?.state?.running) {
    if (!behaviour.crashes || input.isJob) return { status, backOffs, log: [] };
    const lastState = {
      terminated: {
        exitCode: 1,
        reason: 'Error',
        startedAt: status.state.running.startedAt,
        finishedAt: at,
      },
    };
    const log = [
      `${at} fatal: cannot serve, exiting with status 1 (the image's tag asks for a crash loop)`,
    ];
    // doBackOff: no back-off entry yet, so the first restart is immediate.
    if (backOffs === 0) {
      const restarted = run(base.restartCount + 1, lastState);
      return {
        ...restarted,
        backOffs: 1,
        log: [...log, ...restarted.log],
      };
    }
    return {
      status: {
        ...waiting(
          'CrashLoopBackOff',
          `back-off ${kubeletBackOff(backOffs)} restarting failed container=${
            container.name
          } pod=${pod.name}_${pod.namespace}(${pod.uid})`,
        ),
        lastState,
      },
      dueInMs: scaledBackOff(backOffs, timing),
      backOffs,
      log,
    };
  }
  if (reason === 'CrashLoopBackOff') {
    return { ...run(base.restartCount + 1), backOffs: backOffs + 1 };
  }
  if (reason === 'ErrImagePull') {
    return {
      status: waiting(
        'ImagePullBackOff',
        `Back-off pulling image "${container.image}"`,
      ),
      dueInMs: scaledBackOff(backOffs, timing),
      backOffs,
      log: [],
    };
  }
  if (behaviour.pullFails) {
    const ref = String(container.image);
    return {
      status: waiting(
        'ErrImagePull',
        `rpc error: code = NotFound desc = failed to pull and unpack image "${ref}": failed to resolve reference "${ref}": ${ref}: not found`,
      ),
      // The pod worker's next sync, which finds the pull backing off.
      dueInMs: timing.backOffMs / 2,
      backOffs: backOffs + 1,
      log: [],
    };
  }
  if (input.configError) {
    return {
      status: waiting('CreateContainerConfigError', input.configError),
      dueInMs: timing.backOffMs,
      backOffs,
      log: [],
    };
  }
  return run(base.restartCount);
}
