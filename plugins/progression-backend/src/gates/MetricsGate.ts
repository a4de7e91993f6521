import { Config } from '@backstage/config';
import {
  GateResult,
  GateStatus,
} from '@progression-io/backstage-plugin-progression-common';
import {
  ProgressionConfigError,
  StageConfig,
  readDurationMs,
} from '@progression-io/backstage-plugin-progression-node';
import {
  PrometheusClient,
  PrometheusQueryError,
} from '../prometheus/PrometheusClient';
import {
  PromQLTemplateError,
  PromQLValues,
  checkQueryTemplate,
  renderQuery,
} from '../prometheus/promql';
import { Gate, GateContext, GatePhase, startGateResult } from './Gate';
import type {
  MetricCheckEvidence,
  MetricSample,
  MetricUnit,
} from '@progression-io/backstage-plugin-progression-common';

export type { MetricCheckEvidence, MetricSample, MetricUnit };

export type Comparison = '<' | '<=' | '>' | '>=';

/** One metric check of a stage's `gates.metrics`. */
export interface MetricCheckConfig {
  name: string;
  /** Before the deploy (preflight) or after it (verification, the default). */
  when: 'preflight' | 'verification';
  query: string;
  comparison: Comparison;
  /** The absolute threshold, or the allowed change in percent of the baseline. */
  threshold: number;
  /** Relative to what the last successful release measured in this stage. */
  relative: boolean;
  unit: MetricUnit;
  intervalMs: number;
  count: number;
  initialDelayMs: number;
  failureLimit: number;
  inconclusiveLimit: number;
  consecutiveErrorLimit: number;
  /** What an empty result or NaN counts as. */
  noData: 'fail' | 'pass' | 'inconclusive';
  /** Below this much traffic a sample says nothing (inconclusive). */
  minTraffic?: { query: string; min: number };
  /** Let the gate pass (as skipped) when the configured Prometheus could not measure. */
  passIfUnmeasurable: boolean;
  /**
   * The stage may start on a backend without a Prometheus; the check is
   * then recorded as not measured. With a Prometheus it changes nothing.
   */
  optional: boolean;
}

/**
 * The start of the reason of a result that measured nothing because its
 * checks are optional and the backend has no Prometheus.
 */
export const NOT_MEASURED = 'optional, not measured';

type SampleStatus = 'successful' | 'failed' | 'inconclusive' | 'error';

const COMPARISONS: Comparison[] = ['<=', '>=', '<', '>'];
const NO_DATA_STATUS: Record<MetricCheckConfig['noData'], SampleStatus> = {
  pass: 'successful',
  inconclusive: 'inconclusive',
  fail: 'failed',
};
const CONDITION = /^\s*(<=|>=|<|>)\s*([+-]?\d+(?:\.\d+)?)\s*(%?)\s*$/;
const UNITS: MetricUnit[] = ['ratio', 'seconds', 'ms', 'rps', 'none'];

const holds = (value: number, comparison: Comparison, threshold: number) => {
  switch (comparison) {
    case '<':
      return value < threshold;
    case '<=':
      return value <= threshold;
    case '>':
      return value > threshold;
    default:
      return value >= threshold;
  }
};
const negate: Record<Comparison, string> = {
  '<': '≥',
  '<=': '>',
  '>': '≤',
  '>=': '<',
};
const show: Record<Comparison, string> = {
  '<': '<',
  '<=': '≤',
  '>': '>',
  '>=': '≥',
};

/** A value as people read it, in the check's unit. */
export function formatMetric(value: number, unit: MetricUnit): string {
  if (!Number.isFinite(value)) return String(value);
  switch (unit) {
    case 'ratio':
      return `${(value * 100).toFixed(value < 0.001 && value > 0 ? 3 : 1)}%`;
    case 'seconds':
      return `${Math.round(value * 1000)} ms`;
    case 'ms':
      return `${Math.round(value)} ms`;
    case 'rps':
      return `${value.toFixed(2)} req/s`;
    default:
      return Number.isInteger(value) ? String(value) : value.toPrecision(3);
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>(resolve => {
    if (ms <= 0 || signal?.aborted) {
      resolve();
      return;
    }
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    });
  });

