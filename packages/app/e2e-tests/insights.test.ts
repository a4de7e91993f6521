import {
  test,
  expect,
  api,
  CI,
  releaseToDevelopment,
  signInAsGuest,
} from './fixtures';
import path from 'node:path';

const entity = `${api}/entities/component/default/payments-api`;
/** Commit and commit time, as CI gives them: lead time reads them. */
const commit = () => ({
  commit: 'fee1dead',
  committedAt: new Date(Date.now() - 3_600_000).toISOString(),
});

test("payments-api's Environments tab shows each stage's delivery insights after promotions ran", async ({
  page,
  request,
}, testInfo) => {
  test.setTimeout(300_000);
  // Versions no other test uses. A good release, a bad one that is rolled
  // back (a failed deployment: an incident opens), a good one that
  // restores development.
  await releaseToDevelopment(request, '1.8.0-insights', 'succeeded', commit());
  await releaseToDevelopment(
    request,
    '1.8.1-insights-unhealthy',
    'rolled-back',
    commit(),
  );
  await releaseToDevelopment(request, '1.8.2-insights', 'succeeded', commit());

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
