import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test, expect, api, CI, signInAsGuest, Page } from './fixtures';

/*
 * The GitOps example of the demo: checkout's manifests repository on the
 * demo's Git server (git http-backend, :7180) and its Applications on the
 * Argo CD stand-in (:7181), which renders the overlays with kubectl
 * kustomize. Git is read with the real git binary, the cluster changed with
 * the real kubectl, Argo CD asked through its REST API.
 */

const ROOT = path.resolve(__dirname, '../../..');
const KUBECONFIG = path.join(ROOT, '.demo/kubeconfig');
const REPO = 'http://127.0.0.1:7180/manifests.git';
const GIT_AUTH = `Authorization: Basic ${Buffer.from(
  'ci:progression-demo-git-token',
).toString('base64')}`;
const ARGOCD = 'http://127.0.0.1:7181';
const ARGOCD_AUTH = { Authorization: 'Bearer progression-demo-argocd-token' };
const entity = `${api}/entities/component/default/checkout`;
const IMAGE = 'registry.local/checkout';

test.describe.configure({ mode: 'serial' });

let clone: string;
test.beforeAll(() => {
  clone = fs.mkdtempSync(path.join(os.tmpdir(), 'e2e-manifests-'));
  git('clone', '--quiet', REPO, clone);
});
test.afterAll(() => fs.rmSync(clone, { recursive: true, force: true }));

function git(...args: string[]) {
  return execFileSync('git', ['-c', `http.extraHeader=${GIT_AUTH}`, ...args], {
    encoding: 'utf8',
  });
}

/** The branch head's commits, newest first: sha, subject and body. */
function log() {
  git('-C', clone, 'pull', '--quiet', '--ff-only');
  return git('-C', clone, 'log', '--format=%H%x1f%s%x1f%b%x1e')
    .split('\x1e')
    .map(entry => entry.trim())
    .filter(Boolean)
    .map(entry => {
      const [sha, subject, body] = entry.split('\x1f');
      return { sha, subject, body };
    });
}

const overlay = (stage: string) =>
  fs.readFileSync(
    path.join(clone, `overlays/${stage}/kustomization.yaml`),
    'utf8',
  );

function kubectl(...args: string[]) {
  return execFileSync('kubectl', args, {
    encoding: 'utf8',
    env: { ...process.env, KUBECONFIG },
  });
}

const liveImage = (namespace: string) =>
  kubectl(
    'get',
    'deployment',
    'checkout',
    '-n',
    namespace,
    '-o',
    'jsonpath={.spec.template.spec.containers[0].image}',
  );

async function application(name: string) {
  const res = await fetch(`${ARGOCD}/api/v1/applications/${name}`, {
    headers: ARGOCD_AUTH,
  });
  expect(res.status).toBe(200);
  return res.json();
}

async function openCheckout(page: Page) {
  await page.goto('/catalog/default/component/checkout/environments');
  await expect(
    page.getByRole('list', { name: 'Stages of pipeline GitOps' }),
  ).toBeVisible();
}

