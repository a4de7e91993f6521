import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  test,
  expect,
  api,
  APIRequestContext,
  CI,
  openNotifications,
  signInAsGuest,
} from './fixtures';

/*
 * Promotion windows and freezes in the demo, run by scripts/test.sh against
 * ./scripts/start.sh with scripts/demo-window-config.sh's deny window on
 * web-shop's production (the first 40 s of every minute, UTC), and the demo
 * Prometheus's DemoHighErrorRatio alert freezing payments-api's staging
 * (scripts/demo-prometheus-rules.yml). The backend's log is at
 * PROGRESSION_DEMO_LOG, where the audit events are read.
 */

const ROOT = path.resolve(__dirname, '../../..');
const IMAGES = path.join(ROOT, 'docs/images');

async function stageOf(
  request: APIRequestContext,
  name: string,
  stage: string,
) {
  const environments = await (
    await request.get(
      `${api}/entities/component/default/${name}/environments`,
      {
        headers: CI,
      },
    )
  ).json();
  return environments.pipeline.stages.find((s: any) => s.name === stage);
}

async function stateOf(
  request: APIRequestContext,
  id: string,
  state: string,
  timeout = 90_000,
) {
  await expect(async () => {
    const details = await (
      await request.get(`${api}/promotions/${id}`, { headers: CI })
    ).json();
    expect(details.promotion.state).toBe(state);
  }).toPass({ timeout });
}

/** kubectl against the demo's cluster simulator, as a person would run it. */
function kubectl(...args: string[]) {
  return promisify(execFile)('kubectl', args, {
    env: { ...process.env, KUBECONFIG: path.join(ROOT, '.demo/kubeconfig') },
  });
}

test("a deny window holds web-shop's production; a release manager's break-glass override lets it through, audited and notified", async ({
  page,
  request,
}, testInfo) => {
  test.setTimeout(300_000);
  const entity = `${api}/entities/component/default/web-shop`;
  const registered = await request.post(`${entity}/releases`, {
    headers: CI,
    data: { version: '3.1.0', image: 'registry.local/web-shop:3.1.0' },
  });
  expect([200, 201]).toContain(registered.status());
  await expect(async () => {
    expect(
      (await stageOf(request, 'web-shop', 'staging')).lastPromotion,
    ).toMatchObject({ version: '3.1.0', state: 'succeeded' });
  }).toPass({ timeout: 90_000 });

  // Ask while production is closed and its next opening is a while away,
  // so that only the override can let the promotion through before then.
  await expect(async () => {
    const { window } = await stageOf(request, 'web-shop', 'production');
    expect(window).toMatchObject({ open: false, source: 'deny-window' });
    expect(Date.parse(window.nextOpening) - Date.now()).toBeGreaterThan(25_000);
  }).toPass({ timeout: 90_000, intervals: [1_000] });
  const requested = await request.post(`${entity}/promotions`, {
    headers: { ...CI, 'Idempotency-Key': 'e2e-windows-3.1.0' },
    data: { stage: 'production', version: '3.1.0', reason: 'CI run 310' },
  });
  expect(requested.status()).toBe(202);
  const { id } = await requested.json();
  await stateOf(request, id, 'waiting', 20_000);
  const { window } = await stageOf(request, 'web-shop', 'production');

  await signInAsGuest(page);
  await page.goto('/catalog/default/component/web-shop/environments');
  const production = page.getByTestId('stage-production');
  await expect(production).toContainText(
    `Production is closed: inside deny window 'demo freeze'`,
  );
  await expect(production).toContainText(
    `opens ${await page.evaluate(
      at => new Date(at).toLocaleString(),
      window.nextOpening,
    )}`,
  );
  await expect(production).toContainText('Promoting 3.1.0: waiting');
  await page.screenshot({
    path: testInfo.outputPath('window-waiting.png'),
    fullPage: true,
  });
  await production.screenshot({
    path: path.join(IMAGES, 'window-waiting.png'),
  });

  // Break-glass: a reason is required; the promotion goes ahead at once.
  await page
    .getByRole('button', {
      name: 'Override the window: deploy 3.1.0 to Production now',
    })
    .click();
  const dialog = page.getByRole('dialog');
  const confirm = dialog.getByRole('button', { name: 'Override and deploy' });
  await expect(confirm).toBeDisabled();
  await dialog.getByRole('textbox', { name: /Reason/ }).fill('hotfix INC-310');
  await confirm.click();
  await stateOf(request, id, 'awaiting-approval', 20_000);
  // Still before the window would have opened by itself.
  expect(Date.now()).toBeLessThan(Date.parse(window.nextOpening));
  const details = await (
    await request.get(`${api}/promotions/${id}`, { headers: CI })
  ).json();
  expect(
    details.steps.find(
      (s: any) => s.kind === 'window' && s.name === 'override',
    ),
  ).toMatchObject({
    actor: 'user:default/guest',
    reason: 'window overridden by user:default/guest: hotfix INC-310',
  });

  // The release manager approves; the override holds for the deploy.
  await page
    .getByRole('button', { name: 'Approve 3.1.0 to Production' })
    .click();
  await page
    .getByRole('dialog')
    .getByRole('button', { name: 'Approve', exact: true })
    .click();
  await stateOf(request, id, 'succeeded', 120_000);
  await expect(production).toContainText('Last promotion: 3.1.0 succeeded');

  // Notified: the owners (team-web, the guest among them) are told once.
  await expect(async () => {
    await openNotifications(page, 'promotion window for web-shop 3.1.0');
    await expect(
      page.getByRole('link', {
        name: "user:default/guest overrode Production's promotion window for web-shop 3.1.0",
      }),
    ).toHaveCount(1);
    await expect(page.getByText('Reason: hotfix INC-310')).toHaveCount(1);
  }).toPass({ timeout: 60_000 });

  // Audited: the backend's log has the override's audit event.
  const log = process.env.PROGRESSION_DEMO_LOG;
  if (log) {
    const audit = fs
      .readFileSync(log, 'utf8')
      .split('\n')
      .filter(l => l.includes('promotion-window-override') && l.includes(id));
    expect(audit.length).toBeGreaterThan(0);
    expect(audit.join('\n')).toContain('user:default/guest');
  }
});