function readLimit(
  check: Config,
  key: string,
  path: string,
  fallback: number,
  min = 0,
): number {
  const value = check.getOptionalNumber(key) ?? fallback;
  if (!Number.isInteger(value) || value < min || value > 1000) {
    throw new ProgressionConfigError(
      `${path}.${key}`,
      `must be a whole number from ${min} to 1000`,
    );
  }
  return value;
}

function readTemplate(check: Config, key: string, path: string): string {
  const query = check.getString(key);
  try {
    checkQueryTemplate(query);
  } catch (e) {
    throw new ProgressionConfigError(`${path}.${key}`, (e as Error).message);
  }
  return query;
}

/** Reads and validates a stage's `gates.metrics` list. */
declare module '@progression-io/backstage-plugin-progression-node' {
  interface StageGateConfigs {
    metrics?: MetricCheckConfig[];
  }
}

export function readMetricsGateConfig(
  stage: Config,
  path: string,
): MetricCheckConfig[] {
  const checks = stage.getOptionalConfigArray('gates.metrics') ?? [];
  const names = new Set<string>();
  return checks.map((check, i) => {
    const checkPath = `${path}.gates.metrics[${i}]`;
    const name = check.getString('name');
    if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(name) || names.has(name)) {
      throw new ProgressionConfigError(
        `${checkPath}.name`,
        names.has(name)
          ? `duplicate metric check name '${name}'`
          : `'${name}' must be lowercase letters, digits and '-'`,
      );
    }
    names.add(name);
    const when = check.getOptionalString('when') ?? 'verification';
    if (when !== 'preflight' && when !== 'verification') {
      throw new ProgressionConfigError(
        `${checkPath}.when`,
        `'${when}' is not 'preflight' or 'verification'`,
      );
    }
    const condition = check.getString('condition');
    const parsed = CONDITION.exec(condition);
    if (!parsed) {
      throw new ProgressionConfigError(
        `${checkPath}.condition`,
        `'${condition}' is not a condition such as '<= 0.05' or '<= +10%' (relative to the last successful release here); comparisons: ${COMPARISONS.join(
          ' ',
        )}`,
      );
    }
    const unit = (check.getOptionalString('unit') ?? 'none') as MetricUnit;
    if (!UNITS.includes(unit)) {
      throw new ProgressionConfigError(
        `${checkPath}.unit`,
        `'${unit}' is not one of ${UNITS.join(', ')}`,
      );
    }
    const noData = check.getOptionalString('noData') ?? 'fail';
    if (!['fail', 'pass', 'inconclusive'].includes(noData)) {
      throw new ProgressionConfigError(
        `${checkPath}.noData`,
        `'${noData}' is not 'fail', 'pass' or 'inconclusive'`,
      );
    }
    const minTraffic = check.getOptionalConfig('minTraffic');
    const intervalMs = readDurationMs(check, 'interval', checkPath) ?? 10_000;
    if (intervalMs < 100) {
      throw new ProgressionConfigError(
        `${checkPath}.interval`,
        'must be at least 100ms',
      );
    }
    return {
      name,
      when,
      query: readTemplate(check, 'query', checkPath),
      comparison: parsed[1] as Comparison,
      threshold: Number(parsed[2]),
      relative: parsed[3] === '%',
      unit,
      intervalMs,
      count: readLimit(check, 'count', checkPath, 3, 1),
      initialDelayMs: readDurationMs(check, 'initialDelay', checkPath) ?? 0,
      failureLimit: readLimit(check, 'failureLimit', checkPath, 0),
      inconclusiveLimit: readLimit(check, 'inconclusiveLimit', checkPath, 0),
      consecutiveErrorLimit: readLimit(
        check,
        'consecutiveErrorLimit',
        checkPath,
        2,
      ),
      noData: noData as MetricCheckConfig['noData'],
      ...(minTraffic && {
        minTraffic: {
          query: readTemplate(minTraffic, 'query', `${checkPath}.minTraffic`),
          min: minTraffic.getNumber('min'),
        },
      }),
      passIfUnmeasurable:
        check.getOptionalBoolean('passIfUnmeasurable') ?? false,
      optional: check.getOptionalBoolean('optional') ?? false,
    };
  });
}

