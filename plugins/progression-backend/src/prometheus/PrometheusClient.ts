/*
 * A small client of Prometheus's HTTP API (/api/v1/query, /api/v1/query_range)
 * on plain fetch: POST with a form body, a timeout, the API's `status` and
 * `errorType` turned into errors that say whose fault they are, and sample
 * values parsed with NaN and ±Inf kept as numbers.
 */

export interface PrometheusConfig {
  url: string;
  /** Sent with every request, for example an Authorization header. */
  headers: Record<string, string>;
  timeoutMs: number;
}

export interface Sample {
  labels: Record<string, string>;
  /** Unix seconds. */
  time: number;
  value: number;
}

export interface Series {
  labels: Record<string, string>;
  points: { time: number; value: number }[];
}

/** Prometheus could not be reached or answered 5xx: nothing was measured. */
export class PrometheusUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PrometheusUnavailableError';
  }
}

/** Prometheus refused the query (bad PromQL, a timeout of the query…). */
export class PrometheusQueryError extends Error {
  constructor(readonly errorType: string, message: string) {
    super(message);
    this.name = 'PrometheusQueryError';
  }
}

/** A sample value: Prometheus sends strings, "NaN" and "+Inf" included. */
export function parseSampleValue(value: string): number {
  if (value === '+Inf' || value === 'Inf') return Infinity;
  if (value === '-Inf') return -Infinity;
  return Number(value);
}

export class PrometheusClient {
  constructor(private readonly config: PrometheusConfig) {}

  get url() {
    return this.config.url;
  }

  private async call(
    path: string,
    form: Record<string, string>,
    signal?: AbortSignal,
    method: 'GET' | 'POST' = 'POST',
  ): Promise<{ data: any; warnings: string[] }> {
    const timeout = AbortSignal.timeout(this.config.timeoutMs);
    const params = new URLSearchParams(form).toString();
    let response: Response;
    let text: string;
    try {
      const url = `${this.config.url.replace(/\/+$/, '')}${path}`;
      response = await fetch(
        method === 'GET' && params ? `${url}?${params}` : url,
        {
          method,
          headers: {
            ...this.config.headers,
            ...(method === 'POST' && {
              'Content-Type': 'application/x-www-form-urlencoded',
            }),
            Accept: 'application/json',
          },
          ...(method === 'POST' && { body: params }),
          redirect: 'manual',
          signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
        },
      );
      text = await response.text();
    } catch (e) {
      const error = e as Error;
      throw new PrometheusUnavailableError(
        error.name === 'TimeoutError'
          ? `Prometheus did not answer within ${this.config.timeoutMs} ms`
          : `Prometheus at ${this.config.url} cannot be reached: ${
              (error.cause as Error | undefined)?.message ?? error.message
            }`,
      );
    }
    let body: any;
    try {
      body = JSON.parse(text);
    } catch {
      throw new PrometheusUnavailableError(
        `Prometheus answered ${response.status} with a body that is not JSON`,
      );
    }
    if (body?.status === 'success') {
      return { data: body.data, warnings: body.warnings ?? [] };
    }
    const errorType = String(body?.errorType ?? 'unknown');
    const message = `Prometheus refused the query (${errorType}): ${
      body?.error ?? `HTTP ${response.status}`
    }`;
    // 5xx and timeouts on the server side: nothing was measured.
    if (response.status >= 500 && errorType !== 'execution') {
      throw new PrometheusUnavailableError(message);
    }
    throw new PrometheusQueryError(errorType, message);
  }

  /** An instant query. A scalar comes back as one sample without labels. */
  async query(
    query: string,
    options: { time?: number; signal?: AbortSignal } = {},
  ): Promise<{ samples: Sample[]; warnings: string[] }> {
    const { data, warnings } = await this.call(
      '/api/v1/query',
      {
        query,
        ...(options.time !== undefined && { time: String(options.time) }),
      },
      options.signal,
    );
    if (data.resultType === 'scalar') {
      const [time, value] = data.result;
      return {
        samples: [{ labels: {}, time, value: parseSampleValue(value) }],
        warnings,
      };
    }
    if (data.resultType !== 'vector') {
      throw new PrometheusQueryError(
        'bad_data',
        `the query returns a ${data.resultType}; a gate needs an instant vector or a scalar`,
      );
    }
    return {
      samples: data.result.map((r: any) => ({
        labels: r.metric ?? {},
        time: r.value[0],
        value: parseSampleValue(r.value[1]),
      })),
      warnings,
    };
  }

  /**
   * The names of the alerting rules Prometheus (or the ruler API in front
   * of it) evaluates: `GET /api/v1/rules?type=alert`.
   */
  async alertRuleNames(signal?: AbortSignal): Promise<Set<string>> {
    const { data } = await this.call(
      '/api/v1/rules',
      { type: 'alert' },
      signal,
      'GET',
    );
    const names = new Set<string>();
    for (const group of data?.groups ?? []) {
      for (const rule of group?.rules ?? []) {
        if (rule?.type === 'alerting' && typeof rule.name === 'string') {
          names.add(rule.name);
        }
      }
    }
    return names;
  }

  /** A range query, for charts. */
  async queryRange(
    query: string,
    range: { start: number; end: number; step: number },
    signal?: AbortSignal,
  ): Promise<{ series: Series[]; warnings: string[] }> {
    const { data, warnings } = await this.call(
      '/api/v1/query_range',
      {
        query,
        start: String(range.start),
        end: String(range.end),
        step: String(range.step),
      },
      signal,
    );
    return {
      series: (data.result ?? []).map((r: any) => ({
        labels: r.metric ?? {},
        points: (r.values ?? []).map(([time, value]: [number, string]) => ({
          time,
          value: parseSampleValue(value),
        })),
      })),
      warnings,
    };
  }
}