test('a checkout release flows into dev by a commit and an automated sync, to staging, and to production after an approval, where Progression syncs', async ({
  page,
  request,
}, testInfo) => {
  const initial = log();
  const registered = await request.post(`${entity}/releases`, {
    headers: CI,
    data: { version: '1.1.0', image: `${IMAGE}:1.1.0` },
  });
  expect([200, 201]).toContain(registered.status());

  await signInAsGuest(page);
  await openCheckout(page);
  const dev = page.getByTestId('stage-dev');
  const staging = page.getByTestId('stage-staging');
  const production = page.getByTestId('stage-production');
  await expect(dev).toContainText('Live: 1.1.0', { timeout: 90_000 });
  await expect(dev).toContainText('Last promotion: 1.1.0 succeeded', {
    timeout: 60_000,
  });
  const [devCommit] = log();
  expect(devCommit.subject).toBe('Promote checkout 1.1.0 to dev');
  await page.reload();
  const devGitOps = dev.getByTestId('gitops-section');
  await expect(devGitOps.getByTestId('gitops-commit')).toContainText(
    devCommit.sha.slice(0, 7),
  );
  await expect(devGitOps.getByTestId('gitops-commit')).toContainText(
    'Promote checkout 1.1.0 to dev',
  );
  await expect(devGitOps.getByTestId('gitops-application')).toContainText(
    'checkout-dev',
  );
  await expect(devGitOps.getByTestId('gitops-application')).toContainText(
    'Synced',
  );
  await expect(devGitOps.getByTestId('gitops-application')).toContainText(
    'Healthy',
  );

  // Staging, from the tab.
  await page.getByRole('button', { name: 'Promote 1.1.0 to Staging' }).click();
  const dialog = page.getByRole('dialog');
  await dialog.getByRole('button', { name: 'Promote' }).click();
  await expect(staging).toContainText('Live: 1.1.0', { timeout: 90_000 });
  await expect(staging).toContainText('Last promotion: 1.1.0 succeeded', {
    timeout: 60_000,
  });

  // Production: CI asks, nothing is committed before a release manager approves.
  const requested = await request.post(`${entity}/promotions`, {
    headers: CI,
    data: { stage: 'production', version: '1.1.0', reason: 'CI run 7' },
  });
  expect(requested.status()).toBe(202);
  await expect(production).toContainText('Promoting 1.1.0: awaiting-approval', {
    timeout: 60_000,
  });
  expect(log()[0].subject).toBe('Promote checkout 1.1.0 to staging');
  expect(liveImage('production')).toBe(`${IMAGE}:1.0.0`);
  await page
    .getByRole('button', { name: 'Approve 1.1.0 to Production' })
    .click();
  await page
    .getByRole('dialog')
    .getByRole('button', { name: 'Approve' })
    .click();
  await expect(production).toContainText('Live: 1.1.0', { timeout: 90_000 });
  await expect(production).toContainText('Last promotion: 1.1.0 succeeded', {
    timeout: 60_000,
  });

  // One commit per deploy, each naming its promotion.
  const commits = log();
  expect(commits.length - initial.length).toBe(3);
  expect(commits.slice(0, 3).map(c => c.subject)).toEqual([
    'Promote checkout 1.1.0 to production',
    'Promote checkout 1.1.0 to staging',
    'Promote checkout 1.1.0 to dev',
  ]);
  const promotions = await Promise.all(
    ['production', 'staging', 'dev'].map(async stage => {
      const list = await (
        await request.get(`${entity}/promotions?stage=${stage}&limit=1`, {
          headers: CI,
        })
      ).json();
      return list.items[0].id;
    }),
  );
  commits.slice(0, 3).forEach((commit, i) => {
    expect(commit.body).toContain(`Progression-Promotion: ${promotions[i]}`);
  });
  for (const stage of ['dev', 'staging', 'production']) {
    expect(overlay(stage)).toContain('newTag: 1.1.0');
  }
  // The manual Application was synced to Progression's commit.
  const app = await application('checkout-production');
  expect(app.spec.syncPolicy.automated).toBeUndefined();
  expect(app.status.operationState).toMatchObject({
    phase: 'Succeeded',
    syncResult: { revision: commits[0].sha },
  });
  await page.reload();
  await expect(
    production.getByTestId('gitops-section').getByTestId('gitops-commit'),
  ).toContainText('Promote checkout 1.1.0 to production');
  await page.screenshot({
    path: testInfo.outputPath('gitops-checkout-promoted.png'),
    fullPage: true,
  });
});

