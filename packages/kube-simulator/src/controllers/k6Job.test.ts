import * as k8s from '@kubernetes/client-node';
import { KubeSimulator } from '../KubeSimulator';
import { waitFor } from '../testUtils/waitFor';

// Real servers and processes: allow more than Jest's default 5 s per test.
jest.setTimeout(60_000);

/*
 * A Job with a k6 image, as a load-test gate runs one: through client-node,
 * its pod's log is k6's end-of-test summary and a crossed threshold fails
 * it with k6's exit code.
 */
let sim: KubeSimulator;
let batch: k8s.BatchV1Api;
let core: k8s.CoreV1Api;
const ns = 'staging';

beforeAll(async () => {
  sim = await KubeSimulator.start({ podReadyDelayMs: 20, jobRunMs: 50 });
  const kc = new k8s.KubeConfig();
  kc.loadFromString(sim.kubeconfig());
  batch = kc.makeApiClient(k8s.BatchV1Api);
  core = kc.makeApiClient(k8s.CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: ns } } });
});
afterAll(() => sim.stop());

async function runJob(name: string, image: string) {
  await batch.createNamespacedJob({
    namespace: ns,
    body: {
      metadata: { name },
      spec: {
        backoffLimit: 0,
        template: {
          spec: {
            restartPolicy: 'Never',
            containers: [
              { name: 'k6', image, args: ['run', '/scripts/test.js'] },
            ],
          },
        },
      },
    },
  });
  const job = await waitFor(
    async () => {
      const j = await batch.readNamespacedJob({ namespace: ns, name });
      return (
        j.status?.conditions?.some(
          c =>
            (c.type === 'Complete' || c.type === 'Failed') &&
            c.status === 'True',
        ) && j
      );
    },
    15_000,
    `job ${name}`,
  );
  const [pod] = (
    await core.listNamespacedPod({
      namespace: ns,
      labelSelector: `job-name=${name}`,
    })
  ).items;
  const log = await core.readNamespacedPodLog({
    namespace: ns,
    name: pod.metadata!.name!,
  });
  return { job, pod, log };
}

it('logs the end-of-test summary of a k6 image', async () => {
  const { job, pod, log } = await runJob('load-ok', 'grafana/k6:0.52.0');
  expect(job.status?.conditions?.map(c => c.type)).toContain('Complete');
  expect(log).toContain('checks.........................: 100.00% ✓ 600 ✗ 0');
  expect(log).toContain('http_req_duration..............: avg=12ms p(95)=25ms');
  expect(log).toContain('http_req_failed................: 0.00%');
  expect(log).not.toContain('migrations');
  expect(pod.status?.containerStatuses?.[0].state?.terminated).toMatchObject({
    exitCode: 0,
    reason: 'Completed',
  });
});

it('fails a k6 Job whose tag asks for it with crossed thresholds and exit code 99', async () => {
  const { job, pod, log } = await runJob(
    'load-bad',
    'grafana/k6:0.52.0-failing',
  );
  expect(job.status?.conditions?.find(c => c.type === 'Failed')).toMatchObject({
    status: 'True',
    reason: 'BackoffLimitExceeded',
  });
  expect(log).toContain('checks.........................:');
  expect(log).toContain(
    "ERRO[0031] thresholds on metrics 'http_req_duration' have been crossed",
  );
  expect(pod.status?.phase).toBe('Failed');
  expect(pod.status?.containerStatuses?.[0].state?.terminated).toMatchObject({
    exitCode: 99,
    reason: 'Error',
  });
});
