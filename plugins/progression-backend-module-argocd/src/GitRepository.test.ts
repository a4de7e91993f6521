import { GitServer } from '@internal/kube-simulator';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GitRepository } from './GitRepository';

/*
 * Against a real Git server (Git's own `git http-backend` behind a token),
 * as a hosted Git would answer: fetches, commits made from objects, pushes
 * without force, and what the server refuses.
 */
jest.setTimeout(60_000);

const TOKEN = 'git-token-5150';
const author = { name: 'Progression', email: 'progression@backstage.io' };
let server: GitServer;
let cacheDir: string;

beforeAll(async () => {
  server = await GitServer.start({ token: TOKEN });
  cacheDir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'git-cache-'));
  await server.createRepository('manifests', {
    'README.md': '# manifests\n',
    'overlays/dev/kustomization.yaml':
      'images:\n  - name: app\n    newTag: "1"\n',
    'overlays/dev/patch.yaml': 'kept: true\n',
  });
});

afterAll(async () => {
  await server?.stop();
  await fs.promises.rm(cacheDir, { recursive: true, force: true });
});

const repository = (password = TOKEN) =>
  new GitRepository(server.repoUrl('manifests'), {
    cacheDir,
    credentials: async () => ({ username: 'progression', password }),
  });

it('commits one file on top of the head and pushes it, leaving every other file as it was', async () => {
  const repo = repository();
  const head = await repo.head('main');
  const result = await repo.commitFile({
    branch: 'main',
    filepath: 'overlays/dev/kustomization.yaml',
    edit: text => text!.replace('"1"', '"2"'),
    message: 'Promote app 2 to dev\n\nProgression-Promotion: p-1',
    author,
  });
  expect(result).toMatchObject({
    parent: head.sha,
    created: true,
    attempts: 1,
  });
  expect(await server.log('manifests')).toEqual([
    { sha: result.sha, subject: 'Promote app 2 to dev' },
    expect.objectContaining({ sha: head.sha }),
  ]);
  expect(
    await server.readFile('manifests', 'overlays/dev/kustomization.yaml'),
  ).toBe('images:\n  - name: app\n    newTag: "2"\n');
  expect(await server.readFile('manifests', 'overlays/dev/patch.yaml')).toBe(
    'kept: true\n',
  );
  expect(await server.readFile('manifests', 'README.md')).toBe('# manifests\n');
  expect(await repo.findCommit('main', 'Progression-Promotion: p-1')).toEqual({
    sha: result.sha,
    message: 'Promote app 2 to dev\n\nProgression-Promotion: p-1\n',
  });
  expect(await repo.findCommit('main', 'Progression-Promotion: p-2')).toBe(
    undefined,
  );
  expect(await repo.defaultBranch()).toBe('main');
  // The newest commit that changed a file, at or before a commit.
  expect(
    await repo.lastChange(result.sha, 'overlays/dev/kustomization.yaml'),
  ).toEqual({ sha: result.sha, message: expect.stringMatching(/^Promote/) });
  expect(await repo.lastChange(result.sha, 'README.md')).toEqual(
    expect.objectContaining({ sha: head.sha }),
  );
  expect(await repo.lastChange(result.sha, 'absent.yaml')).toBeUndefined();
  // Order: the new commit follows the old head, not the other way.
  expect(await repo.includes(result.sha, head.sha)).toBe(true);
  expect(await repo.includes(head.sha, result.sha)).toBe(false);
  expect(await repo.includes(result.sha, result.sha)).toBe(true);
});

it('shares a recent fetch of the head between reads, and fetches again when it is older than they accept', async () => {
  const repo = repository();
  const first = await repo.recentHead('main', 60_000);
  const pushed = await server.commit(
    'manifests',
    { 'notes.txt': 'recent\n' },
    { message: 'A commit after the read' },
  );
  // Within its age: the same head, no fetch.
  expect((await repo.recentHead('main', 60_000)).sha).toBe(first.sha);
  // Older than the reader accepts: fetched again.
  expect((await repo.recentHead('main', 0)).sha).toBe(pushed);
  expect((await repo.head('main')).sha).toBe(pushed);
});

it('makes no commit when the head already says it', async () => {
  const before = await server.log('manifests');
  const result = await repository().commitFile({
    branch: 'main',
    filepath: 'overlays/dev/kustomization.yaml',
    edit: () => undefined,
    message: 'nothing',
    author,
  });
  expect(result).toMatchObject({ sha: before[0].sha, created: false });
  expect(await server.log('manifests')).toEqual(before);
});