const describeCondition = (c: MetricCheckConfig) =>
  `${c.comparison} ${c.relative && c.threshold >= 0 ? '+' : ''}${c.threshold}${
    c.relative ? '% of the last successful release' : ''
  }`;

/**
 * PromQL checks against Prometheus, sampled like Argo Rollouts' analysis:
 * after `initialDelay`, `count` samples `interval` apart; the check fails
 * when more than `failureLimit` samples fail, is inconclusive past
 * `inconclusiveLimit`, and errs after more than `consecutiveErrorLimit`
 * errors in a row. It passes only with at least one successful sample: a
 * check that cannot measure does not pass unless `passIfUnmeasurable`.
 *
 * Without a Prometheus only `optional` checks are accepted, and they are
 * `skipped` with a reason starting "optional, not measured" and
 * `optional: true` in the evidence: not blocking, by configuration, and
 * never indistinguishable from a pass. `optional` is about the backend
 * having no Prometheus; `passIfUnmeasurable` is about a configured one
 * that could not answer. Neither implies the other.
 */
export class MetricsGate extends Gate<MetricCheckConfig[]> {
  readonly name = 'metrics';

  constructor(private readonly prometheus?: PrometheusClient) {
    super();
  }

  readonly phases = ['preflight', 'verification'] as const;

  /**
   * Refuses, at start-up, a check this backend cannot measure: without a
   * Prometheus a stage's quality gates would otherwise vanish unnoticed.
   * The checks are validated first, so a typo is named before this.
   */
  readConfig(
    stage: Config,
    { path, policy }: { path: string; policy: Omit<StageConfig, 'gates'> },
  ): MetricCheckConfig[] | undefined {
    const checks = readMetricsGateConfig(stage, path);
    if (!this.prometheus) {
      const i = checks.findIndex(c => !c.optional);
      if (i >= 0) {
        throw new ProgressionConfigError(
          `${path}.gates.metrics[${i}]`,
          `stage '${policy.name}' has metric check '${checks[i].name}' but no Prometheus is configured (progression.prometheus.url); configure one, or set 'optional: true' on the check to start without it (it is then recorded as not measured)`,
        );
      }
    }
    return checks.length ? checks : undefined;
  }

  /** Each check says when it runs (`when`). */
  phasesOf(checks: MetricCheckConfig[]): GatePhase[] {
    return this.phases.filter(phase => checks.some(c => c.when === phase));
  }

  async run(context: GateContext, phase: GatePhase): Promise<GateResult> {
    return this.runChecks(
      context,
      phase,
      (context.stage.gates.metrics ?? []).filter(c => c.when === phase),
    );
  }

  /**
   * One sample of each of the stage's verification checks, now: the soak
   * health of a stage a release has been running in.
   */
  async health(context: GateContext): Promise<GateResult | undefined> {
    const checks = (context.stage.gates.metrics ?? [])
      .filter(c => c.when === 'verification')
      .map(c => ({ ...c, count: 1, initialDelayMs: 0 }));
    if (!checks.length) return undefined;
    return this.runChecks(context, 'preflight', checks);
  }

  private async runChecks(
    context: GateContext,
    phase: GatePhase,
    checks: MetricCheckConfig[],
  ): Promise<GateResult> {
    const result = startGateResult(this.name, phase);
    if (!this.prometheus) {
      const names = checks.map(c => c.name).join(', ');
      const required = checks.filter(c => !c.optional);
      // readConfig refuses these; a stage read by another gate instance
      // must not pass unmeasured either.
      if (required.length) {
        return result(
          'error',
          `no Prometheus is configured (progression.prometheus.url) to measure ${required
            .map(c => c.name)
            .join(', ')}, which ${
            required.length === 1 ? 'is' : 'are'
          } not optional`,
          { checks: checks.map(c => ({ name: c.name, query: c.query })) },
        );
      }
      return result(
        'skipped',
        `${NOT_MEASURED}: no Prometheus is configured (progression.prometheus.url) for ${names}`,
        {
          optional: true,
          checks: checks.map(c => ({ name: c.name, query: c.query })),
        },
      );
    }
    const evidence = await Promise.all(
      checks.map(check => this.runCheck(check, context)),
    );
    const order: GateStatus[] = [
      'failed',
      'error',
      'inconclusive',
      'passed',
      'skipped',
    ];
    const worst = order.find(s => evidence.some(e => e.status === s))!;
    const first = evidence.find(e => e.status === worst)!;
    return result(
      worst,
      worst === 'passed' || worst === 'skipped'
        ? evidence.map(e => `${e.name}: ${e.reason}`).join('; ')
        : `${first.name}: ${first.reason}`,
      { prometheus: this.prometheus.url, checks: evidence },
    );
  }

