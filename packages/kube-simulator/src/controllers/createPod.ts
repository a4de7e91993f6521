import { ObjectService, randomSuffix } from '../api/ObjectService';
import { findResource } from '../api/resources';
import { KubeObject } from '../store/Store';
import { WorkQueue } from './WorkQueue';

const PODS = findResource('', 'v1', 'pods')!;

/**
 * Creates a pod from a ReplicaSet's or a Job's template (upstream's
 * PodControl), already bound to the one node and `Pending`, and hands it to
 * the kubelet through the queue, which starts it after `startDelayMs`.
 */
export function createPod(
  objects: ObjectService,
  queue: WorkQueue,
  owner: KubeObject,
  kind: 'ReplicaSet' | 'Job',
  startDelayMs: number,
) {
  const template = owner.spec.template;
  const pod: KubeObject = {
    metadata: {
      name: `${owner.metadata.name}-${randomSuffix()}`,
      namespace: owner.metadata.namespace,
      labels: { ...template?.metadata?.labels },
      annotations: { ...template?.metadata?.annotations },
      ownerReferences: [
        {
          apiVersion: kind === 'Job' ? 'batch/v1' : 'apps/v1',
          kind,
          name: owner.metadata.name,
          uid: owner.metadata.uid!,
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
    },
    spec: { ...structuredClone(template.spec), nodeName: 'simulator-node' },
  };
  const created = objects.create(PODS, pod, owner.metadata.namespace);
  const containers = (created.spec.containers ?? []) as any[];
  objects.mutate(
    PODS,
    created.metadata.namespace,
    created.metadata.name,
    o => {
      o.status = {
        phase: 'Pending',
        conditions: [
          {
            type: 'PodScheduled',
            status: 'True',
            lastProbeTime: null,
            lastTransitionTime: new Date().toISOString(),
          },
        ],
        hostIP: '10.0.0.1',
        qosClass: 'BestEffort',
        containerStatuses: containers.map(c => ({
          name: c.name,
          image: c.image,
          imageID: '',
          ready: false,
          restartCount: 0,
          started: false,
          state: { waiting: { reason: 'ContainerCreating' } },
        })),
      };
    },
    'status',
  );
  queue.enqueue(
    'pods',
    created.metadata.namespace,
    created.metadata.name,
    startDelayMs,
  );
}
