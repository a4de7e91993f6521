import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { KubeSimulator } from './KubeSimulator';
import { waitFor } from './testUtils/waitFor';

// Real servers and processes: allow more than Jest's default 5 s per test.
jest.setTimeout(60_000);

/*
 * The real kubectl against the simulator: the outcomes a real cluster gives.
 * kubectl is on this machine's image and CI's; scripts/test.sh sets
 * PROGRESSION_REQUIRE_KUBECTL so that a run without it fails rather than
 * skips. kubectl sends no bearer token over plain HTTP, so the simulator
 * serves HTTPS here, its self-signed CA in the kubeconfig.
 */
const run = promisify(execFile);

function findKubectl(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(dir, 'kubectl');
    if (fs.existsSync(candidate)) return candidate;
  }
  return undefined;
}

const kubectlPath = findKubectl();
const describeWithKubectl = kubectlPath ? describe : describe.skip;

it('has kubectl when the test script requires it', () => {
  expect(Boolean(kubectlPath) || !process.env.PROGRESSION_REQUIRE_KUBECTL).toBe(
    true,
  );
});

let sim: KubeSimulator;
let dir: string;
let kubeconfig: string;

async function kubectl(...args: string[]) {
  try {
    const { stdout, stderr } = await run(kubectlPath!, args, {
      env: { ...process.env, KUBECONFIG: kubeconfig, HOME: dir },
      timeout: 60_000,
    });
    return { code: 0, stdout, stderr };
  } catch (e: any) {
    return {
      code: e.code as number,
      stdout: String(e.stdout),
      stderr: String(e.stderr),
    };
  }
}

async function ok(...args: string[]) {
  const result = await kubectl(...args);
  if (result.code !== 0) {
    throw new Error(
      `kubectl ${args.join(' ')} failed (${result.code}): ${result.stderr}`,
    );
  }
  return result.stdout;
}

