import { ChildProcess, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { check, gitEnv, killAll, run } from './run';

export interface GitServerOptions {
  /** The password (HTTP Basic, any username) or bearer token clients must send. */
  token: string;
  /** The folder holding the bare repositories; default a new temporary one. */
  root?: string;
  /** Default 0: any free port. */
  port?: number;
  /** Default 127.0.0.1: loopback only. */
  host?: string;
}

const REPO_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const BRANCH = /^[A-Za-z0-9][A-Za-z0-9._/-]*$/;
const ZERO_SHA = '0'.repeat(40);
const DEFAULT_AUTHOR = 'Test Author <author@example.com>';
/** A request longer than this (a huge push) is cut. */
const REQUEST_TIMEOUT_MS = 120_000;

const digest = (s: string) => crypto.createHash('sha256').update(s).digest();
const sameSecret = (a: string, b: string) =>
  crypto.timingSafeEqual(digest(a), digest(b));

function checkRepoName(name: string) {
  if (!REPO_NAME.test(name) || name.includes('..') || name.endsWith('.git')) {
    throw new Error(`invalid repository name '${name}'`);
  }
}

function checkBranch(branch: string) {
  if (!BRANCH.test(branch) || branch.includes('..') || branch.endsWith('/')) {
    throw new Error(`invalid branch name '${branch}'`);
  }
}

function checkFilePath(file: string) {
  const parts = file.split('/');
  if (
    !file ||
    /[\t\n\r\0\\]/.test(file) ||
    parts.some(p => p === '' || p === '.' || p === '..' || p === '.git')
  ) {
    throw new Error(`invalid file path '${file}'`);
  }
}

/** Splits `Name <email>` (git's author form). */
function identity(author: string) {
  const m = /^(.+?)\s*<([^<>]*)>$/.exec(author.trim());
  return m ? { name: m[1], email: m[2] } : { name: author, email: '' };
}

/**
 * A Git server over HTTP: Git's own smart-HTTP CGI (`git http-backend`)
 * behind a token check, so the real `git` and isomorphic-git clone, fetch
 * and push as they would against a Git host. Non-fast-forward pushes are
 * refused by receive-pack, as on any host.
 */
export class GitServer {
  private readonly children = new Set<ChildProcess>();
  private address = '';

  private constructor(
    private readonly server: http.Server,
    readonly root: string,
    private readonly token: string,
    private readonly ownsRoot: boolean,
  ) {}

  static async start(options: GitServerOptions): Promise<GitServer> {
    if (!options.token) throw new Error('GitServer needs a token');
    const ownsRoot = !options.root;
    const root =
      options.root ??
      (await fs.promises.mkdtemp(path.join(os.tmpdir(), 'git-server-')));
    await fs.promises.mkdir(root, { recursive: true });
    const server = http.createServer();
    const git = new GitServer(server, root, options.token, ownsRoot);
    server.on('request', (req, res) => git.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () =>
        resolve(),
      );
    });
    const { address, port } = server.address() as AddressInfo;
    git.address = `http://${
      address.includes(':') ? `[${address}]` : address
    }:${port}`;
    return git;
  }

  /** The server's base URL, for example `http://127.0.0.1:40123`. */
  get url(): string {
    return this.address;
  }

  repoUrl(name: string): string {
    return `${this.url}/${name}.git`;
  }

  private repoDir(name: string) {
    checkRepoName(name);
    return path.join(this.root, `${name}.git`);
  }

  private git(args: string[], env: Record<string, string> = {}, input = '') {
    return run('git', args, {
      env: gitEnv(env),
      input,
      children: this.children,
      timeoutMs: 30_000,
    });
  }

  /**
   * Creates the bare repository `<root>/<name>.git` whose branch (default
   * `main`, also its default branch) holds one commit with `files`.
   */
  async createRepository(
    name: string,
    files: Record<string, string>,
    options: { branch?: string; message?: string } = {},
  ): Promise<string> {
    const dir = this.repoDir(name);
    const branch = options.branch ?? 'main';
    checkBranch(branch);
    if (fs.existsSync(dir)) throw new Error(`repository ${name} exists`);
    check(
      await this.git([
        'init',
        '--bare',
        '--quiet',
        `--initial-branch=${branch}`,
        dir,
      ]),
      'git init',
    );
    return this.writeCommit(dir, branch, files, {
      message: options.message ?? 'Initial commit',
      author: DEFAULT_AUTHOR,
    });
  }

  /**
   * Commits `files` (null deletes one) on top of `branch` in the bare
   * repository itself, as someone else pushing would; returns the sha.
   */
  async commit(
    name: string,
    files: Record<string, string | null>,
    options: { branch?: string; message?: string; author?: string } = {},
  ): Promise<string> {
    const dir = this.repoDir(name);
    const branch = options.branch ?? 'main';
    checkBranch(branch);
    return this.writeCommit(dir, branch, files, {
      message: options.message ?? 'Update',
      author: options.author ?? DEFAULT_AUTHOR,
    });
  }

  /** `git log` of a branch, newest first. */
  async log(
    name: string,
    branch = 'main',
  ): Promise<Array<{ sha: string; subject: string }>> {
    checkBranch(branch);
    const out = check(
      await this.git([
        `--git-dir=${this.repoDir(name)}`,
        'log',
        '--format=%H%x09%s',
        `refs/heads/${branch}`,
        '--',
      ]),
      'git log',
    );
    return out
      .split('\n')
      .filter(Boolean)
      .map(line => {
        const tab = line.indexOf('\t');
        return { sha: line.slice(0, tab), subject: line.slice(tab + 1) };
      });
  }

  /** A file's content at the head of a branch; undefined when absent. */
  async readFile(
    name: string,
    file: string,
    branch = 'main',
  ): Promise<string | undefined> {
    checkBranch(branch);
    checkFilePath(file);
    const result = await this.git([
      `--git-dir=${this.repoDir(name)}`,
      'cat-file',
      'blob',
      `refs/heads/${branch}:${file}`,
    ]);
    return result.code === 0 ? result.stdout : undefined;
  }

  async stop(): Promise<void> {
    killAll(this.children);
    await new Promise<void>(resolve => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    if (this.ownsRoot) {
      await fs.promises.rm(this.root, { recursive: true, force: true });
    }
  }

  /**
   * A commit of `files` on the branch's head, with git's plumbing and a
   * temporary index; the ref moves by compare-and-set, so a concurrent
   * push is never overwritten (the write fails instead).
   */
  private async writeCommit(
    dir: string,
    branch: string,
    files: Record<string, string | null>,
    options: { message: string; author: string },
  ): Promise<string> {
    const ref = `refs/heads/${branch}`;
    const gitDir = `--git-dir=${dir}`;
    const tmp = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'git-index-'));
    try {
      const index = { GIT_INDEX_FILE: path.join(tmp, 'index') };
      const head = await this.git([gitDir, 'rev-parse', '--verify', '-q', ref]);
      const parent = head.code === 0 ? head.stdout.trim() : undefined;
      if (parent) {
        check(
          await this.git([gitDir, 'read-tree', parent], index),
          'read-tree',
        );
      }
      const lines: string[] = [];
      for (const [file, content] of Object.entries(files)) {
        checkFilePath(file);
        if (content === null) {
          lines.push(`0 ${ZERO_SHA}\t${file}`);
        } else {
          const blob = check(
            await this.git(
              [gitDir, 'hash-object', '-w', '--stdin'],
              {},
              content,
            ),
            'hash-object',
          ).trim();
          lines.push(`100644 ${blob}\t${file}`);
        }
      }
      check(
        await this.git(
          [gitDir, 'update-index', '--index-info'],
          index,
          `${lines.join('\n')}\n`,
        ),
        'update-index',
      );
      const tree = check(
        await this.git([gitDir, 'write-tree'], index),
        'write-tree',
      ).trim();
      const who = identity(options.author);
      const commit = check(
        await this.git(
          [
            gitDir,
            'commit-tree',
            tree,
            ...(parent ? ['-p', parent] : []),
            '-m',
            options.message,
          ],
          {
            GIT_AUTHOR_NAME: who.name,
            GIT_AUTHOR_EMAIL: who.email,
            GIT_COMMITTER_NAME: who.name,
            GIT_COMMITTER_EMAIL: who.email,
          },
        ),
        'commit-tree',
      ).trim();
      check(
        await this.git([gitDir, 'update-ref', ref, commit, parent ?? ZERO_SHA]),
        'update-ref',
      );
      return commit;
    } finally {
      await fs.promises.rm(tmp, { recursive: true, force: true });
    }
  }

  /** The user a request authenticates as, or undefined. */
  private authenticate(header: string | undefined): string | undefined {
    const [scheme, value] = (header ?? '').trim().split(/\s+/, 2);
    if (!value) return undefined;
    if (scheme.toLowerCase() === 'bearer') {
      return sameSecret(value, this.token) ? 'token' : undefined;
    }
    if (scheme.toLowerCase() === 'basic') {
      const decoded = Buffer.from(value, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon === -1) return undefined;
      const user = decoded.slice(0, colon) || 'git';
      return sameSecret(decoded.slice(colon + 1), this.token)
        ? user
        : undefined;
    }
    return undefined;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse) {
    const fail = (status: number, text: string, headers = {}) => {
      req.resume();
      if (res.headersSent) {
        res.destroy();
        return;
      }
      res.writeHead(status, { 'Content-Type': 'text/plain', ...headers });
      res.end(`${text}\n`);
    };
    const user = this.authenticate(req.headers.authorization);
    if (!user) {
      fail(401, 'Authentication required', {
        'WWW-Authenticate': 'Basic realm="git"',
      });
      return;
    }
    let url: URL;
    let pathInfo: string;
    try {
      url = new URL(req.url ?? '/', 'http://git.invalid');
      pathInfo = decodeURIComponent(url.pathname);
    } catch {
      fail(400, 'Bad request');
      return;
    }
    if (pathInfo.split('/').includes('..') || pathInfo.includes('\0')) {
      fail(404, 'Not found');
      return;
    }
    const h = req.headers;
    const cgi: Record<string, string> = {
      GIT_PROJECT_ROOT: this.root,
      GIT_HTTP_EXPORT_ALL: '1',
      GATEWAY_INTERFACE: 'CGI/1.1',
      SERVER_PROTOCOL: `HTTP/${req.httpVersion}`,
      PATH_INFO: pathInfo,
      REQUEST_METHOD: req.method ?? 'GET',
      QUERY_STRING: url.search.slice(1),
      CONTENT_TYPE: h['content-type'] ?? '',
      // Set, receive-pack (push) is allowed without http.receivepack.
      REMOTE_USER: user,
      REMOTE_ADDR: req.socket.remoteAddress ?? '',
    };
    // Without CONTENT_LENGTH (a chunked request) http-backend reads to EOF.
    if (h['content-length']) cgi.CONTENT_LENGTH = h['content-length'];
    if (h['content-encoding'])
      cgi.HTTP_CONTENT_ENCODING = h['content-encoding'];
    const protocol = h['git-protocol'];
    if (typeof protocol === 'string') {
      cgi.GIT_PROTOCOL = protocol;
      cgi.HTTP_GIT_PROTOCOL = protocol;
    }
    let child: ChildProcess;
    try {
      child = spawn('git', ['http-backend'], {
        env: gitEnv(cgi),
        stdio: ['pipe', 'pipe', 'ignore'],
      });
    } catch {
      fail(500, 'git http-backend could not start');
      return;
    }
    this.children.add(child);
    const timer = setTimeout(() => child.kill('SIGKILL'), REQUEST_TIMEOUT_MS);
    const stdout = child.stdout!;
    let head = Buffer.alloc(0);
    let parsed = false;

    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      let end = head.indexOf('\r\n\r\n');
      let skip = 4;
      if (end === -1) {
        end = head.indexOf('\n\n');
        skip = 2;
      }
      if (end === -1) {
        if (head.length > 64 * 1024) child.kill('SIGKILL');
        return;
      }
      parsed = true;
      stdout.off('data', onData);
      let status = 200;
      const headers: Record<string, string> = {};
      for (const line of head
        .subarray(0, end)
        .toString('latin1')
        .split(/\r?\n/)) {
        const colon = line.indexOf(':');
        if (colon <= 0) continue;
        const key = line.slice(0, colon).trim();
        const value = line.slice(colon + 1).trim();
        if (key.toLowerCase() === 'status') status = parseInt(value, 10) || 500;
        else headers[key] = value;
      }
      res.writeHead(status, headers);
      res.write(head.subarray(end + skip));
      stdout.pipe(res);
    };
    stdout.on('data', onData);
    child.stdin!.on('error', () => {
      // http-backend answered (an error) without reading the whole body.
    });
    req.pipe(child.stdin!);
    res.on('close', () => {
      // The client went away: stop working for it.
      if (!res.writableFinished) child.kill('SIGKILL');
    });
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      this.children.delete(child);
      if (!parsed) fail(500, 'git http-backend failed');
      else if (!res.writableEnded) res.end();
    };
    child.on('error', finish);
    child.on('close', finish);
  }
}