test("a firing alert freezes payments-api's staging until it resolves; the waiting promotion then goes ahead", async ({
  page,
  request,
}, testInfo) => {
  test.setTimeout(360_000);
  const entity = `${api}/entities/component/default/payments-api`;
  const before = (await stageOf(request, 'payments-api', 'staging')).live.image;

  // Staging's workload starts answering 30 % with 500, as the `-errors`
  // image does; the demo's rule fires for the staging namespace.
  await kubectl(
    'set',
    'image',
    'deployment/payments-api',
    'payments-api=registry.local/payments-api:9.9.9-errors',
    '-n',
    'staging',
  );
  await expect(async () => {
    expect(
      (await stageOf(request, 'payments-api', 'staging')).window,
    ).toMatchObject({ open: false, source: 'alert' });
  }).toPass({ timeout: 90_000, intervals: [2_000] });

  // CI's release reaches development, and waits at staging.
  const registered = await request.post(`${entity}/releases`, {
    headers: CI,
    data: { version: '5.0.0', image: 'registry.local/payments-api:5.0.0' },
  });
  expect([200, 201]).toContain(registered.status());
  await expect(async () => {
    expect(
      (await stageOf(request, 'payments-api', 'development')).lastPromotion,
    ).toMatchObject({ version: '5.0.0', state: 'succeeded' });
  }).toPass({ timeout: 90_000 });
  const requested = await request.post(`${entity}/promotions`, {
    headers: { ...CI, 'Idempotency-Key': 'e2e-windows-5.0.0-staging' },
    data: { stage: 'staging', version: '5.0.0' },
  });
  expect(requested.status()).toBe(202);
  const { id } = await requested.json();
  await stateOf(request, id, 'waiting', 30_000);

  await signInAsGuest(page);
  await page.goto('/catalog/default/component/payments-api/environments');
  const staging = page.getByTestId('stage-staging');
  await expect(staging).toContainText('Staging is closed');
  await expect(staging).toContainText('DemoHighErrorRatio');
  await expect(staging).toContainText('opens when it resolves');
  await expect(staging).toContainText('Promoting 5.0.0: waiting');
  await page.screenshot({
    path: testInfo.outputPath('alert-freeze.png'),
    fullPage: true,
  });

  // The errors stop; the alert resolves; the promotion goes ahead.
  await kubectl(
    'set',
    'image',
    'deployment/payments-api',
    `payments-api=${before}`,
    '-n',
    'staging',
  );
  await stateOf(request, id, 'succeeded', 240_000);
  await expect(staging).toContainText('Last promotion: 5.0.0 succeeded', {
    timeout: 30_000,
  });
  expect(
    (await stageOf(request, 'payments-api', 'staging')).window,
  ).toMatchObject({ open: true });
});
