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
