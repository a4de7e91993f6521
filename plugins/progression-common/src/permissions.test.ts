import { isResourcePermission } from '@backstage/plugin-permission-common';
import { progressionPermissions } from './permissions';

describe('permissions', () => {
  it('are unique, named progression.*, and about catalog entities', () => {
    const names = progressionPermissions.map(p => p.name);
    expect(new Set(names).size).toBe(names.length);
    for (const permission of progressionPermissions) {
      expect(permission.name).toMatch(/^progression\.[a-z.]+$/);
      expect(isResourcePermission(permission, 'catalog-entity')).toBe(true);
    }
  });
});
