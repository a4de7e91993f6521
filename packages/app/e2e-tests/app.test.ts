import { test, expect, Page } from '@playwright/test';

async function signInAsGuest(page: Page) {
  await page.goto('/');
  const enter = page.getByRole('button', { name: 'Enter' });
  await expect(enter).toBeVisible();
  await enter.click();
  // The catalog is the home page of the demo.
  await expect(
    page.getByRole('heading', { name: 'Progression demo Catalog' }),
  ).toBeVisible();
}

test('the Environments tab lists the stages of payments-api in order', async ({
  page,
}, testInfo) => {
  await signInAsGuest(page);

  await page.goto('/catalog/default/component/payments-api');
  await expect(
    page.getByRole('heading', { name: 'payments-api' }).first(),
  ).toBeVisible();

  await page.getByRole('link', { name: 'Environments', exact: true }).click();
  await expect(page).toHaveURL(
    /\/catalog\/default\/component\/payments-api\/environments$/,
  );

  const stages = page.getByRole('list', {
    name: 'Stages of pipeline Standard',
  });
  await expect(stages).toBeVisible();
  const cards = stages.getByRole('listitem');
  await expect(cards.getByRole('heading')).toHaveText([
    'Development',
    'Staging',
    'Production',
  ]);
  await expect(cards.nth(0)).toContainText('Cluster: local');
  await expect(cards.nth(0)).toContainText('Namespace: development');
  await expect(cards.nth(2)).toContainText('Namespace: production');
  // What runs in each stage, read from the local cluster simulator.
  for (const i of [0, 1, 2]) {
    await expect(cards.nth(i)).toContainText('Live: 1.0.0');
    await expect(cards.nth(i)).toContainText('Healthy');
  }

  await page.screenshot({
    path: testInfo.outputPath('environments-payments-api.png'),
    fullPage: true,
  });
});

test('an entity without the annotation has no Environments tab', async ({
  page,
}) => {
  await signInAsGuest(page);
  await page.goto('/catalog/default/component/legacy-batch');
  await expect(
    page.getByRole('heading', { name: 'legacy-batch' }).first(),
  ).toBeVisible();
  await expect(
    page.getByRole('link', { name: 'Overview', exact: true }),
  ).toBeVisible();
  await expect(
    page.getByRole('link', { name: 'Environments', exact: true }),
  ).toHaveCount(0);
});

test('the app shows web-shop in the catalog', async ({ page }) => {
  await signInAsGuest(page);
  await expect(page.getByRole('link', { name: 'web-shop' })).toBeVisible();
});

test('a release registered by CI flows into development and is promoted to staging from the tab', async ({
  page,
  request,
}, testInfo) => {
  // What CI does: register a release through the REST API.
  const backend = 'http://localhost:7007';
  const refresh = await request.get(`${backend}/api/auth/guest/refresh`, {
    headers: { 'X-Requested-With': 'XMLHttpRequest' },
  });
  const token = (await refresh.json()).backstageIdentity.token;
  const registered = await request.post(
    `${backend}/api/progression/v1/entities/component/default/payments-api/releases`,
    {
      headers: { Authorization: `Bearer ${token}` },
      data: { version: '1.1.0', image: 'registry.local/payments-api:1.1.0' },
    },
  );
  expect([200, 201]).toContain(registered.status());

  await signInAsGuest(page);
  await page.goto('/catalog/default/component/payments-api/environments');
  const cards = page
    .getByRole('list', { name: 'Stages of pipeline Standard' })
    .getByRole('listitem');
  // autoPromote on development: it deploys by itself; the tab follows.
  await expect(cards.nth(0)).toContainText('Live: 1.1.0', { timeout: 60_000 });
  await expect(cards.nth(0)).toContainText('Last promotion: 1.1.0 succeeded');

  await page.getByRole('button', { name: 'Promote 1.1.0 to Staging' }).click();
  const dialog = page.getByRole('dialog');
  await expect(dialog).toContainText('Staging goes from 1.0.0 to 1.1.0');
  await dialog.getByLabel('Reason (optional)').fill('browser test');
  await dialog.getByRole('button', { name: 'Promote' }).click();

  await expect(cards.nth(1)).toContainText('Live: 1.1.0', { timeout: 60_000 });
  await expect(cards.nth(1)).toContainText('Last promotion: 1.1.0 succeeded', {
    timeout: 60_000,
  });
  // Production waits for a release manager: the guest may not skip it.
  await expect(
    page.getByRole('button', { name: 'Promote 1.1.0 to Production' }),
  ).toBeEnabled();
  await page.screenshot({
    path: testInfo.outputPath('promoted-to-staging.png'),
    fullPage: true,
  });
});

test('an unhealthy release fails its smoke checks, is rolled back, and the history shows why', async ({
  page,
  request,
}, testInfo) => {
  const backend = 'http://localhost:7007';
  const refresh = await request.get(`${backend}/api/auth/guest/refresh`, {
    headers: { 'X-Requested-With': 'XMLHttpRequest' },
  });
  const token = (await refresh.json()).backstageIdentity.token;
  const registered = await request.post(
    `${backend}/api/progression/v1/entities/component/default/payments-api/releases`,
    {
      headers: { Authorization: `Bearer ${token}` },
      data: {
        version: '1.2.0-unhealthy',
        image: 'registry.local/payments-api:1.2.0-unhealthy',
      },
    },
  );
  expect([200, 201]).toContain(registered.status());

  await signInAsGuest(page);
  await page.goto('/catalog/default/component/payments-api/environments');
  const development = page
    .getByRole('list', { name: 'Stages of pipeline Standard' })
    .getByRole('listitem')
    .nth(0);
  await expect(development).toContainText(
    'Last promotion: 1.2.0-unhealthy rolled-back',
    { timeout: 60_000 },
  );
  await expect(development).not.toContainText('Live: 1.2.0-unhealthy');

  const history = page.getByRole('table', { name: 'Promotion history' });
  const row = history.getByRole('row').filter({ hasText: '1.2.0-unhealthy' });
  await expect(row).toContainText('rolled-back');
  await expect(row).toContainText(
    'smoke: GET /healthz failed: answered 503, expected 200',
  );
  await row.getByRole('button', { name: /Details of promotion/ }).click();
  const dialog = page.getByRole('dialog');
  await expect(dialog.getByRole('list', { name: 'Steps' })).toContainText(
    'gate smoke: failed',
  );
  await expect(dialog.getByRole('list', { name: 'Steps' })).toContainText(
    'rollback rollback: passed → rolled-back',
  );
  await page.screenshot({
    path: testInfo.outputPath('rolled-back-details.png'),
    fullPage: true,
  });
});
