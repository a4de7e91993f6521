import { ApiError } from './errors';

type Requirement =
  | { key: string; op: '=' | '!='; values: [string] }
  | { key: string; op: 'in' | 'notin'; values: string[] }
  | { key: string; op: 'exists' | '!'; values: [] };

/**
 * Parses a label selector in the string form of the API
 * (`app=web,tier!=db,env in (dev,staging),!legacy,release`), equality- and
 * set-based, as k8s.io/apimachinery/pkg/labels/selector.go accepts it.
 */
export function parseLabelSelector(selector: string): Requirement[] {
  const requirements: Requirement[] = [];
  // Split on commas that are not inside parentheses.
  const parts: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of selector) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  parts.push(current);

  for (const raw of parts.map(p => p.trim()).filter(Boolean)) {
    const set = raw.match(/^([^\s!=(),]+)\s+(in|notin)\s+\(([^)]*)\)$/);
    const equality = raw.match(/^([^\s!=(),]+)\s*(==|=|!=)\s*([^\s!=(),]*)$/);
    const absent = raw.match(/^!\s*([^\s!=(),]+)$/);
    const present = raw.match(/^([^\s!=(),]+)$/);
    if (set) {
      const values = set[3]
        .split(',')
        .map(v => v.trim())
        .filter(Boolean);
      requirements.push({ key: set[1], op: set[2] as 'in' | 'notin', values });
    } else if (equality) {
      requirements.push({
        key: equality[1],
        op: equality[2] === '!=' ? '!=' : '=',
        values: [equality[3]],
      });
    } else if (absent) {
      requirements.push({ key: absent[1], op: '!', values: [] });
    } else if (present) {
      requirements.push({ key: present[1], op: 'exists', values: [] });
    } else {
      throw ApiError.badRequest(
        `unable to parse requirement: found '${raw}', expected a label selector`,
      );
    }
  }
  return requirements;
}

export function matchesLabelSelector(
  requirements: Requirement[],
  labels: Record<string, string> | undefined,
): boolean {
  const l = labels ?? {};
  return requirements.every(r => {
    const has = Object.prototype.hasOwnProperty.call(l, r.key);
    switch (r.op) {
      case '=':
        return has && l[r.key] === r.values[0];
      case '!=':
        return !has || l[r.key] !== r.values[0];
      case 'in':
        return has && r.values.includes(l[r.key]);
      case 'notin':
        return !has || !r.values.includes(l[r.key]);
      case 'exists':
        return has;
      case '!':
        return !has;
      default:
        return false;
    }
  });
}

/** A LabelSelector object (matchLabels / matchExpressions) as a predicate. */
export function matchesSelectorObject(
  selector:
    | {
        matchLabels?: Record<string, string>;
        matchExpressions?: Array<{
          key: string;
          operator: string;
          values?: string[];
        }>;
      }
    | undefined,
  labels: Record<string, string> | undefined,
): boolean {
  if (!selector) return false;
  const l = labels ?? {};
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) {
    if (l[k] !== v) return false;
  }
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(l, e.key);
    const values = e.values ?? [];
    switch (e.operator) {
      case 'In':
        if (!has || !values.includes(l[e.key])) return false;
        break;
      case 'NotIn':
        if (has && values.includes(l[e.key])) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
      default:
        return false;
    }
  }
  return true;
}
