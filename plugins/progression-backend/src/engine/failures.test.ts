import { isPromotionMoved } from '@progression-io/backstage-plugin-progression-node';
import { PromotionMoved, StepInterrupted } from './failures';

describe('the reasons a step is aborted with', () => {
  // Gates and deployers live in other packages and only see the signal's
  // reason: what they read with isPromotionMoved must be what the engine
  // aborts with when a promotion is cancelled, and nothing else.
  it('a cancel is told apart from a shutdown or a lost claim', () => {
    expect(isPromotionMoved(new PromotionMoved('cancelled by jane'))).toBe(
      true,
    );
    expect(isPromotionMoved(new StepInterrupted('the backend stops'))).toBe(
      false,
    );
    expect(isPromotionMoved(new Error('lost the claim'))).toBe(false);
    expect(isPromotionMoved('PromotionMoved')).toBe(false);
    expect(isPromotionMoved(undefined)).toBe(false);
  });

  it('an abort in another copy of the class still reads as a cancel', () => {
    // Two copies of the package (a plug-in bundling its own) share no class.
    class Elsewhere extends Error {
      name = 'PromotionMoved';
    }
    expect(isPromotionMoved(new Elsewhere())).toBe(true);
  });
});
