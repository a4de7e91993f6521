import { createPermission } from '@backstage/plugin-permission-common';

/**
 * The resource type of every Progression permission: the catalog entity the
 * promotion belongs to, so that a policy can allow, say, its owners only.
 */
const resourceType = 'catalog-entity';

/**
 * Request a promotion of an entity's release into a stage.
 *
 * @public
 */
export const progressionPromotionCreatePermission = createPermission({
  name: 'progression.promotion.create',
  attributes: { action: 'create' },
  resourceType,
});

/**
 * Approve or reject a promotion that awaits approval.
 *
 * @public
 */
export const progressionPromotionApprovePermission = createPermission({
  name: 'progression.promotion.approve',
  attributes: { action: 'update' },
  resourceType,
});

/**
 * Cancel an active promotion.
 *
 * @public
 */
export const progressionPromotionCancelPermission = createPermission({
  name: 'progression.promotion.cancel',
  attributes: { action: 'update' },
  resourceType,
});

/**
 * Roll a stage's workload back to an earlier release.
 *
 * @public
 */
export const progressionRollbackPermission = createPermission({
  name: 'progression.rollback',
  attributes: { action: 'update' },
  resourceType,
});

/**
 * Register a release of an entity (what CI does).
 *
 * @public
 */
export const progressionReleaseCreatePermission = createPermission({
  name: 'progression.release.create',
  attributes: { action: 'create' },
  resourceType,
});

/**
 * Let a promotion that waits for a closed stage (a deny window, outside
 * the allow windows, a freeze alert) go ahead anyway: break-glass, with a
 * reason, audited and notified.
 *
 * @public
 */
export const progressionWindowOverridePermission = createPermission({
  name: 'progression.window.override',
  attributes: { action: 'update' },
  resourceType,
});

/**
 * Every Progression permission, for the permissions registry.
 *
 * @public
 */
export const progressionPermissions = [
  progressionPromotionCreatePermission,
  progressionPromotionApprovePermission,
  progressionPromotionCancelPermission,
  progressionRollbackPermission,
  progressionReleaseCreatePermission,
  progressionWindowOverridePermission,
];
