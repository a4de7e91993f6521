import { ObjectService } from '../api/ObjectService';
import { DeploymentController } from './DeploymentController';
import { GarbageCollector } from './GarbageCollector';
import { JobController } from './JobController';
import { PodController, PodControllerOptions } from './PodController';
import { PodLogs } from './PodLogs';
import { ReplicaSetController } from './ReplicaSetController';
import { WorkQueue } from './WorkQueue';

/**
 * The controllers of kube-controller-manager and the kubelet, for the kinds
 * the plugins use, over one work queue and one subscription to the store.
 */
export class Controllers {
  private readonly queue = new WorkQueue();
  private readonly unsubscribe: () => void;

  constructor(
    objects: ObjectService,
    logs: PodLogs,
    options: PodControllerOptions,
  ) {
    const { queue } = this;
    // Every event reaches them in this order: an owner's dependents are
    // deleted before anything is queued, and a ReplicaSet's sync is queued
    // before its Deployment's, which then reads the ReplicaSet's new status.
    const controllers = [
      new GarbageCollector(objects),
      new PodController(objects, queue, logs, options),
      new ReplicaSetController(objects, queue, options.podReadyDelayMs),
      new JobController(objects, queue, options.podReadyDelayMs),
      new DeploymentController(objects, queue),
    ];
    this.unsubscribe = objects.store.subscribe(e => {
      for (const c of controllers) c.onEvent(e);
    });
  }

  stop() {
    this.unsubscribe();
    this.queue.stop();
  }
}
