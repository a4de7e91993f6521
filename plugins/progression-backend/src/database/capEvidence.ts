/** The most a step's evidence may take in the store, as JSON. */
export const MAX_EVIDENCE_BYTES = 64 * 1024;

const LONG_TEXT = 4096;
const LONG_LIST = 200;

/** Shortens the long parts of a value: texts keep their end, lists both ends. */
function shorten(value: unknown, text: number, list: number): unknown {
  if (typeof value === 'string' && value.length > text) {
    // A log's or body's end says most: keep it.
    return `…[${value.length - text} characters cut]${value.slice(-text)}`;
  }
  if (Array.isArray(value)) {
    const items =
      value.length > list
        ? [
            ...value.slice(0, list / 2),
            `…[${value.length - list} items cut]`,
            ...value.slice(-list / 2),
          ]
        : value;
    return items.map(v => shorten(v, text, list));
  }
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, shorten(v, text, list)]),
    );
  }
  return value;
}

/**
 * A step's evidence as JSON of at most `max` bytes: as it is when it fits;
 * else with its long texts and lists shortened (saying so in `truncated`),
 * more each round; else only what the note says.
 */
export function capEvidence(
  evidence: unknown,
  max = MAX_EVIDENCE_BYTES,
): string {
  const json = JSON.stringify(evidence);
  const bytes = Buffer.byteLength(json);
  if (bytes <= max) return json;
  const note = `the evidence was cut to fit ${Math.round(
    max / 1024,
  )} KiB (it was ${Math.round(bytes / 1024)} KiB)`;
  for (let text = LONG_TEXT, list = LONG_LIST; text >= 64; ) {
    const cut = shorten(evidence, text, list);
    const candidate = JSON.stringify(
      cut && typeof cut === 'object' && !Array.isArray(cut)
        ? { ...cut, truncated: note }
        : { value: cut, truncated: note },
    );
    if (Buffer.byteLength(candidate) <= max) return candidate;
    text = Math.floor(text / 4);
    list = Math.max(2, Math.floor(list / 4));
  }
  return JSON.stringify({ truncated: note });
}
