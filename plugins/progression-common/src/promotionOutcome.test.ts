import { promotionOutcome } from './promotionOutcome';

describe('promotionOutcome', () => {
  it("says what the tab's notices have always said", () => {
    expect(
      promotionOutcome({
        state: 'succeeded',
        version: '1.1.0',
        stageTitle: 'Staging',
      }),
    ).toEqual({
      summary: 'The promotion of 1.1.0 to Staging succeeded',
      text: 'The promotion of 1.1.0 to Staging succeeded.',
      tone: 'success',
    });
    expect(
      promotionOutcome({
        state: 'rolled-back',
        version: '1.4.0-slow',
        stageTitle: 'Staging',
        error: 'load: p95 612 ms > 300 ms',
      }).text,
    ).toBe(
      'The promotion of 1.4.0-slow to Staging failed and was rolled back: load: p95 612 ms > 300 ms',
    );
  });

  it('names the entity where the reader is not on its page, and keeps the reason apart', () => {
    const outcome = promotionOutcome({
      state: 'failed',
      version: '1.5.0-failing-migration',
      stageTitle: 'Production',
      entityName: 'payments-api',
      error: 'job migration failed',
    });
    expect(outcome).toEqual({
      summary:
        'The promotion of payments-api 1.5.0-failing-migration to Production failed',
      reason: 'job migration failed',
      text: 'The promotion of payments-api 1.5.0-failing-migration to Production failed: job migration failed',
      tone: 'error',
    });
  });

  it('words waiting for approval, rollbacks and the other endings', () => {
    expect(
      promotionOutcome({
        state: 'awaiting-approval',
        version: '7.7.0',
        stageTitle: 'Production',
        entityName: 'payments-api',
      }).text,
    ).toBe(
      'The promotion of payments-api 7.7.0 to Production awaits approval.',
    );
    expect(
      promotionOutcome({
        state: 'succeeded',
        kind: 'rollback',
        version: '1.0.0',
        stageTitle: 'Production',
        entityName: 'payments-api',
        // An earlier failed attempt's words are no reason for a success.
        error: 'cluster answered 503',
      }).text,
    ).toBe('The rollback of payments-api in Production to 1.0.0 succeeded.');
    expect(
      promotionOutcome({
        state: 'rejected',
        version: '2.0.0',
        stageTitle: 'Production',
        error: 'rejected by user:default/olivia',
      }),
    ).toMatchObject({
      text: 'The promotion of 2.0.0 to Production was rejected: rejected by user:default/olivia',
      tone: 'warning',
    });
    expect(
      promotionOutcome({
        state: 'skipped',
        version: '2.0.0',
        stageTitle: 'Dev',
      }).text,
    ).toBe('The promotion of 2.0.0 to Dev ended skipped.');
  });
});
