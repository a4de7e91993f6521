import {
  AuthorizeResult,
  ConditionalPolicyDecision,
  PolicyDecision,
  ResourcePermission,
  isPermission,
  isResourcePermission,
} from '@backstage/plugin-permission-common';
import {
  PolicyQuery,
  PolicyQueryUser,
} from '@backstage/plugin-permission-node';
import {
  progressionPromotionApprovePermission,
  progressionPromotionCancelPermission,
  progressionPromotionCreatePermission,
  progressionReleaseCreatePermission,
  progressionRollbackPermission,
  progressionWindowOverridePermission,
} from '@progression-io/backstage-plugin-progression-common';

/** How {@link progressionPolicyDecision} decides what only some may do. */
export interface ProgressionPolicyOptions {
  /**
   * Users and groups (entity refs, such as `group:default/release-managers`)
   * who may override a closed promotion window. Nobody when not given.
   */
  windowOverriders?: string[];
}

const DENY: PolicyDecision = { result: AuthorizeResult.DENY };
const ALLOW: PolicyDecision = { result: AuthorizeResult.ALLOW };

/**
 * Allowed when the caller owns the entity: the catalog's `IS_ENTITY_OWNER`
 * rule over the user's ownership claims, the decision the catalog backend's
 * `createCatalogConditionalDecision(permission,
 * catalogConditions.isEntityOwner({ claims }))` makes (named here so that
 * this package does not depend on the catalog backend).
 */
function ownedBy(
  permission: ResourcePermission<'catalog-entity'>,
  user: PolicyQueryUser,
): ConditionalPolicyDecision {
  return {
    result: AuthorizeResult.CONDITIONAL,
    pluginId: 'catalog',
    resourceType: permission.resourceType,
    conditions: {
      rule: 'IS_ENTITY_OWNER',
      resourceType: permission.resourceType,
      params: { claims: user.info.ownershipEntityRefs },
    },
  };
}

/**
 * Progression's part of an app's permission policy for people: an entity's
 * owners register releases, request promotions, cancel and roll back; anyone may ask to approve, and
 * Progression lets only the stage's configured approvers decide (never on
 * their own request); only `windowOverriders` override a closed promotion
 * window. Answers `undefined` for a permission that is not Progression's,
 * so that the app's policy decides it:
 *
 * ```ts
 * async handle(request: PolicyQuery, user?: PolicyQueryUser) {
 *   return (
 *     progressionPolicyDecision(request, user, {
 *       windowOverriders: ['group:default/release-managers'],
 *     }) ?? this.appDecision(request, user)
 *   );
 * }
 * ```
 *
 * A policy decides for users only: Backstage lets a service (CI with an
 * external access token) do whatever the token's `accessRestrictions`
 * allow, without asking the policy. Limit CI's token to
 * `progression.release.create` and `progression.promotion.create`.
 *
 * Without such a rule an allow-all policy lets every signed-in user
 * promote, roll back and cancel any entity's releases in every stage,
 * production included; only the approval step (its approvers come from the
 * stage's configuration) still holds.
 */
export function progressionPolicyDecision(
  request: PolicyQuery,
  user: PolicyQueryUser | undefined,
  options: ProgressionPolicyOptions = {},
): PolicyDecision | undefined {
  const { permission } = request;
  const is = (p: Parameters<typeof isPermission>[1]) =>
    isPermission(permission, p);
  const ownersOnly = () =>
    user && isResourcePermission(permission, 'catalog-entity')
      ? ownedBy(permission, user)
      : DENY;

  if (
    is(progressionPromotionCancelPermission) ||
    is(progressionRollbackPermission) ||
    is(progressionReleaseCreatePermission) ||
    is(progressionPromotionCreatePermission)
  ) {
    return ownersOnly();
  }
  if (is(progressionPromotionApprovePermission)) {
    // Progression itself checks that the caller is one of the stage's approvers.
    return user ? ALLOW : DENY;
  }
  if (is(progressionWindowOverridePermission)) {
    const overriders = options.windowOverriders ?? [];
    return user?.info.ownershipEntityRefs.some(ref => overriders.includes(ref))
      ? ALLOW
      : DENY;
  }
  return undefined;
}
