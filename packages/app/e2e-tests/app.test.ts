import { test, expect, api, CI, signInAsGuest } from './fixtures';

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
  const cards = stages.locator('[data-testid^="stage-"]');
  await expect(cards.getByRole('heading', { level: 3 })).toHaveText([
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
  // Flags that differ from the neighbouring stages, read from each stage's
  // flagd ConfigMap, and the last hour's metrics from Prometheus.
  await expect(cards.nth(2)).toContainText(
    'new-checkout off here, on in staging',
  );
  await expect(cards.nth(1)).toContainText('Requests');
  await expect(cards.nth(1)).toContainText('p95 latency');

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
  const cards = page.locator('[data-testid^="stage-"]');
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
  // Staging's gates, each with its one-line reason.
  await expect(cards.nth(1)).toContainText(
    'smoke passed: 4 of 4 checks passed',
  );
  await expect(cards.nth(1)).toContainText(
    /metrics passed: error-rate: error-rate 0\.0% ≤ 5\.0% in 3 of 3 samples/,
  );
  await expect(cards.nth(1)).toContainText(
    /load passed: p95 [\d.]+ ms ≤ 300 ms/,
  );
  await expect(
    page
      .getByRole('alert')
      .filter({ hasText: 'The promotion of 1.1.0 to Staging succeeded.' }),
  ).toBeVisible();
  // Production comes after staging has soaked for a minute.
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
  const development = page.getByTestId('stage-development');
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

test('a release CI requests for production waits for a release manager, is approved in the tab and goes live', async ({
  page,
  request,
}, testInfo) => {
  const entity = `${api}/entities/component/default/web-shop`;
  const registered = await request.post(`${entity}/releases`, {
    headers: CI,
    data: { version: '2.4.0', image: 'registry.local/web-shop:2.4.0' },
  });
  expect([200, 201]).toContain(registered.status());
  // The same token outside the progression plugin is refused.
  expect(
    (
      await request.get('http://localhost:7007/api/catalog/entities', {
        headers: CI,
      })
    ).status(),
  ).toBe(403);

  // autoPromote on staging: wait until it succeeded there.
  await expect(async () => {
    const list = await (
      await request.get(`${entity}/promotions?stage=staging`, { headers: CI })
    ).json();
    expect(list.items[0]).toMatchObject({
      state: 'succeeded',
      release: { version: '2.4.0' },
    });
  }).toPass({ timeout: 60_000 });
  const requested = await request.post(`${entity}/promotions`, {
    headers: { ...CI, 'Idempotency-Key': 'e2e-web-shop-2.4.0' },
    data: { stage: 'production', version: '2.4.0', reason: 'CI run 42' },
  });
  expect(requested.status()).toBe(202);

  await signInAsGuest(page);
  await page.goto('/catalog/default/component/web-shop/environments');
  const production = page.getByTestId('stage-production');
  await expect(production).toContainText('Promoting 2.4.0: awaiting-approval');
  // The preflight gates ran before anyone is asked to approve.
  await expect(production).toContainText('isolation passed');
  await expect(production).toContainText('parity passed');
  await page.screenshot({
    path: testInfo.outputPath('awaiting-approval.png'),
    fullPage: true,
  });
  await page
    .getByRole('button', { name: 'Approve 2.4.0 to Production' })
    .click();
  const dialog = page.getByRole('dialog');
  await expect(dialog).toContainText(
    'service:ci asked to deploy 2.4.0 to Production',
  );
  await dialog.getByLabel('Reason (optional)').fill('looks good');
  await dialog.getByRole('button', { name: 'Approve' }).click();

  await expect(production).toContainText('Live: 2.4.0', { timeout: 60_000 });
  await expect(production).toContainText('Last promotion: 2.4.0 succeeded', {
    timeout: 60_000,
  });
  await expect(production).toContainText('job passed');
  await page.screenshot({
    path: testInfo.outputPath('approved-live-in-production.png'),
    fullPage: true,
  });
});

test("a slow release passes development, fails staging's load gate, is rolled back, and the card says why", async ({
  page,
  request,
}, testInfo) => {
  const entity = `${api}/entities/component/default/payments-api`;
  const registered = await request.post(`${entity}/releases`, {
    headers: CI,
    data: {
      version: '1.4.0-slow',
      image: 'registry.local/payments-api:1.4.0-slow',
    },
  });
  expect([200, 201]).toContain(registered.status());
  await expect(async () => {
    const list = await (
      await request.get(`${entity}/promotions?stage=development`, {
        headers: CI,
      })
    ).json();
    expect(list.items[0]).toMatchObject({
      state: 'succeeded',
      release: { version: '1.4.0-slow' },
    });
  }).toPass({ timeout: 60_000 });

  await signInAsGuest(page);
  await page.goto('/catalog/default/component/payments-api/environments');
  await page
    .getByRole('button', { name: 'Promote 1.4.0-slow to Staging' })
    .click();
  await page
    .getByRole('dialog')
    .getByRole('button', { name: 'Promote' })
    .click();
  const staging = page.getByTestId('stage-staging');
  await expect(staging).toContainText('Promoting 1.4.0-slow');
  await page.screenshot({
    path: testInfo.outputPath('promotion-running.png'),
    fullPage: true,
  });
  await expect(staging).toContainText(
    'Last promotion: 1.4.0-slow rolled-back',
    {
      timeout: 90_000,
    },
  );
  await expect(staging).not.toContainText('Live: 1.4.0-slow');
  await expect(staging).toContainText(/load failed: p95 \d+ ms > 300 ms/);
  await expect(
    page.getByRole('alert').filter({
      hasText:
        'The promotion of 1.4.0-slow to Staging failed and was rolled back',
    }),
  ).toBeVisible();
  await staging
    .getByRole('button', { name: 'Evidence of the load gate' })
    .click();
  const steps = page.getByRole('dialog').getByRole('list', { name: 'Steps' });
  await expect(steps).toContainText('gate load: failed');
  await expect(steps).toContainText('rollback rollback: passed → rolled-back');
  await page.screenshot({
    path: testInfo.outputPath('load-gate-failed-evidence.png'),
    fullPage: true,
  });
});

test('CI drives a release with curl and the static token: registered, in development by itself, promoted to staging', async () => {
  const { execFileSync } = await import('node:child_process');
  /** One curl call as docs/api.md shows it; returns the status and body. */
  const curl = (args: string[]) => {
    const out = execFileSync(
      'curl',
      [
        '-sS',
        '-w',
        '\n%{http_code}',
        '-H',
        'Authorization: Bearer progression-demo-ci-token',
        '-H',
        'Content-Type: application/json',
        ...args,
      ],
      { encoding: 'utf8' },
    );
    const lines = out.trimEnd().split('\n');
    const status = Number(lines.pop());
    const text = lines.join('\n');
    return { status, body: text ? JSON.parse(text) : undefined };
  };
  const entity = `${api}/entities/component/default/payments-api`;
  const registered = curl([
    '-X',
    'POST',
    '-d',
    JSON.stringify({
      version: '1.6.0',
      image: 'registry.local/payments-api:1.6.0',
      commit: 'abc1234',
    }),
    `${entity}/releases`,
  ]);
  expect(registered.status).toBe(201);
  await expect(async () => {
    const list = curl([`${entity}/promotions?stage=development&limit=1`]);
    expect(list.body.items[0]).toMatchObject({
      state: 'succeeded',
      release: { version: '1.6.0' },
    });
  }).toPass({ timeout: 60_000 });

  const request = () =>
    curl([
      '-X',
      'POST',
      '-H',
      'Idempotency-Key: ci-run-1.6.0-staging',
      '-d',
      JSON.stringify({ stage: 'staging', version: '1.6.0' }),
      `${entity}/promotions`,
    ]);
  const first = request();
  expect(first.status).toBe(202);
  // A retried CI step gets the same promotion, not a second one.
  expect(request().body.id).toBe(first.body.id);
  // Production is not next: staging has not passed 1.6.0 yet.
  const skipping = curl([
    '-X',
    'POST',
    '-d',
    JSON.stringify({ stage: 'production', version: '1.6.0' }),
    `${entity}/promotions`,
  ]);
  expect(skipping.status).toBe(409);
  expect(skipping.body.error.message).toContain('staging has not passed 1.6.0');
  await expect(async () => {
    const p = curl([`${api}/promotions/${first.body.id}`]);
    expect(p.body.promotion.state).toBe('succeeded');
  }).toPass({ timeout: 90_000 });
  // Rolling back is not among the token's permissions.
  const rollback = curl([
    '-X',
    'POST',
    '-d',
    JSON.stringify({ stage: 'staging' }),
    `${entity}/rollbacks`,
  ]);
  expect(rollback.status).toBe(403);
  // The token opens nothing outside Progression.
  const catalog = curl(['http://localhost:7007/api/catalog/entities']);
  expect(catalog.status).toBe(403);
});

test('the Create page offers the progressive-service template', async ({
  page,
}) => {
  await signInAsGuest(page);
  await page.goto('/create');
  await expect(
    page.getByText('Service released with Progression'),
  ).toBeVisible();
});