test('an unhealthy checkout release in dev is rolled back by a second commit and a sync', async ({
  page,
  request,
}, testInfo) => {
  const registered = await request.post(`${entity}/releases`, {
    headers: CI,
    data: { version: '1.2.0-unhealthy', image: `${IMAGE}:1.2.0-unhealthy` },
  });
  expect([200, 201]).toContain(registered.status());
  await expect(async () => {
    const list = await (
      await request.get(`${entity}/promotions?stage=dev&limit=1`, {
        headers: CI,
      })
    ).json();
    expect(list.items[0]).toMatchObject({
      state: 'rolled-back',
      release: { version: '1.2.0-unhealthy' },
    });
  }).toPass({ timeout: 120_000 });
  const [undo, commit] = log();
  expect([undo.subject, commit.subject]).toEqual([
    `Roll back checkout in dev to ${IMAGE}:1.1.0`,
    'Promote checkout 1.2.0-unhealthy to dev',
  ]);
  expect(overlay('dev')).toContain('newTag: 1.1.0');
  expect((await application('checkout-dev')).status.sync).toMatchObject({
    status: 'Synced',
    revision: undo.sha,
  });

  await signInAsGuest(page);
  await openCheckout(page);
  const dev = page.getByTestId('stage-dev');
  await expect(dev).toContainText('Live: 1.1.0');
  await expect(dev.getByTestId('gitops-commit')).toContainText(
    undo.sha.slice(0, 7),
  );
  const history = page.getByRole('table', { name: 'Promotion history' });
  const row = history.getByRole('row').filter({ hasText: '1.2.0-unhealthy' });
  await row.getByRole('button', { name: /Details of promotion/ }).click();
  const details = page.getByRole('dialog');
  await expect(details).toContainText(commit.sha.slice(0, 7));
  await expect(details).toContainText(undo.sha.slice(0, 7));
  // Argo CD's sync of the roll-forward commit, as Argo CD reported it.
  await expect(details).toContainText(
    `Argo CD sync of ${undo.sha.slice(0, 7)}: Succeeded`,
  );
  await page.screenshot({
    path: testInfo.outputPath('gitops-checkout-rolled-back.png'),
    fullPage: true,
  });
});

test("kubectl set image in dev shows as drift until Argo CD's selfHeal reverts it; in production the drift stays until the next sync", async ({
  page,
}, testInfo) => {
  await signInAsGuest(page);
  kubectl(
    'set',
    'image',
    'deployment/checkout',
    '-n',
    'development',
    `checkout=${IMAGE}:hotfix`,
  );
  await openCheckout(page);
  const dev = page.getByTestId('stage-dev');
  // The demo's Argo CD leaves a drift 15 s before it heals it.
  await expect(dev.getByTestId('gitops-drift-live')).toContainText(
    `the Deployment runs ${IMAGE}:hotfix; the overlay names ${IMAGE}:1.1.0`,
  );
  await page.screenshot({
    path: testInfo.outputPath('gitops-drift-dev.png'),
    fullPage: true,
  });
  await expect(async () => {
    expect(liveImage('development')).toBe(`${IMAGE}:1.1.0`);
  }).toPass({ timeout: 60_000 });
  await expect(async () => {
    await page.reload();
    await expect(dev.getByTestId('gitops-section')).toBeVisible();
    await expect(dev.getByTestId('gitops-drift-live')).toHaveCount(0);
  }).toPass({ timeout: 30_000 });

  kubectl(
    'set',
    'image',
    'deployment/checkout',
    '-n',
    'production',
    `checkout=${IMAGE}:hotfix`,
  );
  const production = page.getByTestId('stage-production');
  await expect(async () => {
    await page.reload();
    await expect(production.getByTestId('gitops-drift-live')).toBeVisible();
  }).toPass({ timeout: 30_000 });
  // Past dev's 15 s: a manual Application does not heal.
  await page.waitForTimeout(20_000);
  expect(liveImage('production')).toBe(`${IMAGE}:hotfix`);
  await page.reload();
  await expect(production.getByTestId('gitops-drift-live')).toBeVisible();
  await expect(production.getByTestId('gitops-drift-argocd')).toContainText(
    'OutOfSync',
  );
  // The next sync (a person's, in Argo CD) ends it.
  const sync = await fetch(
    `${ARGOCD}/api/v1/applications/checkout-production/sync`,
    {
      method: 'POST',
      headers: { ...ARGOCD_AUTH, 'Content-Type': 'application/json' },
      body: '{}',
    },
  );
  expect(sync.status).toBe(200);
  await expect(async () => {
    expect(liveImage('production')).toBe(`${IMAGE}:1.1.0`);
  }).toPass({ timeout: 60_000 });
});
