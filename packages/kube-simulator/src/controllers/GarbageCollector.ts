import { ObjectService } from '../api/ObjectService';
import { findResource, RESOURCES, ResourceType } from '../api/resources';
import { KubeObject, StoreEvent } from '../store/Store';
import { deleteIfPresent } from './deleteIfPresent';

const PODS = findResource('', 'v1', 'pods')!;
const REPLICASETS = findResource('apps', 'v1', 'replicasets')!;

/**
 * The garbage collector, with background propagation: an owner's dependents
 * go when it goes, and a namespace's contents when the namespace does.
 */
export class GarbageCollector {
  constructor(private readonly objects: ObjectService) {}

  onEvent(e: StoreEvent) {
    if (e.type !== 'DELETED') return;
    const o = e.object;
    switch (e.resource) {
      case 'deployments':
        this.collect(REPLICASETS, o);
        break;
      case 'replicasets':
      case 'jobs':
        this.collect(PODS, o);
        break;
      case 'namespaces':
        this.deleteNamespaceContents(o.metadata.name);
        break;
      default:
    }
  }

  private collect(dependents: ResourceType, owner: KubeObject) {
    for (const d of this.objects.store.list(
      dependents.plural,
      owner.metadata.namespace,
      o =>
        (o.metadata.ownerReferences ?? []).some(
          r => r.uid === owner.metadata.uid,
        ),
    )) {
      deleteIfPresent(
        this.objects,
        dependents,
        d.metadata.namespace,
        d.metadata.name,
      );
    }
  }

  private deleteNamespaceContents(namespace: string) {
    for (const r of RESOURCES.filter(x => x.namespaced && !x.derive)) {
      for (const o of this.objects.store.list(r.plural, namespace)) {
        deleteIfPresent(this.objects, r, namespace, o.metadata.name);
      }
    }
  }
}