it('builds on commits pushed since its last fetch', async () => {
  const stale = repository();
  await stale.head('main');
  const someone = await server.commit(
    'manifests',
    { 'overlays/dev/patch.yaml': 'kept: true\nreplicas: 3\n' },
    { message: 'Scale dev to 3', author: 'Someone <someone@example.com>' },
  );
  const seen: string[] = [];
  const ours = await stale.commitFile({
    branch: 'main',
    filepath: 'overlays/dev/kustomization.yaml',
    edit: (text, head) => {
      seen.push(head);
      return text!.replace(/newTag: "\d+"/, 'newTag: "4"');
    },
    message: 'Promote app 4 to dev',
    author,
  });
  expect(seen).toEqual([someone]);
  expect(ours).toMatchObject({ parent: someone, created: true, attempts: 1 });
  expect(
    (await server.log('manifests')).slice(0, 2).map(c => c.subject),
  ).toEqual(['Promote app 4 to dev', 'Scale dev to 3']);
  expect(await server.readFile('manifests', 'overlays/dev/patch.yaml')).toBe(
    'kept: true\nreplicas: 3\n',
  );
});

it('pushes again on top of a commit that lands between its fetch and its push', async () => {
  const repo = repository();
  const heads: string[] = [];
  let theirs: Promise<string> | undefined;
  const result = await repo.commitFile({
    branch: 'main',
    filepath: 'overlays/dev/kustomization.yaml',
    edit: async (text, head) => {
      heads.push(head);
      // The first time only: someone pushes after this fetch, before this push.
      if (!theirs) {
        theirs = server.commit(
          'manifests',
          { 'overlays/dev/patch.yaml': 'kept: true\nreplicas: 5\n' },
          { message: 'Scale dev to 5' },
        );
        await theirs;
      }
      return text!.replace(/newTag: "\d+"/, 'newTag: "5"');
    },
    message: 'Promote app 5 to dev',
    author,
  });
  const someone = await theirs!;
  expect(heads).toHaveLength(2);
  expect(heads[1]).toBe(someone);
  expect(result).toMatchObject({ parent: someone, created: true, attempts: 2 });
  expect((await server.log('manifests')).slice(0, 2)).toEqual([
    { sha: result.sha, subject: 'Promote app 5 to dev' },
    { sha: someone, subject: 'Scale dev to 5' },
  ]);
  expect(await server.readFile('manifests', 'overlays/dev/patch.yaml')).toBe(
    'kept: true\nreplicas: 5\n',
  );
  expect(
    await server.readFile('manifests', 'overlays/dev/kustomization.yaml'),
  ).toContain('newTag: "5"');
});

it('gives up after its attempts when the branch keeps moving, changing nothing', async () => {
  const repo = repository();
  const before = (await server.log('manifests'))[0].sha;
  let pushes = 0;
  const error = await repo
    .commitFile({
      branch: 'main',
      filepath: 'overlays/dev/kustomization.yaml',
      edit: async text => {
        pushes++;
        await server.commit(
          'manifests',
          { 'notes.txt': `busy ${pushes}\n` },
          { message: `Busy ${pushes}` },
        );
        return text!.replace(/newTag: "\d+"/, 'newTag: "6"');
      },
      message: 'Promote app 6 to dev',
      author,
      attempts: 2,
    })
    .catch(e => e);
  expect(error).toMatchObject({
    name: 'ConflictError',
    message: `branch main of ${server.repoUrl(
      'manifests',
    )} moved during each of 2 pushes; nothing was changed — try again`,
  });
  const log = await server.log('manifests');
  expect(log.map(c => c.subject).slice(0, 3)).toEqual([
    'Busy 2',
    'Busy 1',
    'Promote app 5 to dev',
  ]);
  expect(log[2].sha).toBe(before);
});

it('says when the server refuses the credentials, without the token', async () => {
  const error = await repository('wrong-token')
    .head('main')
    .catch(e => e);
  expect(error.name).toBe('NotAllowedError');
  expect(
    error.message.startsWith(
      `${server.repoUrl('manifests')}: fetching main was refused (401)`,
    ),
  ).toBe(true);
  expect(error.message).not.toContain('wrong-token');
});
