import { NotAllowedError } from '@backstage/errors';

/**
 * The entity a Deployment belongs to, written by the first promotion that
 * changed it. An entity's own `backstage.io/kubernetes-id` says which
 * Deployment it means, and its owners may set it to anything: the
 * annotation keeps them from pointing it at another service's workload.
 */
export const ENTITY_REF_ANNOTATION = 'progression.backstage.io/entity-ref';

const sameRef = (a: string, b: string) =>
  a.toLocaleLowerCase('en-US') === b.toLocaleLowerCase('en-US');

/**
 * Why `entity` may not change the Deployment, or undefined when it may: it
 * is unbound (the first promotion adopts it) or bound to that entity.
 */
export function bindingRefusal(
  deployment: { name: string; namespace: string; entityRef?: string },
  entity: { entityRef: string; name: string },
): string | undefined {
  const owner = deployment.entityRef;
  if (!owner || sameRef(owner, entity.entityRef)) return undefined;
  return `Deployment ${deployment.name} in namespace ${deployment.namespace} belongs to ${owner} (annotation ${ENTITY_REF_ANNOTATION}); ${entity.entityRef} may not deploy to it — give ${entity.name} a backstage.io/kubernetes-id of its own`;
}

/**
 * Throws a NotAllowedError when the Deployment belongs to another entity:
 * no attempt will change that, so the promotion ends at once, before
 * anything changed.
 */
export function checkBinding(
  deployment: { name: string; namespace: string; entityRef?: string },
  entity: { entityRef: string; name: string },
): void {
  const refusal = bindingRefusal(deployment, entity);
  if (refusal) throw new NotAllowedError(refusal);
}
