import {
  ConflictError,
  NotAllowedError,
  NotFoundError,
  ServiceUnavailableError,
} from '@backstage/errors';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import git from 'isomorphic-git';
import nodeHttp from 'isomorphic-git/http/node';

/** Basic credentials for the repository's host; never logged or recorded. */
export interface GitCredentials {
  username: string;
  password: string;
}

export interface GitCommitInfo {
  sha: string;
  /** The whole message. */
  message: string;
}

const DEFAULT_TIMEOUT_MS = 30_000;

/** Each call bounded: isomorphic-git's node client takes an AbortSignal. */
function boundedHttp(timeoutMs: number) {
  return {
    request: (request: Parameters<typeof nodeHttp.request>[0]) =>
      nodeHttp.request({
        ...request,
        signal: request.signal ?? AbortSignal.timeout(timeoutMs),
      }),
  };
}

/**
 * What the Git server said, as Backstage's errors: a refusal of the
 * credentials or a missing repository will not heal (the promotion ends,
 * saying so); an unreachable server may.
 */
function gitError(url: string, what: string, e: any): Error {
  // onAuthFailure (a 401 to the credentials given) cancels the call.
  const status =
    e?.data?.statusCode ?? (e?.code === 'UserCanceledError' ? 401 : undefined);
  if (status === 401 || status === 403) {
    return new NotAllowedError(
      `${url}: ${what} was refused (${status}); check the credentials (Backstage's integrations for its host, or the stage's deploy.git.token)`,
    );
  }
  if (status === 404) {
    return new NotFoundError(`${url}: no such repository (404)`);
  }
  if (
    e?.code === 'HttpError' ||
    e?.name === 'AbortError' ||
    e?.code?.startsWith?.('E')
  ) {
    return new ServiceUnavailableError(
      `${url}: ${what} failed: ${
        e?.name === 'AbortError' ? 'no answer in time' : e.message
      }`,
    );
  }
  return e;
}

/** Runs a call to the server, its failure said as {@link gitError}. */
async function remote<T>(url: string, what: string, call: () => Promise<T>) {
  try {
    return await call();
  } catch (e) {
    throw gitError(url, what, e);
  }
}

/**
 * One branch of a manifests repository, through isomorphic-git (the Git
 * library Backstage's scaffolder uses): fetched into a local object store
 * (no work tree), read, and changed by commits made from objects and
 * pushed without force. A push the server refuses because the branch
 * moved is made again on top of the new head, a bounded number of times.
 * Calls on one repository run one at a time.
 */
export class GitRepository {
  private readonly dir: string;
  private readonly http: ReturnType<typeof boundedHttp>;
  /** recentHead's fetches by branch, in flight or done. */
  private readonly recent = new Map<
    string,
    { at: number; head: Promise<GitCommitInfo> }
  >();
  /** lastChange's answers by commit and file: a commit never changes. */
  private readonly changes = new Map<string, GitCommitInfo | undefined>();
  private queue: Promise<unknown> = Promise.resolve();
  private initialized?: Promise<void>;

