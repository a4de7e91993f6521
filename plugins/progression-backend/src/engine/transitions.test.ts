import {
  InvalidTransitionError,
  PROMOTION_STATES,
  PromotionEvent,
  PromotionState,
  TERMINAL_STATES,
  acceptedEvents,
  isTerminal,
  nextState,
} from './transitions';

const plain = { approvalRequired: false, automaticRollback: true };
const gated = { approvalRequired: true, automaticRollback: true };
const manual = { approvalRequired: false, automaticRollback: false };

function walk(
  events: PromotionEvent[],
  context = plain,
  from: PromotionState = 'pending',
) {
  return events.reduce<PromotionState>(
    (state, event) => nextState(state, event, context),
    from,
  );
}

describe('promotion transitions', () => {
  it('goes straight to the deploy without an approval', () => {
    expect(walk(['start', 'preflight-passed'])).toBe('deploying');
    expect(walk(['start', 'preflight-passed', 'deployed', 'verified'])).toBe(
      'succeeded',
    );
  });

  it('waits for an approval where the stage asks for one', () => {
    expect(walk(['start', 'preflight-passed'], gated)).toBe(
      'awaiting-approval',
    );
    expect(
      walk(
        ['start', 'preflight-passed', 'approved', 'deployed', 'verified'],
        gated,
      ),
    ).toBe('succeeded');
    expect(walk(['start', 'preflight-passed', 'rejected'], gated)).toBe(
      'rejected',
    );
    expect(walk(['start', 'preflight-passed', 'approval-expired'], gated)).toBe(
      'rejected',
    );
  });

  it('rolls back a failed deploy or verification, unless automatic rollback is off', () => {
    expect(
      walk(['start', 'preflight-passed', 'deployed', 'verify-failed']),
    ).toBe('rolling-back');
    expect(
      walk([
        'start',
        'preflight-passed',
        'deployed',
        'verify-failed',
        'rollback-succeeded',
      ]),
    ).toBe('rolled-back');
    expect(
      walk(['start', 'preflight-passed', 'deploy-failed', 'rollback-failed']),
    ).toBe('failed');
    expect(
      walk(['start', 'preflight-passed', 'deployed', 'verify-failed'], manual),
    ).toBe('failed');
    expect(walk(['start', 'preflight-passed', 'deploy-failed'], manual)).toBe(
      'failed',
    );
  });

  it('fails closed on a failed preflight', () => {
    expect(walk(['start', 'preflight-failed'], gated)).toBe('failed');
  });

  it('cancels before the deploy, and rolls back when cancelled after it', () => {
    expect(walk(['cancel'])).toBe('cancelled');
    expect(walk(['start', 'cancel'])).toBe('cancelled');
    expect(walk(['start', 'preflight-passed', 'cancel'], gated)).toBe(
      'cancelled',
    );
    expect(walk(['start', 'preflight-passed', 'cancel'])).toBe('rolling-back');
    expect(walk(['start', 'preflight-passed', 'deployed', 'cancel'])).toBe(
      'rolling-back',
    );
  });

  it('waits for a closed stage when it starts or just before the deploy, and goes on where it stopped', () => {
    expect(walk(['window-closed'])).toBe('waiting');
    expect(walk(['window-closed', 'window-opened'])).toBe('preflight');
    expect(walk(['window-closed', 'window-overridden'])).toBe('preflight');
    expect(walk(['window-closed', 'cancel'])).toBe('cancelled');
    // After the approval: back to the deploy, whose recheck decides
    // whether the approval still holds.
    expect(
      walk(['start', 'preflight-passed', 'approved', 'window-closed'], gated),
    ).toBe('waiting');
    const beforeDeploy = { ...gated, waitedBeforeDeploy: true };
    expect(nextState('waiting', 'window-opened', beforeDeploy)).toBe(
      'deploying',
    );
    expect(nextState('waiting', 'window-overridden', beforeDeploy)).toBe(
      'deploying',
    );
    expect(walk(['window-closed'], gated, 'deploying')).toBe('waiting');
    // Only before anything is deployed: no waiting while verifying.
    expect(() => nextState('verifying', 'window-closed', plain)).toThrow(
      InvalidTransitionError,
    );
    expect(() => nextState('preflight', 'window-opened', plain)).toThrow(
      InvalidTransitionError,
    );
  });

  it('refuses any event in a terminal state, and unknown events elsewhere', () => {
    for (const state of TERMINAL_STATES) {
      expect(acceptedEvents(state)).toEqual([]);
      expect(() => nextState(state, 'cancel', plain)).toThrow(
        InvalidTransitionError,
      );
    }
    expect(() => nextState('pending', 'approved', gated)).toThrow(
      'a promotion that is pending cannot be approved; only one that is awaiting-approval can',
    );
    expect(() => nextState('succeeded', 'cancel', gated)).toThrow(
      'a promotion that is succeeded cannot be cancelled; only one that is queued, pending, waiting, preflight, awaiting-approval, deploying or verifying can',
    );
    expect(() => nextState('verifying', 'deployed', gated)).toThrow(
      "a promotion that is verifying cannot take 'deployed'",
    );
    expect(() => nextState('rolling-back', 'cancel', plain)).toThrow(
      InvalidTransitionError,
    );
  });

  it('reaches a terminal state from every non-terminal state', () => {
    for (const state of PROMOTION_STATES.filter(s => !isTerminal(s))) {
      const reachable = new Set<PromotionState>([state]);
      let grew = true;
      while (grew) {
        grew = false;
        for (const s of [...reachable]) {
          for (const event of acceptedEvents(s)) {
            for (const context of [plain, gated, manual]) {
              const next = nextState(s, event, context);
              if (!reachable.has(next)) {
                reachable.add(next);
                grew = true;
              }
            }
          }
        }
      }
      expect([...reachable].some(isTerminal)).toBe(true);
    }
  });
});