  private async runCheck(
    check: MetricCheckConfig,
    context: GateContext,
  ): Promise<MetricCheckEvidence> {
    const prometheus = this.prometheus!;
    const { signal } = context;
    const base = {
      name: check.name,
      query: check.query,
      condition: describeCondition(check),
      threshold: check.threshold,
      unit: check.unit,
      samples: [] as MetricSample[],
    };
    const end = (
      status: GateStatus,
      reason: string,
      extra: Partial<MetricCheckEvidence> = {},
    ): MetricCheckEvidence => {
      const values = base.samples.flatMap(s =>
        s.value !== undefined ? [s.value] : [],
      );
      const unmeasurable = status === 'error' || status === 'inconclusive';
      return {
        ...base,
        ...extra,
        ...(values.length && { value: median(values) }),
        ...(unmeasurable && check.passIfUnmeasurable
          ? {
              status: 'skipped',
              reason: `${reason} (passIfUnmeasurable lets the gate pass)`,
            }
          : { status, reason }),
      };
    };

    // The values every query is filled with: refused, not escaped away,
    // when one is not a Kubernetes name.
    let query: string;
    let trafficQuery: string | undefined;
    try {
      const values: PromQLValues = {
        namespace: context.stage.namespace,
        app: context.entity?.kubernetesId ?? '',
        stage: context.stage.name,
        entity: context.entity?.name ?? '',
        version: context.release?.version ?? '',
      };
      query = renderQuery(check.query, values);
      trafficQuery = check.minTraffic
        ? renderQuery(check.minTraffic.query, values)
        : undefined;
    } catch (e) {
      if (e instanceof PromQLTemplateError) return end('error', e.message);
      throw e;
    }
    base.query = query;

    let threshold = check.threshold;
    let baseline: number | undefined;
    if (check.relative) {
      baseline = await context.baseline?.(this.name, check.name);
      if (baseline === undefined || !Number.isFinite(baseline)) {
        return end(
          'inconclusive',
          `no baseline: no earlier release succeeded in ${context.stage.name} with ${check.name} measured`,
        );
      }
      threshold = baseline * (1 + check.threshold / 100);
    }
    const condition = `${show[check.comparison]} ${formatMetric(
      threshold,
      check.unit,
    )}`;
    const extra = {
      threshold,
      ...(baseline !== undefined && { baseline }),
      ...(check.minTraffic && {
        minTraffic: { query: trafficQuery!, min: check.minTraffic.min },
      }),
    };
    const warnings = new Set<string>();

    await sleep(check.initialDelayMs, signal);
    let failed = 0;
    let inconclusive = 0;
    let consecutiveErrors = 0;
    for (let i = 0; i < check.count; i++) {
      if (i > 0) await sleep(check.intervalMs, signal);
      if (signal?.aborted) {
        return end('error', 'stopped: the promotion was cancelled', extra);
      }
      const sample = await this.sample(
        prometheus,
        check,
        query,
        trafficQuery,
        threshold,
        signal,
        warnings,
      );
      base.samples.push(sample);
      if (sample.status === 'error') consecutiveErrors++;
      else consecutiveErrors = 0;
      if (sample.status === 'failed') failed++;
      if (sample.status === 'inconclusive') inconclusive++;
      if (failed > check.failureLimit) break;
      if (inconclusive > check.inconclusiveLimit) break;
      if (consecutiveErrors > check.consecutiveErrorLimit) break;
    }
    const n = base.samples.length;
    const measured = base.samples.flatMap(s =>
      s.value !== undefined ? [s.value] : [],
    );
    const shown = measured.length
      ? formatMetric(median(measured), check.unit)
      : 'no data';
    const finalExtra = {
      ...extra,
      ...(warnings.size && { warnings: [...warnings] }),
    };
    if (failed > check.failureLimit) {
      const failedSamples = base.samples.filter(s => s.status === 'failed');
      const worst = failedSamples.flatMap(s =>
        s.value !== undefined ? [s.value] : [],
      );
      if (!worst.length) {
        return end(
          'failed',
          `${check.name}: ${failedSamples[0].note} in ${failed} of ${n} samples (noData: fail)`,
          finalExtra,
        );
      }
      const value = check.comparison.startsWith('<')
        ? Math.max(...worst)
        : Math.min(...worst);
      return end(
        'failed',
        `${check.name} ${formatMetric(value, check.unit)} ${
          negate[check.comparison]
        } ${formatMetric(threshold, check.unit)} in ${failed} of ${n} samples`,
        finalExtra,
      );
    }
    if (consecutiveErrors > check.consecutiveErrorLimit) {
      const last = base.samples[n - 1];
      return end(
        'error',
        `${consecutiveErrors} samples in a row could not be measured: ${last.note}`,
        finalExtra,
      );
    }
    if (inconclusive > check.inconclusiveLimit) {
      const last = base.samples.filter(s => s.status === 'inconclusive').pop()!;
      return end(
        'inconclusive',
        `${inconclusive} of ${n} samples inconclusive: ${last.note}`,
        finalExtra,
      );
    }
    const successful = base.samples.filter(s => s.status === 'successful');
    if (!successful.length) {
      const last = base.samples[n - 1];
      return end(
        'error',
        `no sample could be measured${last?.note ? `: ${last.note}` : ''}`,
        finalExtra,
      );
    }
    return end(
      'passed',
      `${check.name} ${shown} ${condition} in ${successful.length} of ${n} samples`,
      finalExtra,
    );
  }

