import { test, expect, signInAsGuest } from './fixtures';

/** The demo's cluster simulator, as the Kubernetes plugin reaches it. */
const cluster = 'https://127.0.0.1:6443';
const clusterAuth = { Authorization: 'Bearer progression-demo-token' };

test("payments-api's Kubernetes tab: the stage card's link shows that stage's namespace, and every stage's pods are listed", async ({
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
    /\/catalog\/default\/component\/payments-api\/kubernetes\?namespace=staging&cluster=local$/,
  );
  // The Kubernetes plugin's accordion of the cluster (the filter's line
  // names the cluster too).
  const clusterLocal = page.getByRole('button', { name: /^local Cluster/ });
  // Staging's namespace only (KubernetesNamespaceFilter), saying so.
  await expect(page.getByTestId('kubernetes-namespace-filter')).toContainText(
    'Namespace staging of cluster local only.',
  );
  await clusterLocal.click();
  const deploymentIn = (namespace: string) =>
    page.getByRole('button', {
      name: `payments-api Deployment namespace: ${namespace}`,
      exact: true,
      expanded: false,
    });
  await expect(deploymentIn('staging')).toBeVisible();
  await expect(deploymentIn('development')).toHaveCount(0);
  await expect(deploymentIn('production')).toHaveCount(0);
  await page.screenshot({
    path: testInfo.outputPath('kubernetes-tab-staging.png'),
    fullPage: true,
  });

  // Back to every namespace.
  await page.getByRole('link', { name: 'Show every namespace' }).click();
  await expect(page).toHaveURL(
    /\/catalog\/default\/component\/payments-api\/kubernetes$/,
  );
  await expect(page.getByTestId('kubernetes-namespace-filter')).toHaveCount(0);
  await clusterLocal.click();
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
