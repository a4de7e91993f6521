import {
  catalogConditions,
  createCatalogConditionalDecision,
} from '@backstage/plugin-catalog-backend/alpha';
import { AuthorizeResult } from '@backstage/plugin-permission-common';
import {
  progressionPromotionCreatePermission,
  progressionRollbackPermission,
  progressionWindowOverridePermission,
} from '@progression-io/backstage-plugin-progression-common';
import { ProgressionDemoPolicy } from './permissionPolicy';

const jane = {
  info: {
    userEntityRef: 'user:default/jane',
    ownershipEntityRefs: ['user:default/jane', 'group:default/team-payments'],
  },
} as any;

describe('ProgressionDemoPolicy', () => {
  it("asks the catalog whether the caller owns the entity, as the catalog's own helper does", async () => {
    const policy = new ProgressionDemoPolicy();
    for (const permission of [
      progressionPromotionCreatePermission,
      progressionRollbackPermission,
    ]) {
      expect(await policy.handle({ permission }, jane)).toEqual(
        createCatalogConditionalDecision(
          permission,
          catalogConditions.isEntityOwner({
            claims: jane.info.ownershipEntityRefs,
          }),
        ),
      );
    }
  });

  it('allows what is not Progression’s, as the allow-all policy does', async () => {
    const policy = new ProgressionDemoPolicy();
    expect(
      await policy.handle(
        {
          permission: {
            type: 'basic',
            name: 'catalog.entity.create',
            attributes: { action: 'create' },
          },
        },
        jane,
      ),
    ).toEqual({ result: AuthorizeResult.ALLOW });
  });

  it('lets the release managers, and only them, override a closed window', async () => {
    const policy = new ProgressionDemoPolicy();
    const permission = progressionWindowOverridePermission;
    expect((await policy.handle({ permission }, jane)).result).toBe(
      AuthorizeResult.DENY,
    );
    const olivia = {
      info: {
        userEntityRef: 'user:default/olivia',
        ownershipEntityRefs: [
          'user:default/olivia',
          'group:default/release-managers',
        ],
      },
    } as any;
    expect((await policy.handle({ permission }, olivia)).result).toBe(
      AuthorizeResult.ALLOW,
    );
  });
});
