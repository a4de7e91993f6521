import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import git from 'isomorphic-git';
import http from 'isomorphic-git/http/node';
import { GitServer } from './GitServer';
import { gitEnv, run } from './run';

// Real servers and processes: allow more than Jest's default 5 s per test.
jest.setTimeout(60_000);

/*
 * The Git server through the real git binary (clone, push over smart HTTP
 * to `git http-backend`) and through isomorphic-git, as a backend would.
 */
const TOKEN = 'git-test-token';
let server: GitServer;
let dir: string;

/** The git binary, its credentials in its environment (never on the URL). */
function gitCli(args: string[], cwd: string, password = TOKEN) {
  const basic = Buffer.from(`someone:${password}`).toString('base64');
  return run('git', args, {
    cwd,
    env: gitEnv({
      GIT_CONFIG_COUNT: '1',
      GIT_CONFIG_KEY_0: 'http.extraHeader',
      GIT_CONFIG_VALUE_0: `Authorization: Basic ${basic}`,
      GIT_AUTHOR_NAME: 'Dev',
      GIT_AUTHOR_EMAIL: 'dev@example.com',
      GIT_COMMITTER_NAME: 'Dev',
      GIT_COMMITTER_EMAIL: 'dev@example.com',
    }),
  });
}

async function ok(args: string[], cwd: string) {
  const result = await gitCli(args, cwd);
  if (result.code !== 0) {
    throw new Error(`git ${args.join(' ')} failed: ${result.stderr}`);
  }
  return result.stdout;
}

beforeAll(async () => {
  server = await GitServer.start({ token: TOKEN });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'git-server-test-'));
});

