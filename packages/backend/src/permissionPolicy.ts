import { createBackendModule } from '@backstage/backend-plugin-api';
import {
  catalogConditions,
  createCatalogConditionalDecision,
} from '@backstage/plugin-catalog-backend/alpha';
import {
  AuthorizeResult,
  PolicyDecision,
  isPermission,
  isResourcePermission,
} from '@backstage/plugin-permission-common';
import {
  PermissionPolicy,
  PolicyQuery,
  PolicyQueryUser,
} from '@backstage/plugin-permission-node';
import { policyExtensionPoint } from '@backstage/plugin-permission-node/alpha';
import {
  progressionPromotionApprovePermission,
  progressionPromotionCancelPermission,
  progressionPromotionCreatePermission,
  progressionReleaseCreatePermission,
  progressionRollbackPermission,
  progressionWindowOverridePermission,
} from '@internal/backstage-plugin-progression-common';

const DENY: PolicyDecision = { result: AuthorizeResult.DENY };

const RELEASE_MANAGERS = 'group:default/release-managers';

const OWNER_ONLY = [
  progressionPromotionCancelPermission,
  progressionRollbackPermission,
];

/**
 * The demo's policy: an entity's owners promote, cancel and roll it back;
 * CI (a service, not a person) and owners register releases and request
 * promotions; anyone may
 * ask to approve, and Progression lets only the stage's configured
 * approvers (release managers for production) decide; only release
 * managers may override a closed promotion window. Everything else is
 * allowed, as in the template's allow-all policy.
 */
export class ProgressionDemoPolicy implements PermissionPolicy {
  async handle(
    request: PolicyQuery,
    user?: PolicyQueryUser,
  ): Promise<PolicyDecision> {
    const permission = request.permission;
    const ownedByCaller = () =>
      user && isResourcePermission(permission, 'catalog-entity')
        ? createCatalogConditionalDecision(
            permission,
            catalogConditions.isEntityOwner({
              claims: user?.info.ownershipEntityRefs ?? [],
            }),
          )
        : DENY;

    if (OWNER_ONLY.some(p => isPermission(permission, p))) {
      return ownedByCaller();
    }
    if (
      isPermission(permission, progressionReleaseCreatePermission) ||
      isPermission(permission, progressionPromotionCreatePermission)
    ) {
      // No user: a service such as CI with an external access token.
      return user ? ownedByCaller() : { result: AuthorizeResult.ALLOW };
    }
    if (isPermission(permission, progressionPromotionApprovePermission)) {
      return { result: AuthorizeResult.ALLOW };
    }
    // Break-glass past a closed promotion window: release managers only,
    // never a service.
    if (isPermission(permission, progressionWindowOverridePermission)) {
      return user?.info.ownershipEntityRefs.includes(RELEASE_MANAGERS)
        ? { result: AuthorizeResult.ALLOW }
        : DENY;
    }
    return { result: AuthorizeResult.ALLOW };
  }
}

/** Installs {@link ProgressionDemoPolicy} as the permission policy. */
export default createBackendModule({
  pluginId: 'permission',
  moduleId: 'progression-demo-policy',
  register(reg) {
    reg.registerInit({
      deps: { policy: policyExtensionPoint },
      async init({ policy }) {
        policy.setPolicy(new ProgressionDemoPolicy());
      },
    });
  },
});