  private async sample(
    prometheus: PrometheusClient,
    check: MetricCheckConfig,
    query: string,
    trafficQuery: string | undefined,
    threshold: number,
    signal: AbortSignal | undefined,
    warnings: Set<string>,
  ): Promise<MetricSample> {
    const time = new Date().toISOString();
    const single = async (q: string) => {
      const { samples, warnings: w } = await prometheus.query(q, { signal });
      w.forEach(x => warnings.add(x));
      if (samples.length > 1) {
        throw new PrometheusQueryError(
          'bad_data',
          `the query returned ${samples.length} series; aggregate it to one (sum, max, …)`,
        );
      }
      return samples[0]?.value;
    };
    try {
      let traffic: number | undefined;
      if (trafficQuery !== undefined && check.minTraffic) {
        traffic = await single(trafficQuery);
        if (
          traffic === undefined ||
          Number.isNaN(traffic) ||
          traffic < check.minTraffic.min
        ) {
          return {
            time,
            status: 'inconclusive',
            ...(traffic !== undefined && !Number.isNaN(traffic) && { traffic }),
            note: `too little traffic to judge: ${
              traffic === undefined || Number.isNaN(traffic)
                ? 'none'
                : formatMetric(traffic, 'none')
            } < ${check.minTraffic.min}`,
          };
        }
      }
      const value = await single(query);
      const withTraffic = traffic !== undefined ? { traffic } : {};
      if (value === undefined || Number.isNaN(value)) {
        const note =
          value === undefined
            ? 'the query returned no data'
            : 'the query returned NaN (no traffic in the window)';
        const status: SampleStatus = NO_DATA_STATUS[check.noData];
        return { time, status, note, ...withTraffic };
      }
      return {
        time,
        value,
        status: holds(value, check.comparison, threshold)
          ? 'successful'
          : 'failed',
        ...withTraffic,
      };
    } catch (e) {
      return { time, status: 'error', note: (e as Error).message };
    }
  }
}
