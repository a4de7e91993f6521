import { Config } from '@backstage/config';
import { GateResult } from '@progression-io/backstage-plugin-progression-common';
import autocannon from 'autocannon';
import { performance } from 'node:perf_hooks';
import {
  ProgressionConfigError,
  StageConfig,
  readDurationMs,
} from '@progression-io/backstage-plugin-progression-node';
import { Gate, GateContext, GatePhase, startGateResult } from './Gate';
import { checkUrl } from './SmokeGate';
import type { LoadGateEvidence } from '@progression-io/backstage-plugin-progression-common';

export type { LoadGateEvidence };

/** The `gates.load` section of a stage. */
export interface LoadGateConfig {
  /** Below the stage URL, starting with '/'. */
  path: string;
  method: string;
  /** Sent as it is; an object in the config arrives here as JSON. */
  body?: string;
  headers: Record<string, string>;
  connections: number;
  /** How long the load lasts; with `requests`, whichever comes first. */
  durationMs?: number;
  /** How many requests to send; with `durationMs`, whichever comes first. */
  requests?: number;
  /** Target requests per second overall; as fast as possible when absent. */
  rate?: number;
  /** Per request. */
  timeoutMs: number;
  /** At least one is set. */
  thresholds: {
    p95Ms?: number;
    p99Ms?: number;
    /** 0..1, the share of requests that failed or answered neither 2xx nor 3xx. */
    errorRate?: number;
    /** Responses per second. */
    minThroughput?: number;
  };
}

export const LOAD_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'];
const MAX_DURATION_MS = 5 * 60_000;
const MAX_REQUESTS = 1_000_000;
const MAX_CONNECTIONS = 200;
/** Fewer responses than this are too few to judge percentiles by. */
export const MIN_RESPONSES = 10;
/** After this many failures without a single response the run stops. */
const GIVE_UP_AFTER_ERRORS = 100;

function wholeNumber(
  config: Config,
  key: string,
  path: string,
  min: number,
  max: number,
): number | undefined {
  if (!config.has(key)) return undefined;
  const value = config.getOptional(key);
  if (
    typeof value !== 'number' ||
    !Number.isInteger(value) ||
    value < min ||
    value > max
  ) {
    throw new ProgressionConfigError(
      `${path}.${key}`,
      `must be a whole number from ${min.toLocaleString(
        'en-US',
      )} to ${max.toLocaleString('en-US')}`,
    );
  }
  return value;
}

function positiveDuration(
  config: Config,
  key: string,
  path: string,
  max?: number,
): number | undefined {
  const ms = readDurationMs(config, key, path);
  if (ms === undefined) return undefined;
  if (ms <= 0) {
    throw new ProgressionConfigError(`${path}.${key}`, 'must be longer than 0');
  }
  if (max !== undefined && ms > max) {
    throw new ProgressionConfigError(
      `${path}.${key}`,
      `must be at most ${max / 60_000} minutes`,
    );
  }
  return ms;
}

/**
 * Reads and validates a stage's `gates.load`, or undefined when the
 * stage has none. Throws ProgressionConfigError naming the bad key.
 */
declare module '@progression-io/backstage-plugin-progression-node' {
  interface StageGateConfigs {
    load?: LoadGateConfig;
  }
}

