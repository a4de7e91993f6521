import { PromotionStep } from '../database/PromotionStore';
import { windowFacts } from './windowSteps';

const step = (s: Partial<PromotionStep>): PromotionStep =>
  ({ kind: 'transition', name: 'x', status: 'passed', ...s } as PromotionStep);

describe('windowFacts', () => {
  it('knows nothing of a promotion that never met a window', () => {
    expect(windowFacts([step({ toState: 'preflight' })])).toEqual({
      overridden: false,
      waitedBeforeDeploy: false,
    });
  });

  it('reads the last wait, the last window reason and an override', () => {
    const steps = [
      step({ fromState: 'pending', toState: 'waiting' }),
      step({
        kind: 'window',
        name: 'closed',
        reason: 'production is closed: deny',
      }),
      step({
        kind: 'window',
        name: 'opened',
        reason: 'production is open',
        fromState: 'waiting',
        toState: 'preflight',
      }),
      step({ fromState: 'deploying', toState: 'waiting' }),
      step({
        kind: 'window',
        name: 'closed',
        reason: 'production is closed: alert',
      }),
    ];
    expect(windowFacts(steps)).toEqual({
      overridden: false,
      waitedBeforeDeploy: true,
      lastWindowReason: 'production is closed: alert',
    });
    expect(
      windowFacts([
        ...steps,
        step({
          kind: 'window',
          name: 'override',
          reason: 'window overridden by olivia: hotfix',
          fromState: 'waiting',
          toState: 'deploying',
        }),
      ]),
    ).toMatchObject({
      overridden: true,
      lastWindowReason: 'window overridden by olivia: hotfix',
    });
  });
});
