/*
 * Promotion windows: when a stage may receive a promotion. A window opens
 * at each fire time of its cron schedule (in its time zone) and stays open
 * for its duration, measured in elapsed time. Deny wins: inside any deny
 * window the stage is closed; outside, it is open when there are no allow
 * windows or when an allow window is open. Pure functions over a clock.
 */
import { CronTime } from 'cron';

export interface WindowSpec {
  kind: 'allow' | 'deny';
  /** What people call it (`holiday freeze`); shown in reasons. */
  name?: string;
  /** A cron expression: five fields, or six with seconds first. */
  schedule: string;
  durationMs: number;
  /** An IANA time zone; UTC by default. */
  timezone?: string;
}

/** A window with its schedule parsed once. */
export interface PromotionWindow extends WindowSpec {
  timezone: string;
  /** How reasons name it. */
  label: string;
  cron: CronTime;
}

export interface WindowsState {
  open: boolean;
  /**
   * `always`: no window applies; `allow-window`: open inside one;
   * `deny-window`: closed inside one; `outside-allow-windows`: closed
   * because no allow window is open.
   */
  source: 'always' | 'allow-window' | 'deny-window' | 'outside-allow-windows';
  reason: string;
  /** The reason in pieces: text, and the times in it as dates. */
  reasonParts: ReasonPart[];
  /** The window that decides, if one does. */
  window?: string;
  /** While closed: when it opens next (undefined: not within the horizon). */
  nextOpening?: Date;
  /**
   * Until when this state, its reason included, holds at the latest: the
   * first time after `now` that a window opens or one that is open ends
   * (undefined: none does within a year or so). Until then the windows
   * need not be evaluated again.
   */
  validUntil?: Date;
}

/** A piece of a reason: text, or a time a reader may show in their own zone. */
export type ReasonPart = string | Date;

/** A reason as text, its times in ISO 8601 (UTC). */
export function reasonText(parts: ReasonPart[]): string {
  return parts.map(p => (typeof p === 'string' ? p : p.toISOString())).join('');
}

/** The reason fields of a state whose reason is `parts`. */
export function because(parts: ReasonPart[]) {
  return { reason: reasonText(parts), reasonParts: parts };
}

/**
 * How many windows the search for the next opening steps over before it
 * gives up (each step is cron arithmetic).
 */
const MAX_SEARCH_STEPS = 1000;

/** How far ahead the next opening is looked for. */
const DEFAULT_HORIZON_MS = 400 * 24 * 3600_000;

