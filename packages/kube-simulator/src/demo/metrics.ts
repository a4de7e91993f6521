/** Bucket edges of http_request_duration_seconds; 0.5 s is one so "p95 < 500 ms" is exact. */
export const DURATION_BUCKETS = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

type Labels = Record<string, string>;

const escapeLabel = (v: string) =>
  v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
const render = (labels: Labels) =>
  `{${Object.entries(labels)
    .map(([k, v]) => `${k}="${escapeLabel(v)}"`)
    .join(',')}}`;

interface Series {
  labels: Labels;
  count: number;
}

interface Histogram {
  labels: Labels;
  buckets: number[];
  sum: number;
  count: number;
}

/**
 * Request counters and a latency histogram in the Prometheus text format
 * (https://prometheus.io/docs/instrumenting/exposition_formats/).
 */
export class RequestMetrics {
  private readonly requests = new Map<string, Series>();
  private readonly durations = new Map<string, Histogram>();

  observe(labels: Labels, status: number, seconds: number) {
    const reqLabels = { ...labels, status: String(status) };
    const rk = JSON.stringify(reqLabels);
    const series = this.requests.get(rk) ?? { labels: reqLabels, count: 0 };
    series.count += 1;
    this.requests.set(rk, series);

    const dk = JSON.stringify(labels);
    const h = this.durations.get(dk) ?? {
      labels,
      buckets: DURATION_BUCKETS.map(() => 0),
      sum: 0,
      count: 0,
    };
    DURATION_BUCKETS.forEach((edge, i) => {
      if (seconds <= edge) h.buckets[i] += 1;
    });
    h.sum += seconds;
    h.count += 1;
    this.durations.set(dk, h);
  }

  /** The exposition, optionally only the series whose labels match `filter`. */
  render(filter: Labels = {}): string {
    const matches = (l: Labels) =>
      Object.entries(filter).every(([k, v]) => l[k] === v);
    const lines = [
      '# HELP http_requests_total Requests handled, by status code.',
      '# TYPE http_requests_total counter',
    ];
    for (const s of this.requests.values()) {
      if (matches(s.labels))
        lines.push(`http_requests_total${render(s.labels)} ${s.count}`);
    }
    lines.push(
      '# HELP http_request_duration_seconds Time to answer a request.',
      '# TYPE http_request_duration_seconds histogram',
    );
    for (const h of this.durations.values()) {
      if (!matches(h.labels)) continue;
      DURATION_BUCKETS.forEach((edge, i) => {
        lines.push(
          `http_request_duration_seconds_bucket${render({
            ...h.labels,
            le: String(edge),
          })} ${h.buckets[i]}`,
        );
      });
      lines.push(
        `http_request_duration_seconds_bucket${render({
          ...h.labels,
          le: '+Inf',
        })} ${h.count}`,
      );
      lines.push(
        `http_request_duration_seconds_sum${render(h.labels)} ${h.sum}`,
      );
      lines.push(
        `http_request_duration_seconds_count${render(h.labels)} ${h.count}`,
      );
    }
    return `${lines.join('\n')}\n`;
  }
}