  constructor(
    readonly url: string,
    private readonly options: {
      /** Where the object stores of repositories are kept. */
      cacheDir: string;
      credentials?: () => Promise<GitCredentials | undefined>;
      timeoutMs?: number;
    },
  ) {
    this.dir = path.join(
      options.cacheDir,
      createHash('sha256').update(url).digest('hex').slice(0, 16),
    );
    this.http = boundedHttp(options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  }

  /** Runs `fn` after every earlier call on this repository ended. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async auth() {
    const credentials = await this.options.credentials?.();
    return credentials
      ? { onAuth: () => credentials, onAuthFailure: () => ({ cancel: true }) }
      : {};
  }

  private init() {
    this.initialized ??= (async () => {
      await fs.promises.mkdir(this.dir, { recursive: true });
      await git.init({ fs, dir: this.dir, bare: true, defaultBranch: 'main' });
      await git.addRemote({
        fs,
        gitdir: this.dir,
        remote: 'origin',
        url: this.url,
        force: true,
      });
    })();
    return this.initialized;
  }

  /** What the remote's HEAD points at: the default branch. */
  async defaultBranch(): Promise<string> {
    const auth = await this.auth();
    const info = await remote(this.url, 'reading its branches', () =>
      git.getRemoteInfo2({
        http: this.http,
        url: this.url,
        // Version 1 names HEAD's target (its symref capability).
        protocolVersion: 1,
        ...auth,
      }),
    );
    const head = info.refs?.find(r => r.ref === 'HEAD')?.target;
    if (!head?.startsWith('refs/heads/')) {
      throw new NotFoundError(`${this.url} names no default branch`);
    }
    return head.slice('refs/heads/'.length);
  }

  private async fetchHead(branch: string): Promise<string> {
    await this.init();
    const auth = await this.auth();
    const result = await remote(this.url, `fetching ${branch}`, () =>
      git.fetch({
        fs,
        http: this.http,
        gitdir: this.dir,
        remote: 'origin',
        ref: branch,
        singleBranch: true,
        tags: false,
        ...auth,
      }),
    );
    if (!result.fetchHead) {
      throw new NotFoundError(`${this.url} has no branch ${branch}`);
    }
    return result.fetchHead;
  }

  /** The branch head now (fetched), with its message. */
  head(branch: string): Promise<GitCommitInfo> {
    return this.serial(async () => {
      const sha = await this.fetchHead(branch);
      return this.commitInfo(sha);
    });
  }

  /**
   * The branch head as fetched at most `maxAgeMs` ago: for reads, so that
   * the cards of several stages on one branch share one fetch.
   */
  recentHead(branch: string, maxAgeMs = 2000): Promise<GitCommitInfo> {
    const hit = this.recent.get(branch);
    if (hit && Date.now() - hit.at < maxAgeMs) return hit.head;
    const head = this.head(branch);
    this.recent.set(branch, { at: Date.now(), head });
    head.catch(() => {
      if (this.recent.get(branch)?.head === head) this.recent.delete(branch);
    });
    return head;
  }

  private async commitInfo(sha: string): Promise<GitCommitInfo> {
    const { commit } = await git.readCommit({ fs, gitdir: this.dir, oid: sha });
    return { sha, message: commit.message };
  }

  /**
   * The newest of the last `depth` commits at or before `sha` (already
   * fetched) that changed `filepath`; undefined when it is absent there,
   * or none of them changed it (a bounded walk: a busy repository's pushes
   * wait for none of it).
   */
  lastChange(
    sha: string,
    filepath: string,
    depth = 100,
  ): Promise<GitCommitInfo | undefined> {
    const key = `${sha}\u0000${filepath}`;
    if (this.changes.has(key)) return Promise.resolve(this.changes.get(key));
    return this.serial(async () => {
      const log = await git.log({ fs, gitdir: this.dir, ref: sha, depth });
      const blobAt = async (oid: string) => {
        try {
          return (await git.readBlob({ fs, gitdir: this.dir, oid, filepath }))
            .oid;
        } catch (e: any) {
          if (e?.code === 'NotFoundError') return undefined;
          throw e;
        }
      };
      // Along first parents: the root commit made it, else the first
      // commit whose parent had another version of it.
      const byOid = new Map(log.map(entry => [entry.oid, entry]));
      let change: GitCommitInfo | undefined;
      let entry: (typeof log)[number] | undefined = log[0];
      const blob = entry && (await blobAt(entry.oid));
      while (blob && entry) {
        const parent: string | undefined = entry.commit.parent[0];
        const before = parent ? await blobAt(parent) : undefined;
        if (before !== blob) {
          change = { sha: entry.oid, message: entry.commit.message };
          break;
        }
        entry = byOid.get(parent!);
      }
      this.changes.set(key, change);
      if (this.changes.size > 500) {
        this.changes.delete(this.changes.keys().next().value!);
      }
      return change;
    });
  }

  /** A file's text at a commit already fetched; undefined when absent. */
  readFile(sha: string, filepath: string): Promise<string | undefined> {
    return this.serial(() => this.read(sha, filepath));
  }

  private async read(sha: string, filepath: string) {
    try {
      const { blob } = await git.readBlob({
        fs,
        gitdir: this.dir,
        oid: sha,
        filepath,
      });
      return Buffer.from(blob).toString('utf8');
    } catch (e: any) {
      if (e?.code === 'NotFoundError') return undefined;
      throw e;
    }
  }

  /**
   * The newest commit of the branch (the last `depth` of them) whose
   * message has the line `line`; fetched first.
   */
  findCommit(
    branch: string,
    line: string,
    depth = 200,
  ): Promise<GitCommitInfo | undefined> {
    return this.serial(async () => {
      const head = await this.fetchHead(branch);
      const log = await git.log({ fs, gitdir: this.dir, ref: head, depth });
      const found = log.find(entry =>
        entry.commit.message.split('\n').some(l => l.trim() === line),
      );
      return found && { sha: found.oid, message: found.commit.message };
    });
  }

  /** Whether `sha` is `ancestor` or comes after it (both fetched). */
  async includes(sha: string, ancestor: string): Promise<boolean> {
    if (sha === ancestor) return true;
    return this.serial(async () => {
      try {
        return await git.isDescendent({
          fs,
          gitdir: this.dir,
          oid: sha,
          ancestor,
          depth: -1,
        });
      } catch (e: any) {
        // A revision this store has not fetched is not known to follow it.
        if (e?.code === 'NotFoundError') return false;
        throw e;
      }
    });
  }

  /**
   * Commits `edit`'s change of one file on top of the branch head and
   * pushes it. `edit` gets the file's text at the head (undefined when
   * absent) and returns the new text, or undefined when the head already
   * says what it would write (nothing is committed then). When the branch
   * moved between the fetch and the push, it fetches and edits again on
   * the new head, up to `attempts` times, so that no one's commit is lost.
   */
  commitFile(options: {
    branch: string;
    filepath: string;
    edit: (
      text: string | undefined,
      head: string,
    ) => string | undefined | Promise<string | undefined>;
    message: string;
    author: { name: string; email: string };
    attempts?: number;
  }): Promise<{
    sha: string;
    parent: string;
    created: boolean;
    attempts: number;
  }> {
    const attempts = options.attempts ?? 5;
    return this.serial(async () => {
      for (let attempt = 1; attempt <= attempts; attempt++) {
        const head = await this.fetchHead(options.branch);
        const text = await this.read(head, options.filepath);
        const next = await options.edit(text, head);
        if (next === undefined || next === text) {
          return { sha: head, parent: head, created: false, attempts: attempt };
        }
        const blob = await git.writeBlob({
          fs,
          gitdir: this.dir,
          blob: Buffer.from(next, 'utf8'),
        });
        const { commit } = await git.readCommit({
          fs,
          gitdir: this.dir,
          oid: head,
        });
        const tree = await this.replace(
          commit.tree,
          options.filepath.split('/'),
          blob,
        );
        const sha = await git.commit({
          fs,
          gitdir: this.dir,
          message: options.message,
          author: options.author,
          tree,
          parent: [head],
          noUpdateBranch: true,
        });
        const ref = 'refs/heads/progression-push';
        await git.writeRef({
          fs,
          gitdir: this.dir,
          ref,
          value: sha,
          force: true,
        });
        try {
          const result = await git.push({
            fs,
            http: this.http,
            gitdir: this.dir,
            url: this.url,
            ref,
            remoteRef: `refs/heads/${options.branch}`,
            ...(await this.auth()),
          });
          const status = result.refs?.[`refs/heads/${options.branch}`];
          if (result.ok && status?.ok !== false) {
            return { sha, parent: head, created: true, attempts: attempt };
          }
          const why = status?.error ?? result.error ?? 'rejected';
          if (!/fast.forward|fetch first|stale|rejected/i.test(why)) {
            throw new Error(`${this.url} refused the push: ${why}`);
          }
        } catch (e: any) {
          // Refused because the branch moved: by isomorphic-git before it
          // sends (not a fast-forward), or by the server (its ref moved
          // while it received the push).
          const moved =
            e?.code === 'PushRejectedError' ||
            (e?.code === 'GitPushError' &&
              /failed to update ref|cannot lock ref|fetch first|non-fast-forward/i.test(
                e.message,
              ));
          if (!moved) {
            throw gitError(this.url, `pushing to ${options.branch}`, e);
          }
        }
        // The branch moved: someone else's commit landed first. A short,
        // growing, jittered pause, so two pushers do not collide again.
        await sleep(Math.random() * 200 * attempt);
      }
      throw new ConflictError(
        `branch ${options.branch} of ${this.url} moved during each of ${attempts} pushes; nothing was changed — try again`,
      );
    });
  }

  /** The tree `treeOid` with the blob at `parts` replaced (or added). */
  private async replace(
    treeOid: string,
    parts: string[],
    blob: string,
  ): Promise<string> {
    const { tree } = await git.readTree({ fs, gitdir: this.dir, oid: treeOid });
    const [name, ...rest] = parts;
    const existing = tree.find(e => e.path === name);
    const entry = rest.length
      ? {
          mode: '040000',
          path: name,
          type: 'tree' as const,
          oid: await this.replace(
            existing?.type === 'tree'
              ? existing.oid
              : await git.writeTree({ fs, gitdir: this.dir, tree: [] }),
            rest,
            blob,
          ),
        }
      : {
          mode: existing?.mode ?? '100644',
          path: name,
          type: 'blob' as const,
          oid: blob,
        };
    return git.writeTree({
      fs,
      gitdir: this.dir,
      tree: [...tree.filter(e => e.path !== name), entry],
    });
  }
}
