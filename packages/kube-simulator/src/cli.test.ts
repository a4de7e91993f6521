import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { waitFor } from './testUtils/waitFor';

jest.setTimeout(60_000);

it('starts from the command line, writes a kubeconfig and serves the API', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kube-simulator-cli-'));
  const kubeconfig = path.join(dir, 'kubeconfig');
  const child = spawn(
    process.execPath,
    [
      path.resolve(__dirname, '../bin/kube-simulator'),
      '--port',
      '0',
      '--write-kubeconfig',
      kubeconfig,
    ],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  child.stdout.on('data', d => (output += d));
  child.stderr.on('data', d => (output += d));
  try {
    const url = await waitFor(
      () => output.match(/listening on (\S+)/)?.[1],
      30_000,
      'the simulator to start',
    );
    const config = JSON.parse(fs.readFileSync(kubeconfig, 'utf8'));
    expect(config.clusters[0].cluster.server).toBe(url);
    const token = config.users[0].user.token;
    const res = await fetch(`${url}/api/v1/namespaces`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    const body = await res.json();
    expect(body.items.map((n: any) => n.metadata.name)).toContain('default');
    expect((fs.statSync(kubeconfig).mode & 0o777).toString(8)).toBe('600');
  } finally {
    child.kill('SIGTERM');
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

it('refuses unknown options with the usage', async () => {
  const child = spawn(
    process.execPath,
    [path.resolve(__dirname, '../bin/kube-simulator'), '--nope'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', d => (stderr += d));
  const code = await new Promise(resolve => child.on('exit', resolve));
  expect(code).toBe(1);
  expect(stderr).toContain('unknown option --nope');
  expect(stderr).toContain('Usage: kube-simulator');
});
