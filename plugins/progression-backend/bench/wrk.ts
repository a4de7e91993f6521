/*
 * wrk (Debian's, at /usr/bin/wrk, or BENCH_WRK) as the benchmarks' load
 * generator: C, one thread, so that on a 2-core machine the generator takes
 * little of the CPU the server under test needs, and its latencies are not
 * lengthened by a JavaScript event loop of its own. Its figures come from a
 * Lua `done` function the script ends with.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const WRK = process.env.BENCH_WRK ?? '/usr/bin/wrk';

/** Whether wrk is there to run (its package may be missing). */
export const hasWrk = () => fs.existsSync(WRK);

export interface WrkFigures {
  /** Responses per second. */
  throughput: number;
  p50: number;
  p95: number;
  p99: number;
  requests: number;
  /** Failed requests and answers other than 2xx/3xx. */
  bad: number;
}

/** A JavaScript string as a Lua string literal (JSON's escapes are Lua's too for these). */
const lua = (s: string) => {
  if (!/^[\x20-\x7e]*$/.test(s)) {
    throw new Error(`not printable ASCII: ${JSON.stringify(s)}`);
  }
  return JSON.stringify(s);
};

function script(options: {
  headers?: Record<string, string>;
  paths?: string[];
  amount?: number;
}): string {
  const lines: string[] = [];
  for (const [name, value] of Object.entries(options.headers ?? {})) {
    lines.push(`wrk.headers[${lua(name)}] = ${lua(value)}`);
  }
  if (options.paths) {
    // One thread: its connections take the list's paths in turn, so that
    // concurrent requests ask for different paths.
    lines.push(
      `local paths = { ${options.paths.map(lua).join(', ')} }`,
      'local turn = 0',
      'request = function()',
      '  turn = turn % #paths + 1',
      '  return wrk.format(nil, paths[turn])',
      'end',
    );
  }
  if (options.amount) {
    // Stops once that many have answered; the connections' requests in
    // flight then still count.
    lines.push(
      'local answered = 0',
      'response = function()',
      '  answered = answered + 1',
      `  if answered >= ${Math.floor(
        options.amount,
      )} then wrk.thread:stop() end`,
      'end',
    );
  }
  lines.push(
    'done = function(summary, latency, requests)',
    '  local e = summary.errors',
    '  io.write(string.format(',
    '    "WRK requests=%d duration_us=%d p50_us=%d p95_us=%d p99_us=%d connect=%d read=%d write=%d status=%d timeout=%d\\n",',
    '    summary.requests, summary.duration,',
    '    latency:percentile(50), latency:percentile(95), latency:percentile(99),',
    '    e.connect, e.read, e.write, e.status, e.timeout))',
    'end',
  );
  return `${lines.join('\n')}\n`;
}

/**
 * Runs wrk against `url` (with `paths`, against those paths of its origin in
 * turn) for `durationS` seconds, or until `amount` answers.
 */
export async function runWrk(
  url: string,
  options: {
    connections: number;
    durationS: number;
    headers?: Record<string, string>;
    paths?: string[];
    amount?: number;
  },
): Promise<WrkFigures> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-wrk-'));
  try {
    const file = path.join(dir, 'bench.lua');
    fs.writeFileSync(file, script(options));
    const durationS = options.amount ? 600 : options.durationS;
    const stdout = await new Promise<string>((resolve, reject) =>
      execFile(
        WRK,
        [
          '-t1',
          `-c${options.connections}`,
          `-d${durationS}s`,
          '--timeout',
          '10s',
          '-s',
          file,
          url,
        ],
        { timeout: (durationS + 30) * 1000, maxBuffer: 1 << 20 },
        (err, out, errOut) =>
          err ? reject(new Error(`${err.message}\n${errOut}`)) : resolve(out),
      ),
    );
    const line = stdout.split('\n').find(l => l.startsWith('WRK '));
    if (!line) throw new Error(`wrk printed no figures:\n${stdout}`);
    const v = Object.fromEntries(
      line
        .slice(4)
        .split(' ')
        .map(kv => kv.split('='))
        .map(([k, n]) => [k, Number(n)]),
    );
    return {
      throughput: v.requests / (v.duration_us / 1e6),
      p50: v.p50_us / 1000,
      p95: v.p95_us / 1000,
      p99: v.p99_us / 1000,
      requests: v.requests,
      bad: v.connect + v.read + v.write + v.status + v.timeout,
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
