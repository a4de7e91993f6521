import { AuthorizeResult } from '@backstage/plugin-permission-common';
import {
  progressionPermissions,
  progressionPromotionApprovePermission,
  progressionWindowOverridePermission,
} from '@progression-io/backstage-plugin-progression-common';
import { progressionPolicyDecision } from './permissions';

const user = (ref: string, groups: string[] = []) =>
  ({
    info: { userEntityRef: ref, ownershipEntityRefs: [ref, ...groups] },
  } as any);
const jane = user('user:default/jane', ['group:default/team-payments']);
const olivia = user('user:default/olivia', ['group:default/release-managers']);

describe('progressionPolicyDecision', () => {
  const owned = progressionPermissions.filter(
    p =>
      p !== progressionPromotionApprovePermission &&
      p !== progressionWindowOverridePermission,
  );

  it.each(owned.map(p => [p.name, p]))(
    'lets only the owners of the entity %s',
    (_, permission) => {
      expect(progressionPolicyDecision({ permission }, jane)).toEqual({
        result: AuthorizeResult.CONDITIONAL,
        pluginId: 'catalog',
        resourceType: 'catalog-entity',
        conditions: {
          rule: 'IS_ENTITY_OWNER',
          resourceType: 'catalog-entity',
          params: {
            claims: ['user:default/jane', 'group:default/team-payments'],
          },
        },
      });
      // Without a user (no one signed in) nothing is allowed.
      expect(progressionPolicyDecision({ permission }, undefined)).toEqual({
        result: AuthorizeResult.DENY,
      });
    },
  );

  it("leaves who may approve to the stage's approvers, and asks a user", () => {
    const permission = progressionPromotionApprovePermission;
    expect(progressionPolicyDecision({ permission }, jane)?.result).toBe(
      AuthorizeResult.ALLOW,
    );
    expect(progressionPolicyDecision({ permission }, undefined)?.result).toBe(
      AuthorizeResult.DENY,
    );
  });

  it('lets only the named users and groups override a closed window; nobody by default', () => {
    const permission = progressionWindowOverridePermission;
    const options = { windowOverriders: ['group:default/release-managers'] };
    expect(
      progressionPolicyDecision({ permission }, olivia, options)?.result,
    ).toBe(AuthorizeResult.ALLOW);
    expect(
      progressionPolicyDecision({ permission }, jane, options)?.result,
    ).toBe(AuthorizeResult.DENY);
    expect(progressionPolicyDecision({ permission }, olivia)?.result).toBe(
      AuthorizeResult.DENY,
    );
  });

  it("answers nothing for a permission that is not Progression's", () => {
    expect(
      progressionPolicyDecision(
        {
          permission: {
            type: 'basic',
            name: 'catalog.entity.create',
            attributes: { action: 'create' },
          },
        },
        jane,
      ),
    ).toBeUndefined();
  });
});