/** Whether `zone` is an IANA time zone this runtime knows. */
export function isTimeZone(zone: string): boolean {
  try {
    Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

function formatMs(ms: number): string {
  const units: [number, string][] = [
    [86_400_000, 'd'],
    [3_600_000, 'h'],
    [60_000, 'm'],
    [1000, 's'],
  ];
  for (const [size, unit] of units) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

/**
 * Parses a window; throws an Error saying what is wrong with its schedule
 * or time zone (a schedule that never fires is wrong too).
 */
export function compileWindow(spec: WindowSpec): PromotionWindow {
  const timezone = spec.timezone ?? 'UTC';
  if (!isTimeZone(timezone)) {
    throw new Error(`unknown time zone '${timezone}'`);
  }
  let cron: CronTime;
  try {
    cron = new CronTime(spec.schedule, timezone);
    cron.getNextDateFrom(new Date(), timezone);
  } catch (e) {
    throw new Error(
      `'${spec.schedule}' is not a cron schedule that fires: ${
        (e as Error).message.split('\n')[0]
      }`,
    );
  }
  if (!(spec.durationMs > 0)) {
    throw new Error('a window needs a duration longer than 0');
  }
  return {
    ...spec,
    timezone,
    cron,
    label:
      spec.name !== undefined
        ? `${spec.kind} window '${spec.name}'`
        : `${spec.kind} window '${spec.schedule}' for ${formatMs(
            spec.durationMs,
          )}${timezone === 'UTC' ? '' : ` (${timezone})`}`,
  };
}

/** The first fire time strictly after `t`. */
function nextFire(w: PromotionWindow, t: number): number | undefined {
  try {
    return w.cron.getNextDateFrom(new Date(t), w.timezone).toMillis();
  } catch {
    return undefined;
  }
}

/**
 * The latest fire time `f` with `t - duration < f <= t` (the opening of
 * the window that contains `t`, if any), looking back in doubling steps so
 * that a long window of a frequent schedule stays cheap.
 */
function openingAt(w: PromotionWindow, t: number): number | undefined {
  let lookBack = Math.min(60_000, w.durationMs);
  for (;;) {
    let f = nextFire(w, t - lookBack);
    if (f !== undefined && f <= t) {
      for (;;) {
        const after = nextFire(w, f);
        if (after === undefined || after > t) return f;
        f = after;
      }
    }
    if (lookBack >= w.durationMs) return undefined;
    lookBack = Math.min(lookBack * 2, w.durationMs);
  }
}

/** The windows of a kind that contain `t`, each with its end. */
function containing(windows: PromotionWindow[], t: number) {
  return windows.flatMap(w => {
    const opening = openingAt(w, t);
    return opening === undefined ? [] : [{ w, end: opening + w.durationMs }];
  });
}

/** Whether the windows let a promotion in at `t`. */
function openAt(deny: PromotionWindow[], allow: PromotionWindow[], t: number) {
  return (
    containing(deny, t).length === 0 &&
    (allow.length === 0 || containing(allow, t).length > 0)
  );
}

/**
 * The state of a stage's windows at `now`: open or closed, why, and when
 * a closed one opens next — across deny windows inside allow windows,
 * overlapping windows and time-zone changes.
 */
export function evaluateWindows(
  windows: readonly PromotionWindow[],
  now: Date,
  horizonMs = DEFAULT_HORIZON_MS,
): WindowsState {
  const deny = windows.filter(w => w.kind === 'deny');
  const allow = windows.filter(w => w.kind === 'allow');
  const t0 = now.getTime();
  const denied = containing(deny, t0);
  const allowed = containing(allow, t0);
  // Which windows contain a time changes only when one opens (its next
  // fire) or one that contains it ends; the state is a function of that.
  const changes = [
    ...windows.map(w => nextFire(w, t0)),
    ...[...denied, ...allowed].map(c => c.end),
  ].filter((c): c is number => c !== undefined);
  const validUntil = changes.length
    ? { validUntil: new Date(Math.min(...changes)) }
    : {};
  if (denied.length === 0 && (allow.length === 0 || allowed.length > 0)) {
    if (allowed.length === 0) {
      return {
        open: true,
        source: 'always',
        ...because([
          deny.length ? 'no deny window is open' : 'no promotion windows apply',
        ]),
        ...validUntil,
      };
    }
    const latest = allowed.reduce((a, b) => (b.end > a.end ? b : a));
    return {
      open: true,
      source: 'allow-window',
      window: latest.w.label,
      ...because([`inside ${latest.w.label} until `, new Date(latest.end)]),
      ...validUntil,
    };
  }
  // The first time from now on that no deny window covers and, where
  // allow windows exist, one of them is open.
  let t = t0;
  let nextOpening: number | undefined;
  // Bounded: windows that keep overlapping each other end the search,
  // which then says how far it looked.
  let searched = false;
  for (let i = 0; t - t0 <= horizonMs; i++) {
    if (i >= MAX_SEARCH_STEPS) {
      searched = true;
      break;
    }
    const covering = containing(deny, t);
    if (covering.length) {
      t = Math.max(...covering.map(c => c.end));
      continue;
    }
    if (allow.length && containing(allow, t).length === 0) {
      const from = t;
      const starts = allow
        .map(w => nextFire(w, from))
        .filter((s): s is number => s !== undefined);
      if (!starts.length) break;
      t = Math.min(...starts);
      continue;
    }
    if (openAt(deny, allow, t)) nextOpening = t;
    break;
  }
  if (nextOpening !== undefined && nextOpening - t0 > horizonMs) {
    nextOpening = undefined;
  }
  let opens: ReasonPart[];
  if (nextOpening !== undefined) opens = ['opens ', new Date(nextOpening)];
  else if (searched) opens = ['no opening found before ', new Date(t)];
  else opens = [`no opening within ${formatMs(horizonMs)}`];
  if (denied.length) {
    const latest = denied.reduce((a, b) => (b.end > a.end ? b : a));
    return {
      open: false,
      source: 'deny-window',
      window: latest.w.label,
      ...because([
        `inside ${latest.w.label} until `,
        new Date(latest.end),
        '; ',
        ...opens,
      ]),
      ...(nextOpening !== undefined && { nextOpening: new Date(nextOpening) }),
      ...validUntil,
    };
  }
  return {
    open: false,
    source: 'outside-allow-windows',
    ...because([
      `outside the allow windows (${allow.map(w => w.label).join(', ')}); `,
      ...opens,
    ]),
    ...(nextOpening !== undefined && { nextOpening: new Date(nextOpening) }),
    ...validUntil,
  };
}
