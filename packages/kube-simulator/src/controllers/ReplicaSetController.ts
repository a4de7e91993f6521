import { ObjectService } from '../api/ObjectService';
import { findResource } from '../api/resources';
import { StoreEvent } from '../store/Store';
import { createPod } from './createPod';
import { deleteIfPresent } from './deleteIfPresent';
import { isPodActive } from './isPodActive';
import { isPodReady } from './isPodReady';
import { ownerOf } from './ownerOf';
import { WorkQueue } from './WorkQueue';

const PODS = findResource('', 'v1', 'pods')!;
const REPLICASETS = findResource('apps', 'v1', 'replicasets')!;

/**
 * The ReplicaSet controller (pkg/controller/replicaset/replica_set.go
 * manageReplicas): creates and deletes pods to match `replicas`.
 */
export class ReplicaSetController {
  constructor(
    private readonly objects: ObjectService,
    private readonly queue: WorkQueue,
    private readonly podStartDelayMs: number,
  ) {
    queue.handle('replicasets', (ns, n) => this.sync(ns, n));
  }

  onEvent(e: StoreEvent) {
    const o = e.object;
    if (e.resource === 'replicasets' && e.type !== 'DELETED') {
      this.queue.enqueue('replicasets', o.metadata.namespace, o.metadata.name);
    }
    const owner = ownerOf(o);
    if (e.resource === 'pods' && owner?.kind === 'ReplicaSet') {
      this.queue.enqueue('replicasets', o.metadata.namespace, owner.name);
    }
  }

  private sync(namespace: string, name: string) {
    const rs = this.objects.store.get('replicasets', namespace, name);
    if (!rs) return;
    const pods = this.objects.store.list(
      'pods',
      namespace,
      p => ownerOf(p)?.uid === rs.metadata.uid && isPodActive(p),
    );
    const want = rs.spec.replicas ?? 0;
    if (pods.length < want) {
      for (let i = pods.length; i < want; i++)
        createPod(
          this.objects,
          this.queue,
          rs,
          'ReplicaSet',
          this.podStartDelayMs,
        );
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
        deleteIfPresent(this.objects, PODS, namespace, p.metadata.name);
    }
    const current = this.objects.store.list(
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
}