afterAll(async () => {
  await server?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

it('creates repositories, commits on a branch, logs and reads files', async () => {
  const first = await server.createRepository('plain', {
    'README.md': '# plain\n',
    'app/config.yaml': 'a: 1\n',
  });
  expect(first).toMatch(/^[0-9a-f]{40}$/);
  const second = await server.commit(
    'plain',
    { 'app/config.yaml': 'a: 2\n', 'README.md': null },
    { message: 'Bump a' },
  );
  expect(await server.log('plain')).toEqual([
    { sha: second, subject: 'Bump a' },
    { sha: first, subject: 'Initial commit' },
  ]);
  expect(await server.readFile('plain', 'app/config.yaml')).toBe('a: 2\n');
  expect(await server.readFile('plain', 'README.md')).toBeUndefined();
  expect(server.repoUrl('plain')).toBe(`${server.url}/plain.git`);
  await expect(server.createRepository('../escape', {})).rejects.toThrow(
    /invalid repository name/,
  );
});

it('answers 401 with a Basic challenge without the token or with a wrong one', async () => {
  await server.createRepository('private', { 'a.txt': 'a\n' });
  const infoRefs = `${server.repoUrl(
    'private',
  )}/info/refs?service=git-upload-pack`;
  const basic = (password: string) =>
    `Basic ${Buffer.from(`x:${password}`).toString('base64')}`;
  const attempts: Record<string, string>[] = [
    {},
    { Authorization: basic('wrong') },
    { Authorization: 'Bearer wrong' },
  ];
  for (const headers of attempts) {
    const res = await fetch(infoRefs, { headers });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe('Basic realm="git"');
  }
  for (const Authorization of [basic(TOKEN), `Bearer ${TOKEN}`]) {
    const res = await fetch(infoRefs, { headers: { Authorization } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe(
      'application/x-git-upload-pack-advertisement',
    );
  }
  // http-backend's own answers come through with their status.
  const missing = await fetch(
    `${server.url}/nothing.git/info/refs?service=git-upload-pack`,
    { headers: { Authorization: basic(TOKEN) } },
  );
  expect(missing.status).toBe(404);
  const failed = await gitCli(
    ['clone', server.repoUrl('private'), 'denied'],
    dir,
    'wrong',
  );
  expect(failed.code).not.toBe(0);
  expect(failed.stderr).not.toContain(TOKEN);
});

it('clones and pushes with the git binary, and refuses a push on a stale head', async () => {
  await server.createRepository('cli', { 'app.yaml': 'version: 1\n' });
  const work = path.join(dir, 'cli');
  await ok(['clone', '--quiet', server.repoUrl('cli'), work], dir);
  expect(fs.readFileSync(path.join(work, 'app.yaml'), 'utf8')).toBe(
    'version: 1\n',
  );
  fs.writeFileSync(path.join(work, 'app.yaml'), 'version: 2\n');
  await ok(['commit', '--quiet', '-am', 'Version 2'], work);
  await ok(['push', '--quiet', 'origin', 'main'], work);
  expect((await server.log('cli'))[0].subject).toBe('Version 2');
  expect(await server.readFile('cli', 'app.yaml')).toBe('version: 2\n');

  // Someone else pushes first: this clone's head is stale.
  await server.commit(
    'cli',
    { 'other.txt': 'theirs\n' },
    { message: 'Theirs' },
  );
  fs.writeFileSync(path.join(work, 'app.yaml'), 'version: 3\n');
  await ok(['commit', '--quiet', '-am', 'Version 3'], work);
  const rejected = await gitCli(['push', 'origin', 'main'], work);
  expect(rejected.code).not.toBe(0);
  expect(rejected.stderr).toMatch(/rejected/);
  expect(rejected.stderr).toMatch(/non-fast-forward|fetch first/);
  expect((await server.log('cli'))[0].subject).toBe('Theirs');

  // After a rebase on theirs, the push goes through.
  await ok(['pull', '--quiet', '--rebase', 'origin', 'main'], work);
  await ok(['push', '--quiet', 'origin', 'main'], work);
  expect((await server.log('cli')).map(c => c.subject)).toEqual([
    'Version 3',
    'Theirs',
    'Version 2',
    'Initial commit',
  ]);
});

it('clones and pushes with isomorphic-git, and refuses a push on a stale head', async () => {
  await server.createRepository('iso', { 'app.yaml': 'version: 1\n' });
  const work = path.join(dir, 'iso');
  const onAuth = () => ({ username: 'x', password: TOKEN });
  const author = { name: 'Backend', email: 'backend@example.com' };
  await git.clone({
    fs,
    http,
    dir: work,
    url: server.repoUrl('iso'),
    onAuth,
    singleBranch: true,
  });
  expect(fs.readFileSync(path.join(work, 'app.yaml'), 'utf8')).toBe(
    'version: 1\n',
  );
  fs.writeFileSync(path.join(work, 'app.yaml'), 'version: 2\n');
  await git.add({ fs, dir: work, filepath: 'app.yaml' });
  const sha = await git.commit({ fs, dir: work, message: 'Version 2', author });
  const pushed = await git.push({ fs, http, dir: work, onAuth });
  expect(pushed.ok).toBe(true);
  expect(await server.log('iso')).toEqual([
    { sha, subject: 'Version 2' },
    expect.objectContaining({ subject: 'Initial commit' }),
  ]);

  await server.commit(
    'iso',
    { 'app.yaml': 'version: 9\n' },
    { message: 'Theirs' },
  );
  fs.writeFileSync(path.join(work, 'app.yaml'), 'version: 3\n');
  await git.add({ fs, dir: work, filepath: 'app.yaml' });
  await git.commit({ fs, dir: work, message: 'Version 3', author });
  const error = await git.push({ fs, http, dir: work, onAuth }).then(
    () => undefined,
    e => e,
  );
  expect(error?.code).toBe('PushRejectedError');
  expect(await server.readFile('iso', 'app.yaml')).toBe('version: 9\n');

  const denied = await git
    .clone({
      fs,
      http,
      dir: path.join(dir, 'iso-denied'),
      url: server.repoUrl('iso'),
      onAuth: () => ({ username: 'x', password: 'wrong' }),
    })
    .then(
      () => undefined,
      e => e,
    );
  expect(denied?.code).toBe('HttpError');
  expect(denied?.data?.statusCode).toBe(401);
});

it('answers 500, and does not hang, when git http-backend cannot run', async () => {
  await server.createRepository('unreachable', { 'a.txt': 'a\n' });
  const path_ = process.env.PATH;
  process.env.PATH = path.join(dir, 'no-git-here');
  try {
    const res = await fetch(
      `${server.repoUrl('unreachable')}/info/refs?service=git-upload-pack`,
      { headers: { Authorization: `Bearer ${TOKEN}` } },
    );
    expect(res.status).toBe(500);
    await res.text();
  } finally {
    process.env.PATH = path_;
  }
});