export function readLoadGateConfig(
  stage: Config,
  stagePath: string,
): LoadGateConfig | undefined {
  if (!stage.has('gates.load')) return undefined;
  const path = `${stagePath}.gates.load`;
  const raw = stage.getOptional('gates.load');
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ProgressionConfigError(path, 'must be an object');
  }
  const load = stage.getConfig('gates.load');

  const requestPath = load.getOptional('path') ?? '/';
  if (
    typeof requestPath !== 'string' ||
    !requestPath.startsWith('/') ||
    /[\s\\]/.test(requestPath)
  ) {
    throw new ProgressionConfigError(
      `${path}.path`,
      `'${requestPath}' must start with '/' and contain no spaces`,
    );
  }

  const rawMethod = load.getOptional('method') ?? 'GET';
  const method = typeof rawMethod === 'string' ? rawMethod.toUpperCase() : '';
  if (!LOAD_METHODS.includes(method)) {
    throw new ProgressionConfigError(
      `${path}.method`,
      `'${rawMethod}' is not one of ${LOAD_METHODS.join(', ')}`,
    );
  }

  const rawBody = load.getOptional('body');
  let body: string | undefined;
  if (typeof rawBody === 'string') body = rawBody;
  else if (typeof rawBody === 'object' && rawBody !== null)
    body = JSON.stringify(rawBody);
  else if (rawBody !== undefined) {
    throw new ProgressionConfigError(
      `${path}.body`,
      'must be a string or an object (sent as JSON)',
    );
  }

  const rawHeaders = load.getOptional('headers') ?? {};
  if (typeof rawHeaders !== 'object' || Array.isArray(rawHeaders)) {
    throw new ProgressionConfigError(
      `${path}.headers`,
      'must be a map of header names to values',
    );
  }
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(rawHeaders)) {
    if (
      !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name) ||
      (typeof value !== 'string' && typeof value !== 'number') ||
      /[\r\n]/.test(String(value))
    ) {
      throw new ProgressionConfigError(
        `${path}.headers.${name}`,
        'must be a header name with a string value on one line',
      );
    }
    headers[name] = String(value);
  }

  const connections =
    wholeNumber(load, 'connections', path, 1, MAX_CONNECTIONS) ?? 10;
  const durationMs = positiveDuration(load, 'duration', path, MAX_DURATION_MS);
  const requests = wholeNumber(load, 'requests', path, 1, MAX_REQUESTS);
  if (durationMs === undefined && requests === undefined) {
    throw new ProgressionConfigError(
      `${path}.duration`,
      "set a duration (for example '30s'), a number of requests, or both",
    );
  }
  const rate = wholeNumber(load, 'rate', path, 1, 100_000);
  const timeoutMs =
    positiveDuration(load, 'timeout', path, MAX_DURATION_MS) ?? 10_000;

  const thresholdsPath = `${path}.thresholds`;
  const rawThresholds = load.getOptional('thresholds');
  if (
    typeof rawThresholds !== 'object' ||
    rawThresholds === null ||
    Array.isArray(rawThresholds)
  ) {
    throw new ProgressionConfigError(
      thresholdsPath,
      'a load test needs at least one threshold: p95, p99, errorRate or minThroughput',
    );
  }
  const t = load.getConfig('thresholds');
  const share = (key: string) => {
    if (!t.has(key)) return undefined;
    const value = t.getOptional(key);
    if (typeof value !== 'number' || !(value >= 0 && value <= 1)) {
      throw new ProgressionConfigError(
        `${thresholdsPath}.${key}`,
        'must be a number from 0 to 1 (0.01 is 1%)',
      );
    }
    return value;
  };
  const positive = (key: string) => {
    if (!t.has(key)) return undefined;
    const value = t.getOptional(key);
    if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value)) {
      throw new ProgressionConfigError(
        `${thresholdsPath}.${key}`,
        'must be a number of requests per second above 0',
      );
    }
    return value;
  };
  const thresholds: LoadGateConfig['thresholds'] = {
    p95Ms: positiveDuration(t, 'p95', thresholdsPath),
    p99Ms: positiveDuration(t, 'p99', thresholdsPath),
    errorRate: share('errorRate'),
    minThroughput: positive('minThroughput'),
  };
  for (const key of Object.keys(thresholds) as (keyof typeof thresholds)[]) {
    if (thresholds[key] === undefined) delete thresholds[key];
  }
  if (Object.keys(thresholds).length === 0) {
    throw new ProgressionConfigError(
      thresholdsPath,
      'a load test needs at least one threshold: p95, p99, errorRate or minThroughput',
    );
  }

  return {
    path: requestPath,
    method,
    body,
    headers,
    connections,
    durationMs,
    requests,
    rate,
    timeoutMs,
    thresholds,
  };
}

/** The value below which p percent of the sorted values lie (nearest rank). */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

/**
 * Latencies in milliseconds, counted in log-linear buckets as HdrHistogram
 * does with 2 significant digits, so that a long load test holds a few
 * thousand counters instead of every sample: up to 256 units (1 ns by
 * default) each unit has its own counter; above, every power of two is cut
 * into 128 buckets, each at most 1/128 (0.8%) of its values wide. A
 * percentile is the top of the bucket of the nearest-rank value, capped at
 * the exact maximum: never below the exact percentile, and less than 1%
 * above it. Values above `highestMs` share the top bucket, whose
 * percentiles are the maximum.
 */
export class LatencyHistogram {
  /** Responses recorded. */
  count = 0;
  /** The exact extremes, in milliseconds. */
  min = Infinity;
  max = -Infinity;
  private readonly counts: Float64Array;
  private readonly unitMs: number;
  private readonly highest: number;

