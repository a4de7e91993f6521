import { ObjectService } from '../api/ObjectService';
import { findResource } from '../api/resources';
import { StoreEvent } from '../store/Store';
import { createPod } from './createPod';
import { isPodActive } from './isPodActive';
import { isPodReady } from './isPodReady';
import { ownerOf } from './ownerOf';
import { upsertCondition } from './upsertCondition';
import { WorkQueue } from './WorkQueue';

const JOBS = findResource('batch', 'v1', 'jobs')!;

/**
 * The Job controller (pkg/controller/job/job_controller.go), one completion
 * at a time: a new pod after each failure until `backoffLimit`, then
 * `Complete` or `Failed`.
 */
export class JobController {
  constructor(
    private readonly objects: ObjectService,
    private readonly queue: WorkQueue,
    private readonly podStartDelayMs: number,
  ) {
    queue.handle('jobs', (ns, n) => this.sync(ns, n));
  }

  onEvent(e: StoreEvent) {
    const o = e.object;
    if (e.resource === 'jobs' && e.type !== 'DELETED') {
      this.queue.enqueue('jobs', o.metadata.namespace, o.metadata.name);
    }
    const owner = ownerOf(o);
    if (e.resource === 'pods' && owner?.kind === 'Job') {
      this.queue.enqueue('jobs', o.metadata.namespace, owner.name);
    }
  }

  private sync(namespace: string, name: string) {
    const job = this.objects.store.get('jobs', namespace, name);
    if (!job) return;
    const done = (job.status?.conditions ?? []).some(
      (c: any) =>
        (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True',
    );
    if (done || job.spec.suspend) return;
    const pods = this.objects.store.list(
      'pods',
      namespace,
      p => ownerOf(p)?.uid === job.metadata.uid,
    );
    const succeeded = pods.filter(p => p.status?.phase === 'Succeeded').length;
    const failed = pods.filter(p => p.status?.phase === 'Failed').length;
    const active = pods.filter(isPodActive).length;
    const completions = job.spec.completions ?? 1;
    const backoffLimit = job.spec.backoffLimit ?? 6;
    const startTime = job.status?.startTime ?? new Date().toISOString();
    let conditions = job.status?.conditions ?? [];
    let completionTime: string | undefined;

    if (succeeded >= completions) {
      completionTime = new Date().toISOString();
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
      createPod(this.objects, this.queue, job, 'Job', this.podStartDelayMs);
    }
    const current = this.objects.store.list(
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
