import {
  matchesLabelSelector,
  matchesSelectorObject,
  parseLabelSelector,
} from './labelSelector';

const labels = { app: 'web', tier: 'front', env: 'staging' };
const matches = (s: string) =>
  matchesLabelSelector(parseLabelSelector(s), labels);

describe('label selectors', () => {
  it.each([
    ['app=web', true],
    ['app==web', true],
    ['app!=web', false],
    ['app=web,tier=back', false],
    ['env in (dev,staging)', true],
    ['env notin (dev, staging)', false],
    ['tier', true],
    ['!tier', false],
    ['!legacy', true],
    ['app=web,env in (staging),!legacy', true],
    ['', true],
  ])('%s → %s', (selector, expected) => {
    expect(matches(selector)).toBe(expected);
  });

  it('refuses a malformed selector', () => {
    expect(() => parseLabelSelector('app=(x')).toThrow(/unable to parse/);
  });

  it('matches LabelSelector objects', () => {
    expect(
      matchesSelectorObject(
        {
          matchLabels: { app: 'web' },
          matchExpressions: [
            { key: 'env', operator: 'In', values: ['staging'] },
          ],
        },
        labels,
      ),
    ).toBe(true);
    expect(
      matchesSelectorObject(
        { matchExpressions: [{ key: 'tier', operator: 'DoesNotExist' }] },
        labels,
      ),
    ).toBe(false);
  });
});
