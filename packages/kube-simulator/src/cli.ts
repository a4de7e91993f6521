import fs from 'node:fs';
import { KubeSimulator } from './KubeSimulator';
import { installDemo } from './demo/installDemo';
import { GITOPS_DEMO, installGitOpsDemo } from './demo/installGitOpsDemo';

const USAGE = `Usage: kube-simulator [--port N] [--host H] [--token T] [--write-kubeconfig FILE] [--demo]

  --port N               port to listen on (default 6443; 0 = any free port)
  --host H               address to listen on (default 127.0.0.1)
  --token T              bearer token clients must send (default progression-demo-token)
  --write-kubeconfig F   write a kubeconfig for this server to F
  --demo                 create the demo namespaces, policies, flags and workloads, and
                         the GitOps example: a Git server on :7180 and the Argo CD
                         stand-in on :7181 (needs kubectl; without it, said and skipped)
  --tls                  serve HTTPS with a self-signed certificate (kubectl needs it:
                         it sends no token over plain HTTP); the kubeconfig carries its CA
  --rbac                 enforce RBAC on service-account tokens (kubectl create token):
                         Roles, ClusterRoles and their bindings; the --token admin is unlimited
  --pod-ready-delay MS   how long pods take to become ready (default 300)
  --back-off MS          the kubelet's first back-off, 10 s on a real node (default 300):
                         crash-looping containers and failed image pulls wait it, doubling
`;

export async function main(argv: string[]) {
  const args = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--'))
      throw new Error(`unexpected argument '${a}'\n${USAGE}`);
    const [k, inline] = a.slice(2).split('=', 2);
    if (k === 'demo' || k === 'help' || k === 'tls' || k === 'rbac')
      args.set(k, true);
    else args.set(k, inline ?? argv[++i] ?? '');
  }
  if (args.has('help')) {
    process.stdout.write(USAGE);
    return;
  }
  const known = [
    'port',
    'host',
    'token',
    'write-kubeconfig',
    'demo',
    'pod-ready-delay',
    'back-off',
    'tls',
    'rbac',
  ];
  for (const k of args.keys()) {
    if (!known.includes(k)) throw new Error(`unknown option --${k}\n${USAGE}`);
  }
  const port = Number(args.get('port') ?? 6443);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`--port must be 0-65535`);
  const sim = await KubeSimulator.start({
    port,
    host: String(args.get('host') ?? '127.0.0.1'),
    token: args.has('token') ? String(args.get('token')) : undefined,
    podReadyDelayMs: args.has('pod-ready-delay')
      ? Number(args.get('pod-ready-delay'))
      : undefined,
    backOffMs: args.has('back-off') ? Number(args.get('back-off')) : undefined,
    tls: args.has('tls'),
    rbac: args.has('rbac'),
  });
  const kubeconfigPath = args.get('write-kubeconfig');
  if (typeof kubeconfigPath === 'string' && kubeconfigPath) {
    fs.writeFileSync(kubeconfigPath, sim.kubeconfig(), { mode: 0o600 });
  }
  const demos: { stop(): Promise<void> }[] = [];
  if (args.has('demo')) {
    demos.push(await installDemo(sim));
    const gitops = await installGitOpsDemo(sim);
    if ('skipped' in gitops) {
      console.log(`GitOps example skipped: ${gitops.skipped}.`);
    } else {
      demos.push(gitops);
      console.log(
        `GitOps example: Git ${gitops.git.repoUrl('manifests')} (token ${
          GITOPS_DEMO.gitToken
        }), Argo CD ${
          gitops.argoCd.url
        } (KUBECONFIG=… kubectl get applications -n argocd)`,
      );
    }
  }
  console.log(
    `kube-simulator listening on ${sim.url}${
      typeof kubeconfigPath === 'string'
        ? ` (kubeconfig: ${kubeconfigPath})`
        : ''
    }`,
  );
  const shutdown = async () => {
    for (const demo of demos.reverse()) await demo.stop();
    await sim.stop();
    process.exit(0);
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
}
