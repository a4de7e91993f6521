/*
 * Alert freezes: a stage is closed while one of its alerts fires in
 * Prometheus. An entry is an alert name (`HighErrorRatio`) or a selector of
 * label matchers on Prometheus's ALERTS series (`{severity="page",
 * namespace="production"}`); both are checked at start-up and only ever
 * added to `ALERTS{alertstate="firing", …}`, so an entry cannot change the
 * shape of the query.
 */
import { escapeRegex } from '../prometheus/promql';

const ALERT_NAME = /^[A-Za-z_:][A-Za-z0-9_:]*$/;
const LABEL = '[A-Za-z_][A-Za-z0-9_]*';
const STRING = '"(?:[^"\\\\\\n]|\\\\.)*"';
const MATCHER = `${LABEL}\\s*(?:=~|!~|!=|=)\\s*${STRING}`;
const SELECTOR = new RegExp(
  `^\\{\\s*${MATCHER}(?:\\s*,\\s*${MATCHER})*\\s*,?\\s*\\}$`,
);

/** Why the entry is not an alert name or a selector on ALERTS; undefined when it is. */
export function checkAlertEntry(entry: string): string | undefined {
  if (ALERT_NAME.test(entry)) return undefined;
  if (!entry.trim().startsWith('{')) {
    return `'${entry}' is not an alert name (letters, digits, '_' and ':') or a selector such as {alertname="HighErrorRatio",namespace="staging"}`;
  }
  if (!SELECTOR.test(entry.trim())) {
    return `'${entry}' is not a selector of label matchers such as {severity="page",namespace="staging"}`;
  }
  if (/(^|[{,\s])(__name__|alertstate)\s*[=!]/.test(entry)) {
    return `'${entry}' may not match __name__ or alertstate: only firing ALERTS count`;
  }
  return undefined;
}

/**
 * The alert names the entries name exactly: an entry that is a name, and
 * a selector's `alertname="…"` matcher. Other matchers (`=~`, `!=`) name
 * no one alert.
 */
export function alertNames(entries: readonly string[]): string[] {
  const named = new RegExp(`(?:^|[{,\\s])alertname\\s*=\\s*(${STRING})`, 'g');
  return [
    ...new Set(
      entries.flatMap(e =>
        ALERT_NAME.test(e)
          ? [e]
          : [...e.matchAll(named)].flatMap(m => {
              try {
                return [JSON.parse(m[1]) as string];
              } catch {
                return []; // an escape JSON does not know: not checked
              }
            }),
      ),
    ),
  ];
}

/** The entries that are alert names (not selectors). */
const plainNames = (entries: readonly string[]) =>
  entries.filter(e => ALERT_NAME.test(e));

/** The query for the entries: one ALERTS selector per entry, joined by `or`. */
export function alertQuery(entries: readonly string[]): string {
  const names = plainNames(entries);
  const selectors = entries.filter(e => !ALERT_NAME.test(e));
  const parts = [
    ...(names.length
      ? [
          `ALERTS{alertstate="firing",alertname=~"${names
            .map(escapeRegex)
            .join('|')}"}`,
        ]
      : []),
    ...selectors.map(
      s => `ALERTS{alertstate="firing",${s.trim().slice(1, -1).trim()}}`,
    ),
  ];
  return parts.join(' or ');
}

/** How the firing alerts are named in a reason: `HighErrorRatio (namespace=staging)`. */
export function describeFiring(labels: Record<string, string>[]): string {
  const described = labels.map(l => {
    const rest = Object.entries(l)
      .filter(([k]) => !['__name__', 'alertname', 'alertstate'].includes(k))
      .map(([k, v]) => `${k}=${v}`)
      .sort();
    return `${l.alertname ?? 'an alert'}${
      rest.length ? ` (${rest.join(', ')})` : ''
    }`;
  });
  return [...new Set(described)].sort().join(', ');
}
