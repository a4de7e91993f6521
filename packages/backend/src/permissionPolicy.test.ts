import { AuthorizeResult } from '@backstage/plugin-permission-common';
import {
  progressionPromotionApprovePermission,
  progressionPromotionCreatePermission,
  progressionReleaseCreatePermission,
  progressionRollbackPermission,
  progressionWindowOverridePermission,
} from '@internal/backstage-plugin-progression-common';
import { ProgressionDemoPolicy } from './permissionPolicy';

const policy = new ProgressionDemoPolicy();
const jane = {
  identity: {
    type: 'user' as const,
    userEntityRef: 'user:default/jane',
    ownershipEntityRefs: ['user:default/jane', 'group:default/team-payments'],
  },
  info: {
    userEntityRef: 'user:default/jane',
    ownershipEntityRefs: ['user:default/jane', 'group:default/team-payments'],
  },
  token: 'token',
  credentials: {} as any,
} as any;

describe('ProgressionDemoPolicy', () => {
  it.each([
    ['promote', progressionPromotionCreatePermission],
    ['roll back', progressionRollbackPermission],
  ])('lets only owners %s', async (_, permission) => {
    const decision = await policy.handle({ permission }, jane);
    expect(decision).toMatchObject({
      result: AuthorizeResult.CONDITIONAL,
      pluginId: 'catalog',
      resourceType: 'catalog-entity',
      conditions: {
        rule: 'IS_ENTITY_OWNER',
        params: {
          claims: ['user:default/jane', 'group:default/team-payments'],
        },
      },
    });
  });

  it.each([
    ['register releases', progressionReleaseCreatePermission],
    ['request promotions', progressionPromotionCreatePermission],
  ])(
    'lets CI (no user) %s, and people only for what they own',
    async (_, permission) => {
      expect(await policy.handle({ permission })).toEqual({
        result: AuthorizeResult.ALLOW,
      });
      expect((await policy.handle({ permission }, jane)).result).toBe(
        AuthorizeResult.CONDITIONAL,
      );
    },
  );

  it('does not let CI roll back', async () => {
    expect(
      await policy.handle({ permission: progressionRollbackPermission }),
    ).toMatchObject({ result: AuthorizeResult.DENY });
  });

  it('leaves who may approve to the stage configuration', async () => {
    expect(
      await policy.handle(
        { permission: progressionPromotionApprovePermission },
        jane,
      ),
    ).toEqual({ result: AuthorizeResult.ALLOW });
  });

  it('lets only release managers override a closed window, never CI', async () => {
    const permission = progressionWindowOverridePermission;
    expect(await policy.handle({ permission }, jane)).toEqual({
      result: AuthorizeResult.DENY,
    });
    expect(await policy.handle({ permission })).toEqual({
      result: AuthorizeResult.DENY,
    });
    const olivia = {
      ...jane,
      info: {
        userEntityRef: 'user:default/olivia',
        ownershipEntityRefs: [
          'user:default/olivia',
          'group:default/release-managers',
        ],
      },
    };
    expect(await policy.handle({ permission }, olivia)).toEqual({
      result: AuthorizeResult.ALLOW,
    });
  });
});
