import { test, expect, signInAsGuest } from './fixtures';

/** The demo's cluster simulator, as the Kubernetes plugin reaches it. */
const cluster = 'https://127.0.0.1:6443';
const clusterAuth = { Authorization: 'Bearer progression-demo-token' };

test("payments-api's Kubernetes tab lists its pods in every stage's namespace, reached from the stage card", async ({
  page,
  request,
}, testInfo) => {
  await signInAsGuest(page);
  await page.goto('/catalog/default/component/payments-api/environments');
  const staging = page.getByRole('listitem', { name: 'Stage 2: Staging' });
  await staging
    .getByRole('link', { name: 'Pods of Staging in the Kubernetes tab' })
    .click();
  await expect(page).toHaveURL(
    /\/catalog\/default\/component\/payments-api\/kubernetes$/,
  );

  await page.getByText('local', { exact: true }).click();
  for (const namespace of ['development', 'staging', 'production']) {
    // The pods the cluster has, as kubectl would list them.
    const pods = (
      await (
        await request.get(
          `${cluster}/api/v1/namespaces/${namespace}/pods?labelSelector=backstage.io/kubernetes-id%3Dpayments-api`,
          { headers: clusterAuth, ignoreHTTPSErrors: true },
        )
      ).json()
    ).items.filter((p: any) => !p.metadata.deletionTimestamp);
    expect(pods.length).toBeGreaterThan(0);

    const deployment = page.getByRole('button', {
      name: `payments-api Deployment namespace: ${namespace}`,
      exact: true,
      expanded: false,
    });
    await deployment.click();
    const table = page
      .getByRole('table')
      .filter({ hasText: pods[0].metadata.name });
    for (const pod of pods) {
      const row = table.getByRole('row').filter({ hasText: pod.metadata.name });
      await expect(row).toContainText(pod.status.phase);
      await expect(row).toContainText('OK');
    }
  }
  await page.screenshot({
    path: testInfo.outputPath('kubernetes-tab.png'),
    fullPage: true,
  });
});