  constructor({
    unitMs = 1e-6,
    highestMs = MAX_DURATION_MS,
  }: { unitMs?: number; highestMs?: number } = {}) {
    this.unitMs = unitMs;
    this.highest = Math.ceil(highestMs / unitMs);
    this.counts = new Float64Array(LatencyHistogram.indexOf(this.highest) + 1);
  }

  /** How many counters it holds: its size does not grow with the samples. */
  get buckets(): number {
    return this.counts.length;
  }

  private static indexOf(units: number): number {
    if (units < 256) return units;
    // log2 of a double may round across a power of two; settle it exactly.
    let exponent = Math.floor(Math.log2(units));
    if (2 ** exponent > units) exponent--;
    else if (2 ** (exponent + 1) <= units) exponent++;
    const shift = exponent - 7;
    return shift * 128 + Math.floor(units / 2 ** shift);
  }

  /** The highest value, in units, that falls into bucket `index`. */
  private static topOf(index: number): number {
    if (index < 256) return index;
    const shift = Math.floor(index / 128) - 1;
    return (index - shift * 128 + 1) * 2 ** shift - 1;
  }

  record(ms: number): void {
    const value = ms > 0 ? ms : 0;
    // Up, so that a bucket's top is never below a value counted in it.
    const units = Math.min(Math.ceil(value / this.unitMs), this.highest);
    this.counts[LatencyHistogram.indexOf(units)]++;
    this.count++;
    if (value < this.min) this.min = value;
    if (value > this.max) this.max = value;
  }

  /** The p-th percentile by nearest rank, as {@link percentile} of a sorted array; NaN when empty. */
  valueAt(p: number): number {
    if (this.count === 0) return NaN;
    const rank = Math.min(
      this.count,
      Math.max(1, Math.ceil((p / 100) * this.count)),
    );
    let seen = 0;
    const last = this.counts.length - 1;
    for (let i = 0; i < last; i++) {
      seen += this.counts[i];
      if (seen >= rank) {
        return Math.min(LatencyHistogram.topOf(i) * this.unitMs, this.max);
      }
    }
    // The top bucket also holds what was above the range: only the exact
    // maximum is sure not to be below its values.
    return this.max;
  }
}

const round1 = (n: number) => Math.round(n * 10) / 10;
const round2 = (n: number) => Math.round(n * 100) / 100;
const count = (n: number) => n.toLocaleString('en-US');
const ms = (n: number) => `${n < 10 ? n.toFixed(1) : Math.round(n)} ms`;
const perSecond = (n: number) => (n < 10 ? n.toFixed(1) : count(Math.round(n)));
const percent = (n: number) => `${(n * 100).toFixed(1)}%`;
const seconds = (n: number) => `${(n / 1000).toFixed(1)} s`;

/**
 * Clients of autocannon parse responses without knowing the request; for
 * HEAD the parser must be told there is no body, or it waits for the
 * Content-Length bytes until the request times out.
 */
function skipBodies(client: autocannon.Client) {
  const parser = (client as any).parser;
  const key = parser?.constructor?.kOnHeadersComplete;
  if (key === undefined) return;
  let handler: ((...args: unknown[]) => unknown) | undefined;
  Object.defineProperty(parser, key, {
    configurable: true,
    get:
      () =>
      (...args: unknown[]) => {
        handler?.(...args);
        return true;
      },
    set: (fn: (...args: unknown[]) => unknown) => {
      handler = fn;
    },
  });
}

interface Measurement {
  latencies: LatencyHistogram;
  statusCodes: Map<number, number>;
  errors: number;
  timeouts: number;
  errorMessages: Map<string, number>;
  elapsedMs: number;
  connections: number;
  failure?: string;
}

