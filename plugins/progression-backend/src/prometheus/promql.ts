/*
 * PromQL query templates: `{{ namespace }}`, `{{ app }}`, `{{ stage }}`,
 * `{{ entity }}` and `{{ version }}` inside the string literals of a label
 * matcher. Every value is checked (a Kubernetes name; a version label) and
 * escaped as a PromQL string — and regex-escaped first inside `=~` / `!~`
 * matchers — so that no value can change the shape of the query.
 */

export const PROMQL_PLACEHOLDERS = [
  'namespace',
  'app',
  'stage',
  'entity',
  'version',
] as const;

export type PromQLValues = Record<(typeof PROMQL_PLACEHOLDERS)[number], string>;

const PLACEHOLDER = /\{\{\s*([^}\s]*)\s*\}\}/g;
// RFC 1123 subdomain (namespaces, Deployment names, kubernetes-id values).
const KUBERNETES_NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
// A release version as a Prometheus label value carries it (semver and tags).
const VERSION = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$/;

/** Thrown for a template the backend refuses, or a value it will not put in a query. */
export class PromQLTemplateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PromQLTemplateError';
  }
}

/** A value as the body of a double-quoted PromQL string. */
export function escapePromQLString(value: string): string {
  return value
    .replace(/\\/g, '\\\\')
    .replace(/"/g, '\\"')
    .replace(/'/g, "\\'")
    .replace(/\n/g, '\\n')
    .replace(/\r/g, '\\r')
    .replace(/\t/g, '\\t');
}

/** A value matched literally by a (RE2) regular expression. */
export function escapeRegex(value: string): string {
  return value.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
}

interface Segment {
  name: string;
  start: number;
  end: number;
  /** The matcher operator before the string literal that holds it. */
  regex: boolean;
}

/**
 * Finds the placeholders of a template, each with whether it sits in a
 * regex matcher. Throws for an unknown placeholder, or one outside a
 * double- or single-quoted string literal (raw backtick strings cannot
 * escape anything).
 */
function parse(template: string): Segment[] {
  const segments: Segment[] = [];
  // Where each string literal starts and ends, and its matcher.
  const literals: {
    open: number;
    close: number;
    quote: string;
    regex: boolean;
  }[] = [];
  for (let i = 0; i < template.length; i++) {
    const c = template[i];
    if (c !== '"' && c !== "'" && c !== '`') continue;
    let j = i + 1;
    while (j < template.length && template[j] !== c) {
      if (template[j] === '\\' && c !== '`') j++;
      j++;
    }
    if (j >= template.length) {
      throw new PromQLTemplateError(`unterminated string starting at ${i}`);
    }
    const before = template.slice(0, i).trimEnd();
    literals.push({
      open: i,
      close: j,
      quote: c,
      regex: before.endsWith('=~') || before.endsWith('!~'),
    });
    i = j;
  }
  for (const match of template.matchAll(PLACEHOLDER)) {
    const name = match[1];
    if (!(PROMQL_PLACEHOLDERS as readonly string[]).includes(name)) {
      throw new PromQLTemplateError(
        `unknown placeholder '{{ ${name} }}'; use one of ${PROMQL_PLACEHOLDERS.map(
          p => `{{ ${p} }}`,
        ).join(', ')}`,
      );
    }
    const start = match.index!;
    const end = start + match[0].length;
    const literal = literals.find(l => l.open < start && end <= l.close);
    if (!literal || literal.quote === '`') {
      throw new PromQLTemplateError(
        `'{{ ${name} }}' must be inside a "double-quoted" label value, for example {namespace="{{ ${name} }}"}`,
      );
    }
    segments.push({ name, start, end, regex: literal.regex });
  }
  return segments;
}

/** Checks a template at start-up; throws PromQLTemplateError. */
export function checkQueryTemplate(template: string): void {
  parse(template);
}

/** Refuses a value that is not what its placeholder stands for. */
export function checkQueryValue(name: string, value: string): void {
  const ok =
    name === 'version'
      ? VERSION.test(value)
      : value.length <= 253 && KUBERNETES_NAME.test(value);
  if (!ok) {
    throw new PromQLTemplateError(
      `refusing ${name} value ${JSON.stringify(value)} in a query: ${
        name === 'version'
          ? 'a version is letters, digits and . _ + - (at most 128)'
          : 'not a valid Kubernetes name (lowercase letters, digits, - and .)'
      }`,
    );
  }
}

/**
 * Fills a template: each value checked, then escaped for where it stands
 * (regex-escaped in `=~` and `!~` matchers, then string-escaped).
 */
export function renderQuery(template: string, values: PromQLValues): string {
  const segments = parse(template);
  let out = '';
  let at = 0;
  for (const s of segments) {
    const value = values[s.name as keyof PromQLValues];
    checkQueryValue(s.name, value);
    out += template.slice(at, s.start);
    out += escapePromQLString(s.regex ? escapeRegex(value) : value);
    at = s.end;
  }
  return out + template.slice(at);
}
