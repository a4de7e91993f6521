import { InputError } from '@backstage/errors';
import { isMap, isSeq, parseDocument, YAMLMap } from 'yaml';

/** An image reference split as Kustomize's `images:` entries name its parts. */
export interface ImageRef {
  /** The repository, registry included: `registry.example/checkout`. */
  name: string;
  tag?: string;
  digest?: string;
}

/** `registry:5000/team/app:1.2@sha256:…` → name, tag and digest. */
export function parseImage(image: string): ImageRef {
  const [withTag, digest] = image.split('@', 2);
  const slash = withTag.lastIndexOf('/');
  const colon = withTag.lastIndexOf(':');
  const hasTag = colon > slash;
  const name = hasTag ? withTag.slice(0, colon) : withTag;
  if (!name) throw new InputError(`'${image}' is not an image reference`);
  return {
    name,
    ...(hasTag && { tag: withTag.slice(colon + 1) }),
    ...(digest && { digest }),
  };
}

function formatImage(name: string, tag?: string, digest?: string) {
  return `${name}${tag ? `:${tag}` : ''}${digest ? `@${digest}` : ''}`;
}

function parse(text: string, path: string) {
  const doc = parseDocument(text);
  if (doc.errors.length) {
    throw new InputError(`${path} is not valid YAML: ${doc.errors[0].message}`);
  }
  if (!isMap(doc.contents)) {
    throw new InputError(`${path} is not a Kustomization (not a YAML mapping)`);
  }
  return doc;
}

/** The entry of `images:` that sets `name`'s image (by `name`, or `newName` when it renamed one). */
function findEntry(doc: ReturnType<typeof parseDocument>, name: string) {
  const images = doc.get('images');
  if (!isSeq(images)) return undefined;
  return images.items.find(
    (item): item is YAMLMap =>
      isMap(item) &&
      (item.get('name') === name || item.get('newName') === name),
  );
}

/**
 * The image the overlay sets for the repository `name` (as Kustomize will
 * render it), or undefined when no `images:` entry names it.
 */
export function overlayImage(
  text: string,
  name: string,
  path = 'kustomization.yaml',
): string | undefined {
  const entry = findEntry(parse(text, path), name);
  if (!entry) return undefined;
  const newName = entry.get('newName');
  const tag = entry.get('newTag');
  const digest = entry.get('digest');
  return formatImage(
    String(newName ?? entry.get('name')),
    tag === undefined || tag === null ? undefined : String(tag),
    digest ? String(digest) : undefined,
  );
}

/** A scalar as YAML will read it back as the same string, quoted when it must be. */
function scalar(value: string, quote?: string) {
  if (quote === 'QUOTE_SINGLE') return `'${value.replace(/'/g, "''")}'`;
  if (quote === 'QUOTE_DOUBLE' || parseDocument(value).toJS() !== value) {
    return JSON.stringify(value);
  }
  return value;
}

const lineStart = (text: string, at: number) =>
  text.lastIndexOf('\n', at - 1) + 1;
const lineEnd = (text: string, at: number) => {
  const end = text.indexOf('\n', at);
  return end === -1 ? text.length : end + 1;
};

/**
 * Sets the image in a kustomization.yaml as `kustomize edit set image
 * <name>=<image>` does: the `images:` entry for the image's repository
 * gets `newTag` (or `digest`; one replaces the other), a new entry is
 * added when there is none. The change is made in the text itself, so
 * everything else — comments and their spacing, key order, other
 * entries, quoting — stays byte for byte.
 */
export function setOverlayImage(
  text: string,
  image: string,
  path = 'kustomization.yaml',
): string {
  const doc = parse(text, path);
  const ref = parseImage(image);
  const set: [string, string | undefined][] = [
    ['newTag', ref.tag],
    ['digest', ref.digest],
  ];
  const entry = findEntry(doc, ref.name);
  if (!entry) {
    const lines = [
      `- name: ${scalar(ref.name)}`,
      ...set.flatMap(([key, value]) =>
        value === undefined ? [] : [`  ${key}: ${scalar(value)}`],
      ),
    ];
    const images = doc.get('images', true) as any;
    const withNewline = text.endsWith('\n') || !text ? text : `${text}\n`;
    if (isSeq(images) && !images.flow && images.items.length && images.range) {
      // After the last entry, indented as the first one is.
      const first = (images.items[0] as any).range[0];
      const indent = ' '.repeat(
        Math.max(0, first - lineStart(text, first) - 2),
      );
      const at = lineEnd(text, (images.items.at(-1) as any).range[1] - 1);
      const before = text.slice(0, at);
      return `${before}${before.endsWith('\n') ? '' : '\n'}${lines
        .map(l => indent + l)
        .join('\n')}\n${text.slice(at)}`;
    }
    if (doc.has('images')) {
      // An empty or flow-style list: written again as kustomize writes it.
      doc.set('images', doc.createNode([]));
      (doc.get('images') as any).items.push(
        doc.createNode({
          name: ref.name,
          ...Object.fromEntries(set.filter(([, v]) => v !== undefined)),
        }),
      );
      return doc.toString();
    }
    return `${withNewline}images:\n${lines.join('\n')}\n`;
  }
  if (entry.flow || !entry.range) {
    for (const [key, value] of set) {
      if (value === undefined) entry.delete(key);
      else entry.set(key, value);
    }
    return doc.toString();
  }
  // Edits from the end of the text backwards, so earlier offsets hold.
  const edits: { from: number; to: number; insert: string }[] = [];
  const namePair = entry.items.find((p: any) => p.key?.value === 'name') as any;
  const keyAt = namePair.key.range[0];
  const indent = ' '.repeat(keyAt - lineStart(text, keyAt));
  for (const [key, value] of set) {
    const pair = entry.items.find((p: any) => p.key?.value === key) as any;
    if (pair && value !== undefined) {
      const node = pair.value;
      edits.push({
        from: node.range[0],
        to: node.range[1],
        insert: scalar(value, node.type),
      });
    } else if (pair) {
      const from = lineStart(text, pair.key.range[0]);
      edits.push({
        from,
        to: lineEnd(text, pair.value.range[1] - 1),
        insert: '',
      });
    } else if (value !== undefined) {
      const at = lineEnd(text, namePair.value.range[1] - 1);
      const newline = text.slice(0, at).endsWith('\n') ? '' : '\n';
      edits.push({
        from: at,
        to: at,
        insert: `${newline}${indent}${key}: ${scalar(value)}\n`,
      });
    }
  }
  let next = text;
  for (const e of edits.sort((a, b) => b.from - a.from || b.to - a.to)) {
    next = next.slice(0, e.from) + e.insert + next.slice(e.to);
  }
  return next;
}