function measure(
  config: LoadGateConfig,
  url: string,
  signal?: AbortSignal,
): Promise<Measurement> {
  // autocannon's rate holds per one-second window, and a window that opens
  // just before the end would add a whole second's requests: at a rate,
  // the test sends at most rate × duration requests.
  const rateCap =
    config.rate !== undefined && config.durationMs !== undefined
      ? Math.max(1, Math.ceil((config.rate * config.durationMs) / 1000))
      : undefined;
  const limits = [config.requests, rateCap].filter(
    (n): n is number => n !== undefined,
  );
  const total = limits.length ? Math.min(...limits) : undefined;
  // autocannon gives each connection a share of requests and of the rate;
  // a connection with a share of 0 would run without a limit.
  const connections = Math.min(
    config.connections,
    total ?? Infinity,
    config.rate ?? Infinity,
  );
  const m: Measurement = {
    latencies: new LatencyHistogram(),
    statusCodes: new Map(),
    errors: 0,
    timeouts: 0,
    errorMessages: new Map(),
    elapsedMs: 0,
    connections,
  };
  const hasContentType = Object.keys(config.headers).some(
    h => h.toLowerCase() === 'content-type',
  );
  return new Promise(resolve => {
    const started = performance.now();
    let instance: autocannon.Instance | undefined;
    const stop = () => instance?.stop();
    const finish = (failure?: string) => {
      signal?.removeEventListener('abort', stop);
      m.elapsedMs = performance.now() - started;
      if (failure) m.failure = failure;
      resolve(m);
    };
    try {
      instance = autocannon(
        {
          url,
          method: config.method as autocannon.Request['method'],
          headers: {
            ...(config.body !== undefined &&
              !hasContentType && { 'Content-Type': 'application/json' }),
            ...config.headers,
          },
          body: config.body,
          connections,
          pipelining: 1,
          // Seconds; the test never runs longer than 5 minutes.
          duration: (config.durationMs ?? MAX_DURATION_MS) / 1000,
          ...(total !== undefined && { maxOverallRequests: total }),
          ...(config.rate !== undefined && {
            overallRate: config.rate,
            ignoreCoordinatedOmission: true,
          }),
          timeout: config.timeoutMs / 1000,
          // How often autocannon looks at its stop flag (duration, stop()).
          sampleInt: 100,
          ...(config.method === 'HEAD' && { setupClient: skipBodies }),
        },
        (err: unknown) =>
          finish(err ? (err as Error).message ?? String(err) : undefined),
      );
    } catch (e) {
      finish((e as Error).message);
      return;
    }
    instance.on('response', (_client, statusCode, _bytes, responseTime) => {
      m.latencies.record(responseTime);
      m.statusCodes.set(statusCode, (m.statusCodes.get(statusCode) ?? 0) + 1);
    });
    instance.on('reqError', (err: Error) => {
      m.errors++;
      const message = err?.message ?? String(err);
      if (message === 'request timed out') m.timeouts++;
      if (m.errorMessages.size < 20 || m.errorMessages.has(message)) {
        m.errorMessages.set(message, (m.errorMessages.get(message) ?? 0) + 1);
      }
      // Nothing answers: no point hammering a refused port until the end.
      if (m.latencies.count === 0 && m.errors >= GIVE_UP_AFTER_ERRORS) {
        stop();
      }
    });
    if (signal?.aborted) stop();
    else signal?.addEventListener('abort', stop, { once: true });
  });
}

/**
 * A load test of the stage's own URL after the deploy, with autocannon:
 * latency percentiles from every response (kept in a LatencyHistogram, so
 * a long test's memory stays bounded), the error rate and the throughput
 * against the configured thresholds.
 */
export class LoadGate extends Gate<LoadGateConfig> {
  readonly name = 'load';

  readonly phases = ['verification'] as const;

  readConfig(
    stage: Config,
    { path, policy }: { path: string; policy: Omit<StageConfig, 'gates'> },
  ): LoadGateConfig | undefined {
    const config = readLoadGateConfig(stage, path);
    if (config && policy.url === undefined) {
      throw new ProgressionConfigError(
        `${path}.url`,
        'the stage has a load test but no url to run it against',
      );
    }
    return config;
  }

