import { createBackendModule } from '@backstage/backend-plugin-api';
import {
  AuthorizeResult,
  PolicyDecision,
} from '@backstage/plugin-permission-common';
import {
  PermissionPolicy,
  PolicyQuery,
  PolicyQueryUser,
} from '@backstage/plugin-permission-node';
import { policyExtensionPoint } from '@backstage/plugin-permission-node/alpha';
import { progressionPolicyDecision } from '@progression-io/backstage-plugin-progression-node';

/**
 * The demo's policy: Progression's rules (see progressionPolicyDecision:
 * owners promote, cancel and roll back; CI registers releases and requests
 * promotions; the stage's approvers approve), with the release managers as
 * the only ones who may override a closed promotion window. Everything else
 * is allowed, as in the template's allow-all policy.
 */
export class ProgressionDemoPolicy implements PermissionPolicy {
  async handle(
    request: PolicyQuery,
    user?: PolicyQueryUser,
  ): Promise<PolicyDecision> {
    return (
      progressionPolicyDecision(request, user, {
        windowOverriders: ['group:default/release-managers'],
      }) ?? { result: AuthorizeResult.ALLOW }
    );
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
