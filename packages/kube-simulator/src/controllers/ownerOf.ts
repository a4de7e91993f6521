import { KubeObject } from '../store/Store';

/** The owner reference of the controller that manages `o` (metav1.GetControllerOf). */
export const ownerOf = (o: KubeObject) =>
  o.metadata.ownerReferences?.find(r => r.controller);
