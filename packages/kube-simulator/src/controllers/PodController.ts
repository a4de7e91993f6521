import { ObjectService } from '../api/ObjectService';
import { findResource } from '../api/resources';
import { KubeObject, StoreEvent } from '../store/Store';
import { behaviourOf, jobContainerExit } from './behaviour';
import { missingConfigRef } from './missingConfigRef';
import { nextContainerState } from './nextContainerState';
import { isPodActive } from './isPodActive';
import { ownerOf } from './ownerOf';
import { PodLogs } from './PodLogs';
import { WorkQueue } from './WorkQueue';

const PODS = findResource('', 'v1', 'pods')!;

export interface PodControllerOptions {
  /** How long a pod takes to start, and a crash-looping container runs, in ms. */
  podReadyDelayMs: number;
  /** The kubelet's first back-off (10 s on a real node), in ms. */
  backOffMs: number;
  /** How long a Job's pod runs before it exits, in milliseconds. */
  jobRunMs: number;
  /** Called when a pod starts running, to start its workload. */
  onPodRunning?: (pod: KubeObject) => void;
  /** Called when a pod is deleted. */
  onPodDeleted?: (pod: KubeObject) => void;
}

/** The key of a Job pod's exit among a pod's pending transitions. */
const POD_EXIT = '';

/**
 * The kubelet of the one simulated node: the pods handed to it start, or
 * fail to as their images and references ask (see behaviour.ts and
 * nextContainerState), become ready (or not), crash and restart with
 * back-off; Job pods exit after `jobRunMs` with their containers' logs
 * written. Status is reported as the kubelet reports it: waiting reasons,
 * last termination states, restart counts, `ContainersReady` and `Ready`.
 */
export class PodController {
  /**
   * What the kubelet keeps in memory per pod uid and container: when its
   * next transition is due and its back-off count.
   */
  private readonly pending = new Map<
    string,
    Map<string, { due?: number; backOffs: number }>
  >();

  constructor(
    private readonly objects: ObjectService,
    private readonly queue: WorkQueue,
    private readonly logs: PodLogs,
    private readonly options: PodControllerOptions,
  ) {
    queue.handle('pods', (ns, n) => this.sync(ns, n));
  }

  onEvent(e: StoreEvent) {
    if (e.resource === 'pods' && e.type === 'DELETED') {
      this.logs.remove(
        e.object.metadata.namespace ?? '',
        e.object.metadata.name,
      );
      this.pending.delete(e.object.metadata.uid ?? '');
      this.options.onPodDeleted?.(e.object);
    }
  }

  private sync(namespace: string, name: string) {
    const pod = this.objects.store.get('pods', namespace, name);
    if (!pod || !isPodActive(pod)) return;
    const containers = (pod.spec.containers ?? []) as any[];
    const isJobPod = ownerOf(pod)?.kind === 'Job';
    const uid = pod.metadata.uid ?? '';
    let pending = this.pending.get(uid);
    if (!pending) {
      pending = new Map();
      this.pending.set(uid, pending);
    }
    const now = new Date();
    // Timers may fire a little before Date.now() reaches the due time.
    const isDue = (key: string) => {
      const due = pending!.get(key)?.due;
      return due !== undefined && due <= now.getTime() + 5;
    };
    if (isJobPod && pod.status?.phase === 'Running') {
      if (isDue(POD_EXIT)) this.exitJobPod(pod);
      return;
    }
    const first = !pod.status?.startTime;
    if (!first && !containers.some(c => isDue(c.name))) {
      // Woken before anything was due: sleep until the earliest is.
      const next = Math.min(
        ...containers.map(c => pending!.get(c.name)?.due ?? Infinity),
      );
      if (next !== Infinity)
        this.queue.enqueue('pods', namespace, name, next - now.getTime());
      return;
    }

    const started = now.toISOString();
    const previous = new Map<string, any>(
      (pod.status?.containerStatuses ?? []).map((s: any) => [s.name, s]),
    );
    const lines: Array<[string, string]> = [];
    const statuses = containers.map(c => {
      const current = previous.get(c.name);
      if (!first && !isDue(c.name)) return current;
      const step = nextContainerState({
        pod: { name, namespace, uid },
        container: c,
        status: current,
        behaviour: behaviourOf(c.image),
        configError: missingConfigRef(this.objects.store, namespace, c),
        backOffs: pending!.get(c.name)?.backOffs ?? 0,
        isJob: isJobPod,
        now,
        timing: {
          runMs: this.options.podReadyDelayMs,
          backOffMs: this.options.backOffMs,
        },
      });
      pending!.set(c.name, {
        backOffs: step.backOffs,
        due:
          step.dueInMs === undefined ? undefined : now.getTime() + step.dueInMs,
      });
      if (step.dueInMs !== undefined)
        this.queue.enqueue('pods', namespace, name, step.dueInMs);
      for (const line of step.log) lines.push([c.name, line]);
      return step.status;
    });

    // getPhase: Pending until every container has been started once; a
    // restarting container keeps the pod Running.
    const running = statuses.every(
      s => s?.state?.running || s?.lastState?.terminated,
    );
    const unready = statuses.filter(s => !s?.ready).map(s => s.name);
    const wasRunning = pod.status?.phase === 'Running';
    const updated = this.objects.mutate(
      PODS,
      namespace,
      name,
      o => {
        const conditions = (o.status?.conditions ?? []) as any[];
        const condition = (type: string, status: string, extra = {}) => {
          const before = conditions.find(c => c.type === type);
          return {
            type,
            status,
            lastProbeTime: null,
            lastTransitionTime:
              before?.status === status ? before.lastTransitionTime : started,
            ...extra,
          };
        };
        const readiness = unready.length
          ? {
              reason: 'ContainersNotReady',
              message: `containers with unready status: [${unready.join(' ')}]`,
            }
          : {};
        const ready = unready.length ? 'False' : 'True';
        o.status = {
          ...o.status,
          phase: running ? 'Running' : 'Pending',
          startTime: o.status?.startTime ?? started,
          podIP:
            o.status?.podIP ??
            `10.244.${Math.floor(Math.random() * 250)}.${
              Math.floor(Math.random() * 250) + 2
            }`,
          conditions: [
            condition('Initialized', 'True'),
            condition('Ready', ready, readiness),
            condition('ContainersReady', ready, readiness),
            condition('PodScheduled', 'True'),
          ],
          containerStatuses: statuses,
        };
      },
      'status',
    );
    for (const [container, line] of lines)
      this.logs.append(namespace, name, container, line);
    if (!running || wasRunning) return;
    if (isJobPod) {
      pending.set(POD_EXIT, {
        backOffs: 0,
        due: now.getTime() + this.options.jobRunMs,
      });
      this.queue.enqueue('pods', namespace, name, this.options.jobRunMs);
    } else this.options.onPodRunning?.(updated);
  }

  private exitJobPod(pod: KubeObject) {
    const namespace = pod.metadata.namespace ?? '';
    const name = pod.metadata.name;
    const containers = (pod.spec.containers ?? []) as any[];
    this.pending.delete(pod.metadata.uid ?? '');
    const finished = new Date().toISOString();
    const succeeded = containers.every(c => behaviourOf(c.image).jobSucceeds);
    for (const c of containers) {
      for (const line of jobContainerExit(c.image, succeeded).log)
        this.logs.append(namespace, name, c.name, `${finished} ${line}`);
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
                  exitCode: jobContainerExit(cs.image, succeeded).exitCode,
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
