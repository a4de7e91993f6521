import {
  WindowSpec,
  compileWindow,
  evaluateWindows,
  isTimeZone,
} from './promotionWindows';

const H = 3600_000;
const windows = (...specs: WindowSpec[]) => specs.map(compileWindow);
const at = (iso: string) => new Date(iso);

describe('promotion windows', () => {
  it('is always open without windows', () => {
    expect(evaluateWindows([], at('2025-06-02T10:00:00Z'))).toEqual({
      open: true,
      source: 'always',
      reason: 'no promotion windows apply',
      reasonParts: ['no promotion windows apply'],
    });
  });

  it('is open outside deny windows when there are no allow windows', () => {
    const w = windows({
      kind: 'deny',
      name: 'nightly',
      schedule: '0 22 * * *',
      durationMs: 2 * H,
    });
    expect(evaluateWindows(w, at('2025-06-02T21:59:59Z'))).toMatchObject({
      open: true,
      source: 'always',
    });
    const inside = evaluateWindows(w, at('2025-06-02T23:30:00Z'));
    expect(inside).toMatchObject({
      open: false,
      source: 'deny-window',
      window: "deny window 'nightly'",
      nextOpening: at('2025-06-03T00:00:00Z'),
    });
    expect(inside.reason).toBe(
      "inside deny window 'nightly' until 2025-06-03T00:00:00.000Z; opens 2025-06-03T00:00:00.000Z",
    );
    // The same in pieces, the times as dates.
    expect(inside.reasonParts).toEqual([
      "inside deny window 'nightly' until ",
      at('2025-06-03T00:00:00Z'),
      '; ',
      'opens ',
      at('2025-06-03T00:00:00Z'),
    ]);
    // The end is exclusive.
    expect(evaluateWindows(w, at('2025-06-03T00:00:00Z')).open).toBe(true);
  });

  it('lets deny win over allow, and finds the opening after a deny inside an allow', () => {
    const w = windows(
      // Business hours, Monday to Friday.
      {
        kind: 'allow',
        name: 'business hours',
        schedule: '0 9 * * 1-5',
        durationMs: 8 * H,
      },
      // A lunch freeze inside them.
      { kind: 'deny', name: 'lunch', schedule: '0 12 * * *', durationMs: H },
    );
    // Monday 2 June 2025.
    expect(evaluateWindows(w, at('2025-06-02T10:00:00Z'))).toMatchObject({
      open: true,
      source: 'allow-window',
      window: "allow window 'business hours'",
    });
    expect(evaluateWindows(w, at('2025-06-02T12:30:00Z'))).toMatchObject({
      open: false,
      source: 'deny-window',
      nextOpening: at('2025-06-02T13:00:00Z'),
    });
    // Friday evening: next Monday at nine.
    expect(evaluateWindows(w, at('2025-06-06T18:00:00Z'))).toMatchObject({
      open: false,
      source: 'outside-allow-windows',
      nextOpening: at('2025-06-09T09:00:00Z'),
    });
  });

  it('skips an allow window that a deny window covers completely', () => {
    const w = windows(
      { kind: 'allow', schedule: '0 9 * * *', durationMs: 2 * H },
      // A holiday freeze from 24 December for a week.
      {
        kind: 'deny',
        name: 'holidays',
        schedule: '0 0 24 12 *',
        durationMs: 7 * 24 * H,
      },
    );
    const state = evaluateWindows(w, at('2025-12-25T10:00:00Z'));
    expect(state).toMatchObject({
      open: false,
      source: 'deny-window',
      window: "deny window 'holidays'",
    });
    // The freeze ends at midnight on the 31st; the allow window opens at nine.
    expect(state.nextOpening).toEqual(at('2025-12-31T09:00:00Z'));
  });

  it('joins overlapping deny windows', () => {
    const w = windows(
      { kind: 'deny', schedule: '0 10 * * *', durationMs: 2 * H },
      { kind: 'deny', schedule: '0 11 * * *', durationMs: 3 * H },
      // Right after those: still closed.
      { kind: 'deny', schedule: '0 14 * * *', durationMs: H },
    );
    expect(evaluateWindows(w, at('2025-06-02T10:30:00Z')).nextOpening).toEqual(
      at('2025-06-02T15:00:00Z'),
    );
  });

  it('handles a frequent schedule with a long duration cheaply', () => {
    const w = windows({
      kind: 'deny',
      schedule: '* * * * *',
      durationMs: 2 * 60_000,
    });
    const state = evaluateWindows(w, at('2025-06-02T10:00:30Z'), 24 * H);
    expect(state.open).toBe(false);
    // Each minute opens another two-minute window: it never opens.
    expect(state.nextOpening).toBeUndefined();
    expect(state.reason).toContain('no opening within 1d');
  });

  it('follows the time zone across a daylight saving change', () => {
    const w = windows({
      kind: 'allow',
      schedule: '0 9 * * *',
      durationMs: H,
      timezone: 'Europe/Berlin',
    });
    // Before 30 March 2025 Berlin is UTC+1, after it UTC+2.
    expect(evaluateWindows(w, at('2025-03-28T08:30:00Z')).open).toBe(true);
    expect(evaluateWindows(w, at('2025-03-31T08:30:00Z')).open).toBe(false);
    expect(evaluateWindows(w, at('2025-03-31T07:30:00Z')).open).toBe(true);
    expect(evaluateWindows(w, at('2025-03-29T12:00:00Z')).nextOpening).toEqual(
      at('2025-03-30T07:00:00Z'),
    );
    expect(compileWindow(w[0]).label).toBe(
      "allow window '0 9 * * *' for 1h (Europe/Berlin)",
    );
  });

  it('says until when its state holds: up to then every evaluation says the same', () => {
    // The configuration reference's example, in Berlin time.
    const w = windows(
      {
        kind: 'deny',
        name: 'holiday freeze',
        schedule: '0 0 20 12 *',
        durationMs: 14 * 24 * H,
        timezone: 'Europe/Berlin',
      },
      {
        kind: 'allow',
        name: 'business hours',
        schedule: '0 9 * * 1-5',
        durationMs: 8 * H,
        timezone: 'Europe/Berlin',
      },
      {
        kind: 'deny',
        name: 'Friday afternoon',
        schedule: '0 14 * * 5',
        durationMs: 10 * H,
        timezone: 'Europe/Berlin',
      },
    );
    const same = (a: ReturnType<typeof evaluateWindows>, b: typeof a) => {
      const { validUntil: _a, ...restA } = a;
      const { validUntil: _b, ...restB } = b;
      expect(restB).toEqual(restA);
    };
    // Every 5 h 17 min over five weeks around the holidays, and a DST change.
    const times = [
      ...Array.from(
        { length: 160 },
        (_, i) => at('2025-12-01T00:00:00Z').getTime() + i * 317 * 60_000,
      ),
      at('2026-03-27T10:00:00Z').getTime(),
    ];
    for (const t of times) {
      const state = evaluateWindows(w, new Date(t));
      const until = state.validUntil!.getTime();
      expect(until).toBeGreaterThan(t);
      same(state, evaluateWindows(w, new Date((t + until) / 2)));
      same(state, evaluateWindows(w, new Date(until - 1)));
    }
    // Inside business hours on a Friday: it holds until 14:00, when the
    // Friday-afternoon deny window opens, not until the allow window ends.
    expect(evaluateWindows(w, at('2025-06-06T10:00:00Z')).validUntil).toEqual(
      at('2025-06-06T12:00:00Z'),
    );
  });

  it('says how far it looked when windows keep covering each other past its search', () => {
    // Every allow window of a weekday is inside a deny window: the first
    // opening is on Saturday, further than the search steps over.
    const w = windows(
      { kind: 'allow', schedule: '*/10 * * * *', durationMs: 60_000 },
      { kind: 'deny', schedule: '*/10 * * * 1-5', durationMs: 120_000 },
    );
    const state = evaluateWindows(w, at('2025-06-02T10:05:00Z'));
    expect(state).toMatchObject({ open: false });
    expect(state.nextOpening).toBeUndefined();
    expect(state.reason).toMatch(
      /^outside the allow windows \(.*\); no opening found before 2025-06-0\dT/,
    );
    expect(state.reason).not.toContain('no opening within');
  });

  it('accepts a seconds field', () => {
    const w = windows({
      kind: 'deny',
      schedule: '*/20 * * * * *',
      durationMs: 10_000,
    });
    expect(evaluateWindows(w, at('2025-06-02T10:00:05Z'))).toMatchObject({
      open: false,
      nextOpening: at('2025-06-02T10:00:10Z'),
    });
    expect(evaluateWindows(w, at('2025-06-02T10:00:15Z')).open).toBe(true);
  });

  it('refuses bad schedules, time zones and durations', () => {
    expect(() =>
      compileWindow({ kind: 'deny', schedule: 'every day', durationMs: H }),
    ).toThrow(/'every day' is not a cron schedule/);
    expect(() =>
      compileWindow({
        kind: 'deny',
        schedule: '0 0 30 2 *',
        durationMs: H,
      }),
    ).toThrow(/is not a cron schedule that fires/);
    expect(() =>
      compileWindow({
        kind: 'deny',
        schedule: '0 0 * * *',
        durationMs: H,
        timezone: 'Mars/Olympus',
      }),
    ).toThrow("unknown time zone 'Mars/Olympus'");
    expect(() =>
      compileWindow({ kind: 'deny', schedule: '0 0 * * *', durationMs: 0 }),
    ).toThrow(/duration/);
    expect(isTimeZone('America/New_York')).toBe(true);
  });
});
