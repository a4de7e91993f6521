import { KubeSimulator } from '../KubeSimulator';
import { ArgoCdStandIn } from '../gitops/ArgoCd';
import { GitServer } from '../gitops/GitServer';
import { run } from '../gitops/run';
import { DEMO_STAGES, DemoStage } from './installDemo';

/** The demo's Git server and Argo CD, as app-config.yaml names them. */
export const GITOPS_DEMO = {
  gitPort: 7180,
  argoCdPort: 7181,
  /** Demo values, as the simulator's own token: not secrets. */
  gitToken: 'progression-demo-git-token',
  argoCdToken: 'progression-demo-argocd-token',
  service: 'checkout',
  image: 'registry.local/checkout',
  version: '1.0.0',
  /** The gitops pipeline's stages (Application `checkout-<stage>`) over the demo's namespaces. */
  stages: [
    { stage: 'dev', namespace: 'development', replicas: 1 },
    { stage: 'staging', namespace: 'staging', replicas: 2 },
    { stage: 'production', namespace: 'production', replicas: 2 },
  ],
};

/** Whether `kubectl` (which renders the overlays, as Argo CD's kustomize does) runs here. */
export async function kubectlAvailable(kubectl = 'kubectl'): Promise<boolean> {
  const result = await run(kubectl, ['version', '--client'], {
    timeoutMs: 15_000,
  });
  return result.code === 0;
}

/** The manifests repository: a base and one overlay per stage, as the guide has them. */
export function gitopsManifests(): Record<string, string> {
  const { service, image, version } = GITOPS_DEMO;
  const files: Record<string, string> = {
    'README.md': `# Manifests of ${service}

One Kustomize overlay per environment; Argo CD syncs each into its namespace
(Applications ${GITOPS_DEMO.stages
      .map(s => `${service}-${s.stage}`)
      .join(', ')}). Progression promotes a release by a commit that sets
its image in the stage's overlay.
`,
    'base/kustomization.yaml': `resources:
  - deployment.yaml
  - service.yaml
`,
    'base/deployment.yaml': `apiVersion: apps/v1
kind: Deployment
metadata:
  name: ${service}
  labels:
    app: ${service}
    backstage.io/kubernetes-id: ${service}
spec:
  replicas: 1
  selector:
    matchLabels:
      app: ${service}
  template:
    metadata:
      labels:
        app: ${service}
        backstage.io/kubernetes-id: ${service}
    spec:
      containers:
        - name: ${service}
          image: ${image}:${version}
          ports:
            - containerPort: 8080
`,
    'base/service.yaml': `apiVersion: v1
kind: Service
metadata:
  name: ${service}
  labels:
    app: ${service}
    backstage.io/kubernetes-id: ${service}
spec:
  selector:
    app: ${service}
  ports:
    - port: 80
      targetPort: 8080
`,
  };
  for (const s of GITOPS_DEMO.stages) {
    files[
      `overlays/${s.stage}/kustomization.yaml`
    ] = `# ${s.stage}: synced by Argo CD Application ${service}-${s.stage}
resources:
  - ../../base
namespace: ${s.namespace}
replicas:
  - name: ${service}
    count: ${s.replicas}
images:
  - name: ${image}
    newTag: ${version}
`;
  }
  return files;
}

/**
 * The demo's GitOps example: a Git server (`git http-backend` behind a
 * token) holding the manifests repository of a third service, `checkout`,
 * and the Argo CD stand-in with one Application per stage over the demo's
 * namespaces (and so their labels and NetworkPolicies): dev automated with
 * prune and selfHeal, staging automated, production synced by hand — once
 * here, so that 1.0.0 runs everywhere, then by Progression after each
 * approval. Undefined, with the reason, when kubectl is missing.
 */
export async function installGitOpsDemo(
  sim: KubeSimulator,
  options: {
    /** Any free ports (tests), not 7180-7181. */
    anyPorts?: boolean;
    stages?: DemoStage[];
    kubectl?: string;
    /** How long a drift in dev stays before selfHeal reverts it; default 15 s, to be seen. */
    selfHealDelayMs?: number;
  } = {},
): Promise<
  | { git: GitServer; argoCd: ArgoCdStandIn; stop(): Promise<void> }
  | { skipped: string }
> {
  if (!(await kubectlAvailable(options.kubectl))) {
    return {
      skipped:
        'kubectl was not found: the GitOps example (checkout, whose overlays Argo CD renders with kubectl kustomize) does not run',
    };
  }
  const namespaces = new Set(
    (options.stages ?? DEMO_STAGES).map(s => s.namespace),
  );
  const git = await GitServer.start({
    token: GITOPS_DEMO.gitToken,
    port: options.anyPorts ? 0 : GITOPS_DEMO.gitPort,
  });
  let argoCd: ArgoCdStandIn | undefined;
  try {
    await git.createRepository('manifests', gitopsManifests(), {
      message: 'Manifests of checkout: a base and three overlays',
    });
    argoCd = await ArgoCdStandIn.start(sim, {
      token: GITOPS_DEMO.argoCdToken,
      port: options.anyPorts ? 0 : GITOPS_DEMO.argoCdPort,
      repositories: {
        [git.url]: { username: 'argocd', password: GITOPS_DEMO.gitToken },
      },
      kubectl: options.kubectl,
      selfHealDelayMs: options.selfHealDelayMs ?? 15_000,
    });
    const { service } = GITOPS_DEMO;
    for (const [i, s] of GITOPS_DEMO.stages.entries()) {
      if (!namespaces.has(s.namespace)) continue;
      const last = i === GITOPS_DEMO.stages.length - 1;
      sim.apply({
        apiVersion: 'argoproj.io/v1alpha1',
        kind: 'Application',
        metadata: { name: `${service}-${s.stage}`, namespace: 'argocd' },
        spec: {
          project: 'default',
          source: {
            repoURL: git.repoUrl('manifests'),
            path: `overlays/${s.stage}`,
            targetRevision: 'main',
          },
          destination: {
            server: 'https://kubernetes.default.svc',
            namespace: s.namespace,
          },
          syncPolicy: last
            ? {}
            : {
                automated:
                  i === 0
                    ? { prune: true, selfHeal: true }
                    : { prune: false, selfHeal: false },
              },
        },
      });
      if (last) {
        // A manual Application: its first sync, as a person would click it.
        await argoCd.refresh(`${service}-${s.stage}`);
        const res = await fetch(
          `${argoCd.url}/api/v1/applications/${service}-${s.stage}/sync`,
          {
            method: 'POST',
            headers: {
              Authorization: `Bearer ${GITOPS_DEMO.argoCdToken}`,
              'Content-Type': 'application/json',
            },
            body: '{}',
          },
        );
        if (!res.ok) {
          throw new Error(
            `the first sync of ${service}-${s.stage} failed: ${
              res.status
            } ${await res.text()}`,
          );
        }
      }
    }
  } catch (e) {
    await argoCd?.stop();
    await git.stop();
    throw e;
  }
  const standIn = argoCd;
  return {
    git,
    argoCd: standIn,
    async stop() {
      await standIn.stop();
      await git.stop();
    },
  };
}
