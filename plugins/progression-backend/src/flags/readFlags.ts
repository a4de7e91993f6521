import {
  FlagsConfig,
  StageLocation,
} from '@progression-io/backstage-plugin-progression-node';
import {
  StageResources,
  describeKubeError,
} from '../kubernetes/StageResources';

export type { FlagsConfig };
export { readFlagsConfig } from '../config/readFlagsConfig';

/** One flag of a stage, as flagd would evaluate it without a context. */
export interface FlagState {
  /** `ENABLED` or `DISABLED`. */
  state: string;
  defaultVariant: string;
  /** `variants[defaultVariant]`; null when that variant does not exist. */
  value: unknown;
  /** ENABLED and the value truthy. */
  enabled: boolean;
  /** The flag has targeting rules, so some evaluations may differ. */
  targeting?: boolean;
}

/** A stage's flags by key. */
export type StageFlags = Record<string, FlagState>;

/** One stage's flags, or why they could not be read. */
export interface StageFlagsResult {
  stage: string;
  flags?: StageFlags;
  error?: string;
}

/**
 * Parses flagd's flag definition JSON
 * (`{ flags: { <key>: { state, variants, defaultVariant } } }`). Throws an
 * Error saying what is wrong when it is not that shape.
 */
export function parseFlagdFlags(text: string): StageFlags {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new Error(`not JSON: ${(e as Error).message}`);
  }
  const flags = (doc as { flags?: unknown } | null)?.flags;
  if (!flags || typeof flags !== 'object' || Array.isArray(flags)) {
    throw new Error('no "flags" object (flagd format)');
  }
  const result: StageFlags = {};
  for (const [key, raw] of Object.entries(flags as Record<string, unknown>)) {
    if (!raw || typeof raw !== 'object') {
      throw new Error(`flag "${key}" is not an object`);
    }
    const flag = raw as {
      state?: unknown;
      variants?: unknown;
      defaultVariant?: unknown;
      targeting?: unknown;
    };
    const variants =
      flag.variants && typeof flag.variants === 'object'
        ? (flag.variants as Record<string, unknown>)
        : {};
    const state = typeof flag.state === 'string' ? flag.state : 'ENABLED';
    const defaultVariant =
      typeof flag.defaultVariant === 'string' ? flag.defaultVariant : '';
    const value = Object.prototype.hasOwnProperty.call(variants, defaultVariant)
      ? variants[defaultVariant]
      : null;
    const targeted =
      !!flag.targeting &&
      typeof flag.targeting === 'object' &&
      Object.keys(flag.targeting).length > 0;
    result[key] = {
      state,
      defaultVariant,
      value,
      enabled: state === 'ENABLED' && Boolean(value),
      ...(targeted && { targeting: true }),
    };
  }
  return result;
}

/**
 * Reads one stage's flags from its ConfigMap. A missing ConfigMap or key,
 * a malformed document or an unreachable cluster is an `error` entry, not
 * a throw.
 */
export async function readStageFlags(
  resources: StageResources,
  stage: string,
  location: StageLocation,
  config: FlagsConfig,
): Promise<StageFlagsResult> {
  let data: Record<string, string> | undefined;
  try {
    const cm = await resources.readConfigMap(location, config.configMap);
    if (!cm) {
      return {
        stage,
        error: `ConfigMap ${config.configMap} does not exist in namespace ${location.namespace}`,
      };
    }
    data = cm.data ?? {};
  } catch (e) {
    return {
      stage,
      error: `cannot read ConfigMap ${config.configMap} in namespace ${
        location.namespace
      }: ${describeKubeError(e)}`,
    };
  }
  const text = data[config.key];
  if (text === undefined) {
    return {
      stage,
      error: `ConfigMap ${config.configMap} in namespace ${location.namespace} has no key ${config.key}`,
    };
  }
  try {
    return { stage, flags: parseFlagdFlags(text) };
  } catch (e) {
    return {
      stage,
      error: `${config.key} of ConfigMap ${config.configMap} in namespace ${
        location.namespace
      } is not flagd flags: ${(e as Error).message}`,
    };
  }
}

/** One flag across stages. */
export interface FlagMatrixRow {
  key: string;
  /** Per stage; null when the stage lacks the flag or its flags could not be read. */
  values: Record<
    string,
    { state: string; variant: string; value: unknown } | null
  >;
  /**
   * The effective value (the default variant's value while ENABLED,
   * "disabled" otherwise) differs between two stages that have the flag,
   * or a stage whose flags were read lacks it.
   */
  differs: boolean;
}

export interface FlagMatrix {
  stages: string[];
  flags: FlagMatrixRow[];
  /** The stages whose flags could not be read, and why. */
  errors: Record<string, string>;
}

const effective = (f: FlagState) =>
  f.state === 'ENABLED'
    ? JSON.stringify({ value: f.value ?? null })
    : JSON.stringify({ disabled: true });

/**
 * The flags of several stages side by side, sorted by key. A stage with an
 * `error` shows null for every flag and does not count as lacking one.
 */
export function flagMatrix(stages: StageFlagsResult[]): FlagMatrix {
  const keys = new Set<string>();
  for (const s of stages) Object.keys(s.flags ?? {}).forEach(k => keys.add(k));
  const readable = stages.filter(s => s.flags && !s.error);
  const flags = [...keys].sort().map(key => {
    const values: FlagMatrixRow['values'] = {};
    for (const s of stages) {
      const f = s.error ? undefined : s.flags?.[key];
      values[s.stage] = f
        ? { state: f.state, variant: f.defaultVariant, value: f.value }
        : null;
    }
    const seen = new Set(
      readable.map(s => {
        const f = s.flags![key];
        return f ? effective(f) : 'absent';
      }),
    );
    return { key, values, differs: seen.size > 1 };
  });
  const errors: Record<string, string> = {};
  for (const s of stages) {
    if (s.error) errors[s.stage] = s.error;
  }
  return { stages: stages.map(s => s.stage), flags, errors };
}

/** A flag's effective value in words, for reasons and warnings. */
export function describeFlag(
  value: { state: string; variant: string; value: unknown } | null,
): string {
  if (!value) return 'absent';
  if (value.state !== 'ENABLED') return 'disabled';
  if (typeof value.value === 'boolean') return value.value ? 'on' : 'off';
  return `${JSON.stringify(value.value)} (${value.variant})`;
}