  async run(context: GateContext, phase: GatePhase): Promise<GateResult> {
    const { stage, stageUrl, signal } = context;
    const config = stage.gates.load;
    const result = startGateResult(this.name, phase);
    if (!config) {
      return result('error', `stage ${stage.name} has no load test`, {});
    }
    if (!stageUrl) {
      return result('error', `stage ${stage.name} has no URL to load-test`, {
        thresholds: config.thresholds,
        violations: [],
      });
    }
    const url = checkUrl(stageUrl, config.path);
    const target: LoadGateEvidence['target'] = {
      url,
      method: config.method,
      connections: config.connections,
      ...(config.durationMs !== undefined && { durationMs: config.durationMs }),
      ...(config.requests !== undefined && { requests: config.requests }),
      ...(config.rate !== undefined && { rate: config.rate }),
    };
    if (signal?.aborted) {
      return result('inconclusive', 'cancelled before the load test started', {
        target,
        thresholds: config.thresholds,
        violations: [],
        cancelled: true,
      });
    }

    const m = await measure(config, url, signal);
    target.connections = m.connections;
    const cancelled = signal?.aborted ?? false;
    const latencies = m.latencies;
    const responses = latencies.count;
    const requests = responses + m.errors;
    let bad = m.errors;
    let non2xx = 0;
    for (const [status, n] of m.statusCodes) {
      if (status < 200 || status >= 300) non2xx += n;
      if (status < 200 || status >= 400) bad += n;
    }
    const errorRate = requests ? bad / requests : 0;
    const throughput = m.elapsedMs > 0 ? responses / (m.elapsedMs / 1000) : 0;
    const topErrors = [...m.errorMessages.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 5);
    const measured: LoadGateEvidence['measured'] = {
      requests,
      responses,
      errors: m.errors,
      timeouts: m.timeouts,
      non2xx,
      errorRate: Math.round(errorRate * 10_000) / 10_000,
      throughput: round1(throughput),
      elapsedMs: Math.round(m.elapsedMs),
      latencyMs: {
        p50: round2(latencies.valueAt(50) || 0),
        p95: round2(latencies.valueAt(95) || 0),
        p99: round2(latencies.valueAt(99) || 0),
        max: round2(responses ? latencies.max : 0),
      },
      statusCodes: Object.fromEntries(
        [...m.statusCodes.entries()]
          .sort((a, b) => a[0] - b[0])
          .map(([s, n]) => [String(s), n]),
      ),
      ...(topErrors.length > 0 && {
        errorMessages: Object.fromEntries(topErrors),
      }),
    };
    const evidence: LoadGateEvidence = {
      target,
      measured,
      thresholds: config.thresholds,
      violations: [],
      ...(cancelled && { cancelled: true }),
    };

    if (responses === 0) {
      const why =
        m.failure ?? (topErrors.length ? topErrors[0][0] : 'no requests sent');
      return result(
        'error',
        `no responses from ${url}: ${why}${
          m.errors ? ` (${count(m.errors)} requests failed)` : ''
        }`,
        evidence,
      );
    }
    const volume = `${count(requests)} requests at ${perSecond(
      throughput,
    )} req/s`;
    if (cancelled) {
      return result(
        'inconclusive',
        `the load test was cancelled after ${seconds(m.elapsedMs)} (${volume})`,
        evidence,
      );
    }
    if (responses < MIN_RESPONSES) {
      return result(
        'inconclusive',
        `only ${responses} responses in ${seconds(
          m.elapsedMs,
        )}, too few to judge (at least ${MIN_RESPONSES})`,
        evidence,
      );
    }

    const checks: { holds: boolean; text: string }[] = [];
    const {
      p95Ms,
      p99Ms,
      errorRate: maxErrorRate,
      minThroughput,
    } = config.thresholds;
    if (p95Ms !== undefined) {
      const v = latencies.valueAt(95);
      const holds = v <= p95Ms;
      checks.push({
        holds,
        text: `p95 ${ms(v)} ${holds ? '≤' : '>'} ${ms(p95Ms)}`,
      });
    }
    if (p99Ms !== undefined) {
      const v = latencies.valueAt(99);
      const holds = v <= p99Ms;
      checks.push({
        holds,
        text: `p99 ${ms(v)} ${holds ? '≤' : '>'} ${ms(p99Ms)}`,
      });
    }
    if (maxErrorRate !== undefined) {
      const holds = errorRate <= maxErrorRate;
      checks.push({
        holds,
        text: `error rate ${percent(errorRate)} ${holds ? '≤' : '>'} ${percent(
          maxErrorRate,
        )}`,
      });
    }
    if (minThroughput !== undefined) {
      const holds = throughput >= minThroughput;
      checks.push({
        holds,
        text: `throughput ${perSecond(throughput)} req/s ${
          holds ? '≥' : '<'
        } ${perSecond(minThroughput)} req/s`,
      });
    }
    evidence.violations = checks.filter(c => !c.holds).map(c => c.text);
    const failed = evidence.violations.length > 0;
    return result(
      failed ? 'failed' : 'passed',
      `${(failed ? evidence.violations : checks.map(c => c.text)).join(
        ', ',
      )} (${volume})`,
      evidence,
    );
  }
}
