import { ObjectService } from '../api/ObjectService';
import { findResource } from '../api/resources';
import { KubeObject, StoreEvent } from '../store/Store';
import { behaviourOf, jobContainerExit } from './behaviour';
import { isPodActive } from './isPodActive';
import { ownerOf } from './ownerOf';
import { PodLogs } from './PodLogs';
import { WorkQueue } from './WorkQueue';

const PODS = findResource('', 'v1', 'pods')!;

export interface PodControllerOptions {
  /** How long a Job's pod runs before it exits, in milliseconds. */
  jobRunMs: number;
  /** Called when a pod starts running, to start its workload. */
  onPodRunning?: (pod: KubeObject) => void;
  /** Called when a pod is deleted. */
  onPodDeleted?: (pod: KubeObject) => void;
}

/**
 * The kubelet of the one simulated node: the pods handed to it start, become
 * ready (or not, as their images ask), and Job pods exit after `jobRunMs`
 * with their containers' logs written.
 */
export class PodController {
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
      this.options.onPodDeleted?.(e.object);
    }
  }

  private sync(namespace: string, name: string) {
    const pod = this.objects.store.get('pods', namespace, name);
    if (!pod || !isPodActive(pod)) return;
    const containers = (pod.spec.containers ?? []) as any[];
    const behaviour = behaviourOf(containers.map(c => c.image));
    const isJobPod = ownerOf(pod)?.kind === 'Job';
    if (pod.status?.phase === 'Pending') {
      const started = new Date().toISOString();
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
      if (isJobPod)
        this.queue.enqueue('pods', namespace, name, this.options.jobRunMs);
      else this.options.onPodRunning?.(updated);
      return;
    }
    if (isJobPod && pod.status?.phase === 'Running') {
      const finished = new Date().toISOString();
      const succeeded = behaviour.jobSucceeds;
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
}
