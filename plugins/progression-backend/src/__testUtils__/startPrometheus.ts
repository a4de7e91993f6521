import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** Debian's prometheus binary, or PROMETHEUS_BIN. */
export function prometheusBinary(): string | undefined {
  const candidates = [process.env.PROMETHEUS_BIN, '/usr/bin/prometheus'];
  for (const c of candidates) {
    if (c && fs.existsSync(c)) return c;
  }
  const which = spawnSync('which', ['prometheus'], { encoding: 'utf8' });
  return which.status === 0 ? which.stdout.trim() : undefined;
}

/**
 * Whether the metric tests can run: scripts/test.sh installs Prometheus and
 * sets PROGRESSION_REQUIRE_PROMETHEUS, so there a missing binary fails the
 * run instead of skipping.
 */
export function prometheusAvailable(): boolean {
  const found = prometheusBinary() !== undefined;
  if (!found && process.env.PROGRESSION_REQUIRE_PROMETHEUS) {
    throw new Error(
      "Prometheus is required (PROGRESSION_REQUIRE_PROMETHEUS is set) but no prometheus binary was found; install Debian's prometheus package",
    );
  }
  return found;
}

function freePort(): Promise<number> {
  return new Promise(resolve => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export interface TestPrometheus {
  url: string;
  /** Stops the server (SIGKILL), keeping its data for a restart. */
  stop(): Promise<void>;
  /** Starts it again on the same port and data. */
  start(): Promise<void>;
  /** Stops it and removes its data. */
  close(): Promise<void>;
}

/**
 * A real Prometheus in a temporary folder, scraping `targets` (host:port,
 * path /metrics) every second, with the alerting `rules` (a rule file's
 * YAML) evaluated every second.
 */
export async function startPrometheus(
  targets: string[],
  options: { rules?: string } = {},
): Promise<TestPrometheus> {
  const binary = prometheusBinary();
  if (!binary) throw new Error('no prometheus binary');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'progression-prom-'));
  const configFile = path.join(dir, 'prometheus.yml');
  if (options.rules) {
    fs.writeFileSync(path.join(dir, 'rules.yml'), options.rules);
  }
  fs.writeFileSync(
    configFile,
    [
      'global:',
      '  scrape_interval: 1s',
      '  evaluation_interval: 1s',
      ...(options.rules ? ['rule_files:', '  - rules.yml'] : []),
      'scrape_configs:',
      '  - job_name: demo-workloads',
      '    static_configs:',
      `      - targets: [${targets.map(t => JSON.stringify(t)).join(', ')}]`,
      '',
    ].join('\n'),
  );
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  let output = '';

  const start = async () => {
    child = spawn(
      binary,
      [
        `--config.file=${configFile}`,
        `--storage.tsdb.path=${path.join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    child.stderr!.on('data', d => {
      output = (output + d).slice(-4000);
    });
    for (let i = 0; i < 300; i++) {
      if (child.exitCode !== null) {
        throw new Error(`prometheus exited: ${output}`);
      }
      try {
        if ((await fetch(`${url}/-/ready`)).ok) return;
      } catch {
        // not up yet
      }
      await new Promise(r => setTimeout(r, 100));
    }
    throw new Error(`prometheus did not become ready: ${output}`);
  };
  const stop = async () => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null) return;
    await new Promise<void>(resolve => {
      c.once('exit', () => resolve());
      c.kill('SIGKILL');
    });
  };
  await start();
  return {
    url,
    start,
    stop,
    async close() {
      await stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Waits until `query` returns at least one sample. */
export async function waitForSamples(
  url: string,
  query: string,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const res = await fetch(`${url}/api/v1/query`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ query }).toString(),
    }).catch(() => undefined);
    const body = await res?.json().catch(() => undefined);
    if (body?.data?.result?.length) return;
    await new Promise(r => setTimeout(r, 250));
  }
  throw new Error(`no samples for ${query} within ${timeoutMs} ms`);
}