function manifest(name: string, text: string) {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

const deployment = (image: string, extra = '') => `apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop
  namespace: staging
  labels: { app: shop, backstage.io/kubernetes-id: shop }
spec:
  replicas: 2${extra}
  selector: { matchLabels: { app: shop } }
  template:
    metadata: { labels: { app: shop } }
    spec:
      containers:
        - name: shop
          image: ${image}
          ports: [{ containerPort: 8080 }]
`;

describeWithKubectl('kubectl', () => {
  beforeAll(async () => {
    sim = await KubeSimulator.start({
      tls: true,
      podReadyDelayMs: 50,
      jobRunMs: 200,
    });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kubectl-test-'));
    kubeconfig = path.join(dir, 'kubeconfig');
    fs.writeFileSync(kubeconfig, sim.kubeconfig());
  });

  afterAll(async () => {
    await sim?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('creates and applies namespaces, Deployments, Services, ConfigMaps, NetworkPolicies and Jobs', async () => {
    const ns = manifest(
      'ns.yaml',
      `apiVersion: v1
kind: Namespace
metadata:
  name: staging
  labels: { environment: staging }
`,
    );
    expect(await ok('create', '-f', ns)).toContain('namespace/staging created');
    const rest = manifest(
      'rest.yaml',
      `${deployment('shop:1.0.0')}---
apiVersion: v1
kind: Service
metadata: { name: shop, namespace: staging }
spec:
  selector: { app: shop }
  ports: [{ port: 80, targetPort: 8080 }]
---
apiVersion: v1
kind: ConfigMap
metadata: { name: feature-flags, namespace: staging }
data: { flags.json: '{"flags":{}}' }
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: default-deny-ingress, namespace: staging }
spec:
  podSelector: {}
  policyTypes: [Ingress]
`,
    );
    const applied = await ok('apply', '-f', rest);
    expect(applied).toContain('deployment.apps/shop created');
    expect(applied).toContain('service/shop created');
    expect(applied).toContain('configmap/feature-flags created');
    expect(applied).toContain(
      'networkpolicy.networking.k8s.io/default-deny-ingress created',
    );
    // Applying again changes nothing; changing a field configures it.
    expect(await ok('apply', '-f', rest)).toContain(
      'deployment.apps/shop unchanged',
    );
    const scaled = manifest(
      'scaled.yaml',
      deployment('shop:1.0.0').replace('replicas: 2', 'replicas: 3'),
    );
    expect(await ok('apply', '-f', scaled)).toContain(
      'deployment.apps/shop configured',
    );
    expect(
      await ok(
        '-n',
        'staging',
        'get',
        'deploy',
        'shop',
        '-o',
        'jsonpath={.spec.replicas}',
      ),
    ).toBe('3');
    await ok('apply', '-f', rest);
  });

  it('prints tables for get deploy,rs,pods', async () => {
    await ok(
      '-n',
      'staging',
      'rollout',
      'status',
      'deployment/shop',
      '--timeout=30s',
    );
    const out = await ok('-n', 'staging', 'get', 'deploy,rs,pods');
    expect(out).toMatch(/NAME\s+READY\s+UP-TO-DATE\s+AVAILABLE\s+AGE/);
    expect(out).toMatch(/deployment\.apps\/shop\s+2\/2\s+2\s+2\s+/);
    expect(out).toMatch(/NAME\s+DESIRED\s+CURRENT\s+READY\s+AGE/);
    expect(out).toMatch(/replicaset\.apps\/shop-[a-z0-9]+\s+2\s+2\s+2/);
    expect(out).toMatch(/pod\/shop-[a-z0-9]+-[a-z0-9]{5}\s+1\/1\s+Running\s+0/);
  });

  it('sets an image, waits for the rollout and shows the history with change-cause', async () => {
    await ok(
      '-n',
      'staging',
      'annotate',
      'deployment/shop',
      'kubernetes.io/change-cause=initial release 1.0.0',
      '--overwrite',
    );
    expect(
      await ok(
        '-n',
        'staging',
        'set',
        'image',
        'deployment/shop',
        'shop=shop:1.1.0',
      ),
    ).toContain('image updated');
    await ok(
      '-n',
      'staging',
      'annotate',
      'deployment/shop',
      'kubernetes.io/change-cause=release 1.1.0',
      '--overwrite',
    );
    expect(
      await ok(
        '-n',
        'staging',
        'rollout',
        'status',
        'deployment/shop',
        '--timeout=30s',
      ),
    ).toContain('deployment "shop" successfully rolled out');
    await ok(
      '-n',
      'staging',
      'set',
      'image',
      'deployment/shop',
      'shop=shop:1.2.0',
    );
    await ok(
      '-n',
      'staging',
      'annotate',
      'deployment/shop',
      'kubernetes.io/change-cause=release 1.2.0',
      '--overwrite',
    );
    await ok(
      '-n',
      'staging',
      'rollout',
      'status',
      'deployment/shop',
      '--timeout=30s',
    );
    const history = await ok(
      '-n',
      'staging',
      'rollout',
      'history',
      'deployment/shop',
    );
    expect(history).toMatch(/1\s+initial release 1\.0\.0/);
    expect(history).toMatch(/2\s+release 1\.1\.0/);
    expect(history).toMatch(/3\s+release 1\.2\.0/);
  });

  it('undoes to the previous revision and to a named one, reusing the old ReplicaSets', async () => {
    const rsBefore = await ok(
      '-n',
      'staging',
      'get',
      'rs',
      '-l',
      'app=shop',
      '-o',
      'jsonpath={range .items[*]}{.metadata.name}={.metadata.annotations.deployment\\.kubernetes\\.io/revision}{"\\n"}{end}',
    );
    const byRevision = Object.fromEntries(
      rsBefore
        .trim()
        .split('\n')
        .map(l => l.split('=').reverse()),
    );

    expect(
      await ok('-n', 'staging', 'rollout', 'undo', 'deployment/shop'),
    ).toContain('rolled back');
    await ok(
      '-n',
      'staging',
      'rollout',
      'status',
      'deployment/shop',
      '--timeout=30s',
    );
    expect(
      await ok(
        '-n',
        'staging',
        'get',
        'deploy',
        'shop',
        '-o',
        'jsonpath={.spec.template.spec.containers[0].image}',
      ),
    ).toBe('shop:1.1.0');
    let history = await ok(
      '-n',
      'staging',
      'rollout',
      'history',
      'deployment/shop',
    );
    // Revision 2 moved to 4: the old ReplicaSet is reused, not copied.
    expect(history).toMatch(
      /1\s+initial release 1\.0\.0\s+3\s+release 1\.2\.0\s+4\s+release 1\.1\.0/,
    );
    expect(
      await ok(
        '-n',
        'staging',
        'get',
        'rs',
        byRevision['2'],
        '-o',
        'jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}',
      ),
    ).toBe('4');

    await ok(
      '-n',
      'staging',
      'rollout',
      'undo',
      'deployment/shop',
      '--to-revision=1',
    );
    await ok(
      '-n',
      'staging',
      'rollout',
      'status',
      'deployment/shop',
      '--timeout=30s',
    );
    history = await ok(
      '-n',
      'staging',
      'rollout',
      'history',
      'deployment/shop',
    );
    expect(history).toMatch(
      /3\s+release 1\.2\.0\s+4\s+release 1\.1\.0\s+5\s+initial release 1\.0\.0/,
    );
    // The Deployment's template is revision 1's, minus pod-template-hash.
    const template = JSON.parse(
      await ok(
        '-n',
        'staging',
        'get',
        'deploy',
        'shop',
        '-o',
        'jsonpath={.spec.template}',
      ),
    );
    const rsTemplate = JSON.parse(
      await ok(
        '-n',
        'staging',
        'get',
        'rs',
        byRevision['1'],
        '-o',
        'jsonpath={.spec.template}',
      ),
    );
    delete rsTemplate.metadata.labels['pod-template-hash'];
    expect(template).toEqual(rsTemplate);
    expect(
      await ok(
        '-n',
        'staging',
        'get',
        'rs',
        byRevision['1'],
        '-o',
        'jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision-history}',
      ),
    ).toBe('1');
  });

  it('scales', async () => {
    expect(
      await ok('-n', 'staging', 'scale', 'deployment/shop', '--replicas=4'),
    ).toContain('deployment.apps/shop scaled');
    await ok(
      '-n',
      'staging',
      'rollout',
      'status',
      'deployment/shop',
      '--timeout=30s',
    );
    expect(
      await ok(
        '-n',
        'staging',
        'get',
        'deploy',
        'shop',
        '-o',
        'jsonpath={.status.readyReplicas}',
      ),
    ).toBe('4');
  });

  it('fails rollout status with the deadline message for an unready image', async () => {
    await ok(
      '-n',
      'staging',
      'patch',
      'deployment/shop',
      '-p',
      '{"spec":{"progressDeadlineSeconds":2}}',
    );
    await ok(
      '-n',
      'staging',
      'set',
      'image',
      'deployment/shop',
      'shop=shop:1.3.0-unready',
    );
    const result = await kubectl(
      '-n',
      'staging',
      'rollout',
      'status',
      'deployment/shop',
      '--timeout=30s',
    );
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain(
      'deployment "shop" exceeded its progress deadline',
    );
  });

  it('prints the waiting reasons of pods that cannot start in get pods STATUS', async () => {
    const workload = (name: string, image: string) =>
      manifest(
        `${name}.yaml`,
        `apiVersion: apps/v1
kind: Deployment
metadata: { name: ${name}, namespace: staging }
spec:
  replicas: 1
  selector: { matchLabels: { app: ${name} } }
  template:
    metadata: { labels: { app: ${name} } }
    spec:
      containers:
        - name: ${name}
          image: ${image}
`,
      );
    await ok('apply', '-f', workload('crasher', 'crasher:1.0.0-crashloop'));
    await ok('apply', '-f', workload('puller', 'puller:1.0.0-badimage'));
    // kubectl's printer shows a waiting container's reason, and the
    // restarts with how long ago the last one ended.
    const table = await waitFor(
      async () => {
        const out = await ok('-n', 'staging', 'get', 'pods');
        return /crasher-\S+\s+0\/1\s+CrashLoopBackOff\s+[1-9]\d* \(\d+s ago\)/.test(
          out,
        ) && /puller-\S+\s+0\/1\s+ImagePullBackOff\s+0\s/.test(out)
          ? out
          : undefined;
      },
      30_000,
      'CrashLoopBackOff and ImagePullBackOff in kubectl get pods',
    );
    expect(table).toMatch(/NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE/);
  });

  it('waits for a Job to complete and reads its logs; a failing migration fails', async () => {
    const job = (name: string, image: string) =>
      manifest(
        `${name}.yaml`,
        `apiVersion: batch/v1
kind: Job
metadata: { name: ${name}, namespace: staging }
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: migrate
          image: ${image}
          command: [./migrate, up]
`,
      );
    expect(await ok('create', '-f', job('migrate-ok', 'shop:1.1.0'))).toContain(
      'job.batch/migrate-ok created',
    );
    expect(
      await ok(
        '-n',
        'staging',
        'wait',
        '--for=condition=complete',
        'job/migrate-ok',
        '--timeout=30s',
      ),
    ).toContain('condition met');
    const logs = await ok('-n', 'staging', 'logs', 'job/migrate-ok');
    expect(logs).toContain('starting shop:1.1.0 command=["./migrate","up"]');
    expect(logs).toContain('completed successfully');

    await ok('apply', '-f', job('migrate-bad', 'shop:1.1.0-failing-migration'));
    expect(
      await ok(
        '-n',
        'staging',
        'wait',
        '--for=condition=failed',
        'job/migrate-bad',
        '--timeout=30s',
      ),
    ).toContain('condition met');
    expect(await ok('-n', 'staging', 'logs', 'job/migrate-bad')).toContain(
      'ERROR: migration failed',
    );
    expect(await ok('-n', 'staging', 'get', 'jobs')).toMatch(
      /migrate-bad\s+Failed\s+0\/1/,
    );
  });

  it('answers errors as kubectl expects them', async () => {
    const missing = await kubectl('-n', 'staging', 'get', 'deploy', 'nope');
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain('deployments.apps "nope" not found');
    const dup = await kubectl('create', '-f', path.join(dir, 'ns.yaml'));
    expect(dup.stderr).toContain('namespaces "staging" already exists');
  });
});

describeWithKubectl('kubectl with RBAC (--rbac)', () => {
  beforeAll(async () => {
    sim = await KubeSimulator.start({ tls: true, rbac: true });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kubectl-rbac-test-'));
    kubeconfig = path.join(dir, 'kubeconfig');
    fs.writeFileSync(kubeconfig, sim.kubeconfig());
  });

  afterAll(async () => {
    await sim?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("applies docs/rbac.yaml, creates the account's token, and answers its requests as RBAC allows", async () => {
    await ok(
      'apply',
      '-f',
      manifest(
        'namespaces.yaml',
        ['backstage', 'development', 'staging', 'production']
          .map(
            name =>
              `apiVersion: v1\nkind: Namespace\nmetadata: { name: ${name} }\n`,
          )
          .join('---\n'),
      ),
    );
    const applied = await ok(
      'apply',
      '-f',
      path.resolve(__dirname, '../../../docs/rbac.yaml'),
    );
    expect(applied).toContain('serviceaccount/progression created');
    expect(applied).toContain(
      'clusterrole.rbac.authorization.k8s.io/progression-stage created',
    );
    expect(applied).toContain(
      'rolebinding.rbac.authorization.k8s.io/progression created',
    );
    const token = (
      await ok('-n', 'backstage', 'create', 'token', 'progression')
    ).trim();
    expect(token).not.toBe('');

    const granted = await kubectl(
      `--token=${token}`,
      '-n',
      'staging',
      'get',
      'deployments',
    );
    expect(granted.code).toBe(0);
    expect(granted.stderr).toContain('No resources found in staging namespace');
    const secrets = await kubectl(
      `--token=${token}`,
      '-n',
      'staging',
      'get',
      'secrets',
    );
    expect(secrets.code).not.toBe(0);
    expect(secrets.stderr).toContain(
      'Error from server (Forbidden): secrets is forbidden: User "system:serviceaccount:backstage:progression" cannot list resource "secrets" in API group "" in the namespace "staging"',
    );
    const elsewhere = await kubectl(
      `--token=${token}`,
      '-n',
      'kube-system',
      'get',
      'deployments',
    );
    expect(elsewhere.stderr).toContain(
      'cannot list resource "deployments" in API group "apps" in the namespace "kube-system"',
    );
  });
});
