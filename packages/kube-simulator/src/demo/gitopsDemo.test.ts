import { execFileSync } from 'node:child_process';
import { KubeSimulator } from '../KubeSimulator';
import { waitFor } from '../testUtils/waitFor';
import { installDemo } from './installDemo';
import { GITOPS_DEMO, installGitOpsDemo } from './installGitOpsDemo';

/*
 * The demo's GitOps example as `--demo` installs it: the manifests
 * repository on a real Git server, the Applications on the Argo CD
 * stand-in (which renders with the real kubectl), checkout running 1.0.0
 * in the demo's three namespaces; and, without kubectl, said and skipped.
 */
jest.setTimeout(120_000);

const hasKubectl = (() => {
  try {
    execFileSync('kubectl', ['version', '--client'], { stdio: 'ignore' });
    return true;
  } catch {
    if (process.env.PROGRESSION_REQUIRE_KUBECTL) {
      throw new Error('kubectl is required (PROGRESSION_REQUIRE_KUBECTL)');
    }
    // eslint-disable-next-line no-console
    console.warn('kubectl not found: the GitOps demo test is skipped');
    return false;
  }
})();

const describeWithKubectl = hasKubectl ? describe : describe.skip;

describeWithKubectl('with kubectl', () => {
  it('runs checkout from its overlays in the three demo namespaces, production synced once by hand', async () => {
    const sim = await KubeSimulator.start({ podReadyDelayMs: 20 });
    const demo = await installDemo(sim, {
      anyPorts: true,
      trafficIntervalMs: 60_000,
    });
    const gitops = await installGitOpsDemo(sim, { anyPorts: true });
    try {
      if ('skipped' in gitops) throw new Error(gitops.skipped);
      for (const { stage, namespace, replicas } of GITOPS_DEMO.stages) {
        const app = await waitFor(async () => {
          const a = await gitops.argoCd.refresh(`checkout-${stage}`);
          return a.status?.sync?.status === 'Synced' &&
            a.status?.health?.status === 'Healthy'
            ? a
            : undefined;
        }, 60_000);
        expect(app.spec.source).toEqual({
          repoURL: gitops.git.repoUrl('manifests'),
          path: `overlays/${stage}`,
          targetRevision: 'main',
        });
        expect(Boolean(app.spec.syncPolicy.automated)).toBe(
          stage !== 'production',
        );
        const d = sim.store.get('deployments', namespace, 'checkout')!;
        expect(d.spec.replicas).toBe(replicas);
        expect(d.spec.template.spec.containers[0].image).toBe(
          'registry.local/checkout:1.0.0',
        );
        expect(d.metadata.labels?.['backstage.io/kubernetes-id']).toBe(
          'checkout',
        );
        expect(d.metadata.annotations?.['argocd.argoproj.io/tracking-id']).toBe(
          `checkout-${stage}:apps/Deployment:${namespace}/checkout`,
        );
      }
      expect((await gitops.git.log('manifests')).map(c => c.subject)).toEqual([
        'Manifests of checkout: a base and three overlays',
      ]);
    } finally {
      if (!('skipped' in gitops)) await gitops.stop();
      await demo.stop();
      await sim.stop();
    }
  });
});

it('says why and installs nothing when kubectl is missing', async () => {
  const sim = await KubeSimulator.start();
  try {
    const result = await installGitOpsDemo(sim, {
      kubectl: '/nonexistent/kubectl',
      anyPorts: true,
    });
    expect(result).toEqual({
      skipped:
        'kubectl was not found: the GitOps example (checkout, whose overlays Argo CD renders with kubectl kustomize) does not run',
    });
    expect(sim.store.list('applications', 'argocd')).toEqual([]);
  } finally {
    await sim.stop();
  }
});
