import {
  test,
  expect,
  api,
  APIRequestContext,
  CI,
  openNotifications,
  Page,
  signInAsGuest,
} from './fixtures';

/*
 * Notifications in the demo: CI asks for production, the release managers
 * (the guest among them) find the request on their notifications page,
 * its link opens the Environments tab on that promotion; a release rolled
 * back in development is told to its owners once. Versions 7.7.x are this
 * file's own.
 */

const entity = `${api}/entities/component/default/payments-api`;

/** Waits until the newest promotion of `version` into `stage` is in `state`; returns it. */
async function promotionOf(
  request: APIRequestContext,
  stage: string,
  version: string,
  state: string,
  timeout = 90_000,
) {
  let found: any;
  await expect(async () => {
    const list = await (
      await request.get(`${entity}/promotions?stage=${stage}`, { headers: CI })
    ).json();
    found = list.items.find((p: any) => p.release.version === version);
    expect(found?.state).toBe(state);
  }).toPass({ timeout });
  return found;
}

async function register(request: APIRequestContext, version: string) {
  const registered = await request.post(`${entity}/releases`, {
    headers: CI,
    data: { version, image: `registry.local/payments-api:${version}` },
  });
  expect([200, 201]).toContain(registered.status());
}

/**
 * The guest's unread notifications (the page's default view), filtered by
 * `text`. Read again until `check` passes: a notification arrives after
 * the state change that causes it.
 */
async function notificationsAbout(
  page: Page,
  text: string,
  check: (page: Page) => Promise<void>,
) {
  await expect(async () => {
    await openNotifications(page, text);
    await check(page);
  }).toPass({ timeout: 60_000 });
}

test('CI asks for production: the release managers are notified and the link opens the promotion; a rollback is told to the owners once', async ({
  page,
  request,
}, testInfo) => {
  // Staging soaks a minute before production; production migrates.
  test.setTimeout(420_000);

  // CI registers 7.7.0: it flows into development by itself.
  await register(request, '7.7.0');
  await promotionOf(request, 'development', '7.7.0', 'succeeded');
  const staging = await request.post(`${entity}/promotions`, {
    headers: { ...CI, 'Idempotency-Key': 'e2e-notifications-7.7.0-staging' },
    data: { stage: 'staging', version: '7.7.0' },
  });
  expect(staging.status()).toBe(202);
  await promotionOf(request, 'staging', '7.7.0', 'succeeded', 150_000);

  // Meanwhile a release that fails its smoke checks in development is
  // rolled back: its owners (team-payments, the guest among them) are told.
  await register(request, '7.7.1-unhealthy');
  await promotionOf(request, 'development', '7.7.1-unhealthy', 'rolled-back');

  // Production once staging has soaked: 409 until then, asked again.
  let id = '';
  await expect(async () => {
    const res = await request.post(`${entity}/promotions`, {
      headers: {
        ...CI,
        'Idempotency-Key': 'e2e-notifications-7.7.0-production',
      },
      data: { stage: 'production', version: '7.7.0', reason: 'CI run 77' },
    });
    expect(res.status()).toBe(202);
    id = (await res.json()).id;
  }).toPass({ timeout: 120_000, intervals: [5_000] });
  await promotionOf(request, 'production', '7.7.0', 'awaiting-approval');

  await signInAsGuest(page);
  const approvalTitle =
    'The promotion of payments-api 7.7.0 to Production awaits approval';
  await notificationsAbout(page, '7.7.0 to Production', async p => {
    await expect(p.getByRole('link', { name: approvalTitle })).toHaveCount(1);
    await expect(
      p.getByText('service:ci asked for it (CI run 77)'),
    ).toBeVisible();
  });
  await page.screenshot({
    path: testInfo.outputPath('notifications-approval-request.png'),
    fullPage: true,
  });

  // One entry for the rollback, with its reason.
  const rolledBackTitle =
    'The promotion of payments-api 7.7.1-unhealthy to Development failed and was rolled back';
  await notificationsAbout(page, '7.7.1-unhealthy', async p => {
    await expect(p.getByRole('link', { name: rolledBackTitle })).toHaveCount(1);
    await expect(
      p.getByText(/smoke: GET \/healthz failed: answered 503/),
    ).toHaveCount(1);
  });
  await page.screenshot({
    path: testInfo.outputPath('notifications-rolled-back.png'),
    fullPage: true,
  });

  // The request's link opens the Environments tab on that promotion.
  await notificationsAbout(page, '7.7.0 to Production', async p => {
    await expect(p.getByRole('link', { name: approvalTitle })).toHaveCount(1);
  });
  await page.getByRole('link', { name: approvalTitle }).click();
  await expect(page).toHaveURL(
    new RegExp(
      `/catalog/default/component/payments-api/environments\\?promotion=${id}$`,
    ),
  );
  const dialog = page.getByRole('dialog');
  await expect(dialog).toContainText('Promotion of 7.7.0 to production');
  await expect(dialog).toContainText(
    'The promotion of 7.7.0 to Production awaits approval.',
  );
  await page.screenshot({
    path: testInfo.outputPath('notification-link-opens-promotion.png'),
    fullPage: true,
  });
  await page.keyboard.press('Escape');
  await expect(dialog).toHaveCount(0);
  await expect(page).toHaveURL(
    /\/catalog\/default\/component\/payments-api\/environments$/,
  );

  // A release manager approves; production is free again, and the owners
  // hear that it is live.
  await page
    .getByRole('button', { name: 'Approve 7.7.0 to Production' })
    .click();
  const approve = page.getByRole('dialog');
  await approve.getByLabel('Reason (optional)').fill('notified and approved');
  await approve.getByRole('button', { name: 'Approve' }).click();
  const production = page.getByTestId('stage-production');
  await expect(production).toContainText('Last promotion: 7.7.0 succeeded', {
    timeout: 120_000,
  });
  await notificationsAbout(page, '7.7.0 to Production', async p => {
    await expect(
      p.getByRole('link', {
        name: 'The promotion of payments-api 7.7.0 to Production succeeded',
      }),
    ).toHaveCount(1);
  });
  await page.screenshot({
    path: testInfo.outputPath('notifications-live-in-production.png'),
    fullPage: true,
  });
});
