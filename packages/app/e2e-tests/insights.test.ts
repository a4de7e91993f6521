import { test, expect, APIRequestContext, Page } from './fixtures';
import path from 'node:path';

/** CI's token: the demo's static external-access token (app-config). */
const CI = { Authorization: 'Bearer progression-demo-ci-token' };
const entity =
  'http://localhost:7007/api/progression/v1/entities/component/default/payments-api';

async function signInAsGuest(page: Page) {
  await page.goto('/');
  await page.getByRole('button', { name: 'Enter' }).click();
  await expect(
    page.getByRole('heading', { name: 'Progression demo Catalog' }),
  ).toBeVisible();
}

/**
 * Registers a release as CI does, with its commit time, and waits until its
 * promotion into development (autoPromote) has ended `state`: nothing of
 * this test is left running for the tests after it.
 */
async function release(
  request: APIRequestContext,
  version: string,
  state: 'succeeded' | 'rolled-back',
) {
  const registered = await request.post(`${entity}/releases`, {
    headers: CI,
    data: {
      version,
      image: `registry.local/payments-api:${version}`,
      commit: 'fee1dead',
      committedAt: new Date(Date.now() - 3_600_000).toISOString(),
    },
  });
  expect([200, 201]).toContain(registered.status());
  await expect(async () => {
    const list = await (
      await request.get(`${entity}/promotions?stage=development&limit=1`, {
        headers: CI,
      })
    ).json();
    expect(list.items[0]).toMatchObject({ state, release: { version } });
  }).toPass({ timeout: 90_000 });
}

test("payments-api's Environments tab shows each stage's delivery insights after promotions ran", async ({
  page,
  request,
}, testInfo) => {
  test.setTimeout(300_000);
  // Versions no other test uses. A good release, a bad one that is rolled
  // back (a failed deployment: an incident opens), a good one that
  // restores development.
  await release(request, '1.8.0-insights', 'succeeded');
  await release(request, '1.8.1-insights-unhealthy', 'rolled-back');
  await release(request, '1.8.2-insights', 'succeeded');

  // What the API says; the section must say the same.
  const insights = await (
    await request.get(`${entity}/insights?range=30d`, { headers: CI })
  ).json();
  const development = insights.stages.find(
    (s: { stage: string }) => s.stage === 'development',
  );
  expect(development.deployments.count).toBeGreaterThanOrEqual(3);
  expect(development.changeFailureRate.failed).toBeGreaterThanOrEqual(1);
  expect(development.leadTime.fromCommit).toBeGreaterThanOrEqual(2);
  expect(development.timeToRestore.restored).toBeGreaterThanOrEqual(1);

  await signInAsGuest(page);
  await page.goto('/catalog/default/component/payments-api/environments');
  const section = page.getByRole('region', { name: 'Delivery insights' });
  const stage = section.getByRole('group', { name: 'Delivery of Development' });
  await expect(stage).toBeVisible();
  await expect(stage.getByRole('group', { name: 'Deployments' })).toContainText(
    `${development.deployments.count} deployments in 30 days`,
  );
  await expect(
    stage.getByRole('group', { name: 'Change failure rate' }),
  ).toContainText(
    `${development.changeFailureRate.failed} of ${development.changeFailureRate.deployments} deployments failed or rolled back`,
  );
  await expect(stage.getByRole('group', { name: 'Lead time' })).toContainText(
    `${development.leadTime.fromCommit} from the commit time`,
  );
  await expect(
    stage.getByRole('group', { name: 'Time to restore' }),
  ).toContainText(
    `${development.timeToRestore.restored} of ${development.timeToRestore.incidents} incident`,
  );
  // The other stages are there too, in the pipeline's order.
  await expect(section.getByRole('heading', { level: 3 })).toHaveText([
    'Development',
    'Staging',
    'Production',
  ]);

  await section.scrollIntoViewIfNeeded();
  await section.screenshot({ path: testInfo.outputPath('insights.png') });
  // The README's picture of the section.
  await section.screenshot({
    path: path.resolve(__dirname, '../../../docs/images/insights.png'),
  });

  // Production's figures on the Overview tab (or, where this run promoted
  // nothing to production, the card says so).
  await page.goto('/catalog/default/component/payments-api');
  const card = page.getByRole('region', { name: 'Delivery to Production' });
  await expect(card).toContainText(
    /deployments? in 30 days|No deployments to Production in the last 30 days/,
  );
  await page.screenshot({
    path: testInfo.outputPath('overview-delivery-card.png'),
    fullPage: true,
  });
});
