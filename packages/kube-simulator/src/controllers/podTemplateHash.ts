/**
 * The `pod-template-hash` label: FNV-1a (32 bit) over the pod template and
 * the collision count, encoded with the same alphabet as upstream
 * (k8s.io/kubernetes/pkg/controller/controller_utils.go ComputeHash and
 * k8s.io/apimachinery/pkg/util/rand SafeEncodeString). Upstream hashes the
 * Go struct dump; we hash canonical JSON, so values differ from a real
 * cluster's but are stable and unique per template in the same way.
 */
const SAFE_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

function canonical(v: unknown): string {
  return JSON.stringify(v, (_, value) =>
    value && typeof value === 'object' && !Array.isArray(value)
      ? Object.fromEntries(
          Object.entries(value).sort(([a], [b]) => a.localeCompare(b)),
        )
      : value,
  );
}

export function computeHash(
  template: unknown,
  collisionCount?: number,
): string {
  const text =
    canonical(template) + (collisionCount ? String(collisionCount) : '');
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(text, 'utf8')) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  const digits = String(hash);
  let out = '';
  for (const ch of digits) {
    out += SAFE_ALPHABET[ch.charCodeAt(0) % SAFE_ALPHABET.length];
  }
  return out;
}

/** Equal pod templates, ignoring `pod-template-hash` (EqualIgnoreHash upstream). */
export function equalIgnoreHash(a: any, b: any): boolean {
  const strip = (t: any) => {
    const c = structuredClone(t ?? {});
    if (c.metadata?.labels) {
      delete c.metadata.labels['pod-template-hash'];
      if (Object.keys(c.metadata.labels).length === 0) delete c.metadata.labels;
    }
    if (c.metadata) {
      delete c.metadata.creationTimestamp;
      if (Object.keys(c.metadata).length === 0) delete c.metadata;
    }
    return canonical(c);
  };
  return strip(a) === strip(b);
}
