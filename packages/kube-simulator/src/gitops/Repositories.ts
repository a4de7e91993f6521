import { ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { KubeObject } from '../store/Store';
import { check, gitEnv, run } from './run';

export interface RepositoryCredentials {
  username: string;
  password: string;
}

export interface RenderedManifests {
  sourceType: 'Kustomize' | 'Directory';
  objects: KubeObject[];
}

const REVISION = /^[A-Za-z0-9][A-Za-z0-9._/-]*$/;
const KUSTOMIZATION_FILES = [
  'kustomization.yaml',
  'kustomization.yml',
  'Kustomization',
];
const GIT_TIMEOUT_MS = 60_000;
/** Argo CD's repo server gives a manifest generation 90 s (its exec timeout). */
const RENDER_TIMEOUT_MS = 90_000;

/**
 * Argo CD's repo server, reduced: a bare mirror per repository URL
 * (`git clone --mirror`, then `git fetch --prune`), revisions resolved to
 * commits, and manifests rendered from a commit's tree with
 * `kubectl kustomize` (or read as plain YAML when the path holds no
 * kustomization), cached by repository, commit and path.
 */
export class Repositories {
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly rendered = new Map<string, RenderedManifests>();

  constructor(
    private readonly dir: string,
    private readonly credentials: Record<string, RepositoryCredentials>,
    private readonly kubectl: string,
    private readonly children: Set<ChildProcess>,
  ) {}

  /** Fetches the repository and resolves a branch, tag, sha or HEAD to a commit sha. */
  resolve(repoURL: string, revision: string | undefined): Promise<string> {
    const rev = revision || 'HEAD';
    if (!REVISION.test(rev) || rev.includes('..')) {
      return Promise.reject(new Error(`invalid revision '${rev}'`));
    }
    return this.locked(repoURL, async () => {
      const mirror = await this.fetch(repoURL);
      const candidates =
        rev === 'HEAD'
          ? ['HEAD']
          : [
              `refs/heads/${rev}`,
              `refs/tags/${rev}`,
              ...(/^[0-9a-f]{4,40}$/i.test(rev) ? [rev] : []),
            ];
      for (const candidate of candidates) {
        const result = await this.git([
          `--git-dir=${mirror}`,
          'rev-parse',
          '--verify',
          '--quiet',
          `${candidate}^{commit}`,
        ]);
        if (result.code === 0) return result.stdout.trim();
      }
      throw new Error(`unable to resolve '${rev}' to a commit SHA`);
    });
  }

  /**
   * The manifests at `sourcePath` of a commit (already fetched by
   * `resolve`); `fresh` regenerates them, as a hard refresh does.
   */
  render(
    repoURL: string,
    sha: string,
    sourcePath: string | undefined,
    fresh = false,
  ): Promise<RenderedManifests> {
    const key = JSON.stringify([repoURL, sha, sourcePath ?? '.']);
    const cached = this.rendered.get(key);
    if (cached && !fresh) return Promise.resolve(structuredClone(cached));
    return this.locked(repoURL, async () => {
      const manifests = await this.generate(repoURL, sha, sourcePath ?? '.');
      this.rendered.set(key, manifests);
      return structuredClone(manifests);
    });
  }

  /** One git operation per repository at a time. */
  private locked<T>(repoURL: string, work: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(repoURL) ?? Promise.resolve();
    const next = previous.then(work, work);
    const settled = next.catch(() => undefined);
    this.locks.set(repoURL, settled);
    settled.then(() => {
      if (this.locks.get(repoURL) === settled) this.locks.delete(repoURL);
    });
    return next;
  }

  private git(args: string[], env: Record<string, string> = {}) {
    return run('git', args, {
      env: gitEnv({ GIT_ALLOW_PROTOCOL: 'http:https', ...env }),
      timeoutMs: GIT_TIMEOUT_MS,
      children: this.children,
    });
  }

  /**
   * The credentials of the longest matching URL prefix, as an extra header
   * in git's environment: never on the URL, the command line or disk.
   */
  private authEnv(repoURL: string): Record<string, string> {
    const prefix = Object.keys(this.credentials)
      .filter(p => repoURL.startsWith(p))
      .sort((a, b) => b.length - a.length)[0];
    if (prefix === undefined) return {};
    const { username, password } = this.credentials[prefix];
    const basic = Buffer.from(`${username}:${password}`).toString('base64');
    return {
      GIT_CONFIG_COUNT: '1',
      GIT_CONFIG_KEY_0: 'http.extraHeader',
      GIT_CONFIG_VALUE_0: `Authorization: Basic ${basic}`,
    };
  }

  private mirrorOf(repoURL: string) {
    if (!/^https?:\/\/[^\s]+$/.test(repoURL)) {
      throw new Error(`unsupported repository URL '${repoURL}'`);
    }
    const name = crypto
      .createHash('sha256')
      .update(repoURL)
      .digest('hex')
      .slice(0, 16);
    return path.join(this.dir, 'repos', `${name}.git`);
  }

  private async fetch(repoURL: string): Promise<string> {
    const mirror = this.mirrorOf(repoURL);
    const env = this.authEnv(repoURL);
    if (fs.existsSync(mirror)) {
      check(
        await this.git(
          [`--git-dir=${mirror}`, 'fetch', '--prune', '--quiet', 'origin'],
          env,
        ),
        `git fetch ${repoURL}`,
      );
    } else {
      const result = await this.git(
        ['clone', '--mirror', '--quiet', '--', repoURL, mirror],
        env,
      );
      if (result.code !== 0) {
        await fs.promises.rm(mirror, { recursive: true, force: true });
        check(result, `git clone ${repoURL}`);
      }
    }
    return mirror;
  }

  private async generate(
    repoURL: string,
    sha: string,
    sourcePath: string,
  ): Promise<RenderedManifests> {
    let mirror = this.mirrorOf(repoURL);
    const present = await this.git([
      `--git-dir=${mirror}`,
      'cat-file',
      '-e',
      `${sha}^{commit}`,
    ]);
    if (present.code !== 0) mirror = await this.fetch(repoURL);
    const work = await fs.promises.mkdtemp(path.join(this.dir, 'render-'));
    try {
      const tree = path.join(work, 'tree');
      await fs.promises.mkdir(tree);
      const index = { GIT_INDEX_FILE: path.join(work, 'index') };
      check(
        await this.git([`--git-dir=${mirror}`, 'read-tree', sha], index),
        `git read-tree ${sha}`,
      );
      check(
        await this.git(
          [
            `--git-dir=${mirror}`,
            `--work-tree=${tree}`,
            'checkout-index',
            '-a',
          ],
          index,
        ),
        'git checkout-index',
      );
      await refuseOutOfBoundsSymlinks(tree, tree);
      const appPath = path.resolve(tree, sourcePath);
      if (
        (appPath !== tree && !appPath.startsWith(`${tree}${path.sep}`)) ||
        !fs.existsSync(appPath) ||
        !fs.statSync(appPath).isDirectory()
      ) {
        throw new Error(`${sourcePath}: app path does not exist`);
      }
      const kustomize = KUSTOMIZATION_FILES.some(f =>
        fs.existsSync(path.join(appPath, f)),
      );
      if (kustomize) {
        const result = await run(this.kubectl, ['kustomize', appPath], {
          env: { ...process.env, HOME: work, KUBECONFIG: '/dev/null' },
          timeoutMs: RENDER_TIMEOUT_MS,
          children: this.children,
        });
        if (result.code !== 0) {
          // Paths in the message are the repository's, not the temporary copy's.
          const detail = result.stderr
            .split(`${tree}${path.sep}`)
            .join('')
            .trim();
          // kubectl logs the error through klog; Argo CD's kustomize binary
          // prints `Error: …`, which its message quotes.
          const klog =
            /^[EWIF]\d{4} [\d:.]+\s+\d+ [^\]]+\] "command failed" err="(.*)"$/s.exec(
              detail,
            );
          throw new Error(
            `kustomize build ${sourcePath} failed exit status ${result.code}: ${
              klog ? `Error: ${klog[1].replace(/\\"/g, '"')}` : detail
            }`,
          );
        }
        return {
          sourceType: 'Kustomize',
          objects: parseManifests(result.stdout),
        };
      }
      // A directory of plain manifests (Argo CD's Directory source type).
      const files = (await fs.promises.readdir(appPath))
        .filter(f => /\.(ya?ml|json)$/.test(f))
        .sort();
      const objects: KubeObject[] = [];
      for (const f of files) {
        const text = await fs.promises.readFile(path.join(appPath, f), 'utf8');
        objects.push(...parseManifests(text, f));
      }
      return { sourceType: 'Directory', objects };
    } finally {
      await fs.promises.rm(work, { recursive: true, force: true });
    }
  }
}

/** Argo CD refuses a repository whose symlinks point outside it. */
async function refuseOutOfBoundsSymlinks(root: string, dir: string) {
  for (const entry of await fs.promises.readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isSymbolicLink()) {
      const target = path.resolve(dir, await fs.promises.readlink(full));
      if (target !== root && !target.startsWith(`${root}${path.sep}`)) {
        throw new Error(
          `repository contains out-of-bounds symlinks. file: ${path.relative(
            root,
            full,
          )}`,
        );
      }
    } else if (entry.isDirectory()) {
      await refuseOutOfBoundsSymlinks(root, full);
    }
  }
}

/** Multi-document YAML (or JSON) to objects; `List` kinds are flattened. */
export function parseManifests(text: string, file = 'manifest'): KubeObject[] {
  const objects: KubeObject[] = [];
  for (const doc of YAML.parseAllDocuments(text)) {
    if (doc.errors.length) {
      throw new Error(`${file}: ${doc.errors[0].message}`);
    }
    const value = doc.toJS();
    if (value === null || value === undefined) continue;
    const items =
      typeof value.kind === 'string' &&
      value.kind.endsWith('List') &&
      Array.isArray(value.items)
        ? value.items
        : [value];
    for (const o of items) {
      if (
        !o ||
        typeof o !== 'object' ||
        typeof o.apiVersion !== 'string' ||
        typeof o.kind !== 'string' ||
        typeof o.metadata?.name !== 'string'
      ) {
        throw new Error(
          `${file}: every object needs apiVersion, kind and metadata.name`,
        );
      }
      objects.push(o as KubeObject);
    }
  }
  return objects;
}
