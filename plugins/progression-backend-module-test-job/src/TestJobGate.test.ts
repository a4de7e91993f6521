import { ConfigReader } from '@backstage/config';
import { JsonObject, JsonValue } from '@backstage/types';
import {
  GateContext,
  ProgressionConfigError,
  StageConfig,
  StageJobRun,
  StageJobSpec,
  StageLocation,
  StageWorkloads,
} from '@progression-io/backstage-plugin-progression-node';
import {
  JOB_ROLE_LABEL,
  TestJobEvidence,
  TestJobGate,
  testJobName,
} from './TestJobGate';

/*
 * Config reading, and how a run turns the Job's outcome into a result. The
 * cluster here is a recorder of the Job spec that answers with the run it
 * is given; withWebhook.test.ts runs the gate against the cluster
 * simulator through a real backend.
 */

const STAGE = 'progression.pipelines.standard.stages[1]';
const PROMOTION = '6F1C2D3E-0000-4000-8000-000000000001';

const policy: Omit<StageConfig, 'gates'> = {
  name: 'staging',
  title: 'Staging',
  cluster: 'local',
  namespace: 'staging',
  url: 'http://staging.example/{{ kubernetesId }}',
  autoPromote: false,
  approval: {
    required: false,
    approvers: [],
    minApprovals: 1,
    allowSelfApproval: false,
  },
  soakMs: 0,
  rollback: { automatic: true },
  rolloutTimeoutMs: 600_000,
  readyTimeoutMs: 60_000,
  deploy: { kind: 'kubernetes', config: undefined },
  flags: { configMap: 'feature-flags', key: 'flags.json' },
};

const k6 = {
  image: 'grafana/k6:0.52.0',
  command: ['k6', 'run', '/scripts/smoke.js'],
};

function read(
  testJob: JsonValue,
  stagePolicy: Omit<StageConfig, 'gates'> = policy,
) {
  return new TestJobGate().readConfig(
    new ConfigReader({ gates: { testJob } }),
    {
      path: STAGE,
      policy: stagePolicy,
    },
  );
}

function errorOf(fn: () => unknown): ProgressionConfigError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ProgressionConfigError) return e;
    throw e;
  }
  throw new Error('expected a ProgressionConfigError');
}

describe('reading gates.testJob', () => {
  it('reads the whole section', () => {
    expect(
      read({
        ...k6,
        args: ['--quiet'],
        env: {
          BASE_URL: '{{ stageUrl }}',
          HEALTH: '{{stageUrl}}/healthz',
          VUS: 10,
          _DEBUG: false,
        },
        timeout: '5m',
        backoffLimit: 2,
        phase: 'verification',
      }),
    ).toEqual({
      ...k6,
      args: ['--quiet'],
      env: {
        BASE_URL: '{{ stageUrl }}',
        HEALTH: '{{stageUrl}}/healthz',
        VUS: '10',
        _DEBUG: 'false',
      },
      timeoutMs: 300_000,
      backoffLimit: 2,
    });
  });

  it('defaults to 10 minutes, no retries and no env', () => {
    expect(read(k6)).toEqual({
      ...k6,
      env: {},
      timeoutMs: 600_000,
      backoffLimit: 0,
    });
  });

  it('is off when the stage has no gates.testJob', () => {
    expect(
      new TestJobGate().readConfig(new ConfigReader({}), {
        path: STAGE,
        policy,
      }),
    ).toBeUndefined();
  });

  it.each<[string, JsonValue, string]>([
    ['a string', 'grafana/k6:0.52.0', ''],
    ['an unknown key', { ...k6, shell: true }, '.shell'],
    ['no image', { command: k6.command }, '.image'],
    ['an empty image', { ...k6, image: '' }, '.image'],
    ['an image with a space', { ...k6, image: 'grafana/k6 0.52' }, '.image'],
    ['no command', { image: k6.image }, '.command'],
    ['an empty command', { ...k6, command: [] }, '.command'],
    ['a command string', { ...k6, command: 'k6 run x.js' }, '.command'],
    ['a command of numbers', { ...k6, command: ['k6', 1] }, '.command'],
    ['an empty program', { ...k6, command: ['', 'run'] }, '.command[0]'],
    ['args that are no list', { ...k6, args: '--quiet' }, '.args'],
    [
      'a placeholder in args',
      { ...k6, args: ['--env', 'BASE={{ stageUrl }}'] },
      '.args[1]',
    ],
    ['env that is no map', { ...k6, env: ['A=b'] }, '.env'],
    [
      'an env name with a dash',
      { ...k6, env: { 'MY-VAR': 'x' } },
      '.env.MY-VAR',
    ],
    [
      'an env name with a leading digit',
      { ...k6, env: { '1A': 'x' } },
      '.env.1A',
    ],
    ['an env value that is a map', { ...k6, env: { A: { b: 1 } } }, '.env.A'],
    ['another placeholder', { ...k6, env: { V: '{{ version }}' } }, '.env.V'],
    [
      'a broken placeholder',
      { ...k6, env: { BASE_URL: '{{ stageUrl }' } },
      '.env.BASE_URL',
    ],
    ['a timeout above 1h', { ...k6, timeout: '2h' }, '.timeout'],
    ['a timeout of 0', { ...k6, timeout: '0s' }, '.timeout'],
    ['a timeout that is no duration', { ...k6, timeout: 'later' }, '.timeout'],
    ['a backoffLimit of 11', { ...k6, backoffLimit: 11 }, '.backoffLimit'],
    [
      'a fractional backoffLimit',
      { ...k6, backoffLimit: 1.5 },
      '.backoffLimit',
    ],
    ['a backoffLimit string', { ...k6, backoffLimit: '2' }, '.backoffLimit'],
    ['another phase', { ...k6, phase: 'rollback' }, '.phase'],
  ])('refuses %s, naming the key', (_what, testJob, key) => {
    expect(errorOf(() => read(testJob)).key).toBe(
      `${STAGE}.gates.testJob${key}`,
    );
  });

  it('refuses {{ stageUrl }} in a stage without a url', () => {
    const error = errorOf(() =>
      read(
        { ...k6, env: { BASE_URL: '{{ stageUrl }}' } },
        { ...policy, url: undefined },
      ),
    );
    expect(error.key).toBe(`${STAGE}.gates.testJob.env.BASE_URL`);
    expect(error.message).toContain('the stage has no url');
  });
});

describe('the test Job name', () => {
  it('is a DNS label that is the same for every run of a promotion', () => {
    expect(testJobName(PROMOTION)).toBe('progression-test-6f1c2d3e');
    expect(testJobName(PROMOTION)).toBe(testJobName(PROMOTION));
    expect(testJobName('6f1c2d3f-0000')).not.toBe(testJobName(PROMOTION));
    expect(testJobName('---')).toBe('progression-test-x');
  });
});

describe('running the test job gate', () => {
  const location = {
    cluster: { name: 'local' },
    namespace: 'staging',
  } as StageLocation;

  /** A cluster that records the Job spec and ends the Job as told. */
  function cluster(end: (spec: StageJobSpec) => Partial<StageJobRun>) {
    const jobs: { spec: StageJobSpec; signal?: AbortSignal }[] = [];
    const notUsed = () => {
      throw new Error('the test job gate only runs Jobs');
    };
    const workloads: StageWorkloads = {
      kubeConfig: notUsed,
      findDeployment: notUsed,
      readLive: notUsed,
      readCached: notUsed,
      waitForRollout: notUsed,
      containerOf: notUsed,
      runJob: async (at, spec, signal) => {
        expect(at).toBe(location);
        jobs.push({ spec, signal });
        return {
          name: spec.name,
          namespace: at.namespace,
          image: spec.image,
          command: spec.command,
          envNames: Object.keys(spec.env ?? {}),
          reused: false,
          status: 'complete',
          conditions: [],
          ...end(spec),
        };
      },
    };
    return { workloads, jobs };
  }

  function context(
    testJob: JsonObject,
    extra: Partial<GateContext> = {},
  ): GateContext {
    return {
      stage: { ...policy, gates: { testJob: read(testJob) } },
      stageUrl: 'http://staging.example/payments-api',
      location,
      entity: {
        entityRef: 'component:default/payments-api',
        name: 'payments-api',
        namespace: 'default',
        kubernetesId: 'payments-api',
      },
      release: {
        id: 'rel-1',
        version: '1.5.0',
        image: 'registry.local/payments-api:1.5.0',
      },
      promotionId: PROMOTION,
      ...extra,
    };
  }

  const jobOf = (r: { evidence?: unknown }) =>
    (r.evidence as TestJobEvidence).job;

  it('runs the image with the stage URL filled in and passes when the Job completes', async () => {
    const { workloads, jobs } = cluster(() => ({
      durationMs: 1234,
      exitCode: 0,
      logTail: 'checks...: 100.00% ✓ 600 ✗ 0\n',
    }));
    const controller = new AbortController();
    const result = await new TestJobGate().run(
      context(
        {
          ...k6,
          args: ['--quiet'],
          env: { BASE_URL: '{{ stageUrl }}', HEALTH: '{{stageUrl}}/healthz' },
          timeout: '5m',
          backoffLimit: 1,
        },
        { workloads, signal: controller.signal },
      ),
      'verification',
    );

    expect(jobs).toEqual([
      {
        spec: {
          name: 'progression-test-6f1c2d3e',
          promotionId: PROMOTION,
          kubernetesId: 'payments-api',
          container: 'test',
          image: 'grafana/k6:0.52.0',
          command: ['k6', 'run', '/scripts/smoke.js'],
          args: ['--quiet'],
          env: {
            BASE_URL: 'http://staging.example/payments-api',
            HEALTH: 'http://staging.example/payments-api/healthz',
          },
          labels: { [JOB_ROLE_LABEL]: 'test' },
          timeoutMs: 300_000,
          backoffLimit: 1,
          deleteOnCancel: true,
        },
        signal: controller.signal,
      },
    ]);
    expect(result).toMatchObject({
      gate: 'testJob',
      phase: 'verification',
      status: 'passed',
      reason: 'test job progression-test-6f1c2d3e completed in 1.2 s',
    });
    expect(jobOf(result)).toMatchObject({
      status: 'complete',
      exitCode: 0,
      logTail: 'checks...: 100.00% ✓ 600 ✗ 0\n',
      envNames: ['BASE_URL', 'HEALTH'],
    });
  });

  it.each<[string, Partial<StageJobRun>, string, string]>([
    [
      'fails with the exit code and the last log line',
      {
        status: 'failed',
        exitCode: 99,
        logTail:
          "2025-01-01T10:00:30.120Z http_req_failed...: 3.50%\n2025-01-01T10:00:31.002Z ERRO[0031] thresholds on metrics 'http_req_duration' have been crossed\n",
      },
      'failed',
      "test job progression-test-6f1c2d3e failed with exit code 99: ERRO[0031] thresholds on metrics 'http_req_duration' have been crossed",
    ],
    [
      'fails without an exit code when the pod is gone',
      { status: 'failed' },
      'failed',
      'test job progression-test-6f1c2d3e failed',
    ],
    [
      'fails when the Job runs out of time',
      { status: 'timeout' },
      'failed',
      'test job progression-test-6f1c2d3e did not finish within 10 min',
    ],
    [
      'is an error when the promotion was cancelled',
      { status: 'cancelled' },
      'error',
      'interrupted: the promotion was cancelled or stopped while test job progression-test-6f1c2d3e ran',
    ],
    [
      'is an error when the Job could not run',
      {
        status: 'error',
        error:
          'a Job named progression-test-6f1c2d3e already exists in namespace staging for promotion 6f1c2d3e-other',
      },
      'error',
      'test job progression-test-6f1c2d3e could not run: a Job named progression-test-6f1c2d3e already exists in namespace staging for promotion 6f1c2d3e-other',
    ],
  ])('%s', async (_what, end, status, reason) => {
    const { workloads } = cluster(() => end);
    const result = await new TestJobGate().run(
      context(k6, { workloads }),
      'verification',
    );
    expect(result.status).toBe(status);
    expect(result.reason).toBe(reason);
    expect(jobOf(result)).toMatchObject(end);
  });

  it('is an error, not a pass, when running the Job throws', async () => {
    const { workloads } = cluster(() => {
      throw new Error('connect ECONNREFUSED 127.0.0.1:6443');
    });
    const result = await new TestJobGate().run(
      context(k6, { workloads }),
      'verification',
    );
    expect(result).toMatchObject({
      status: 'error',
      reason: 'cannot run the test job: connect ECONNREFUSED 127.0.0.1:6443',
      evidence: {},
    });
  });

  it('starts no Job when it cannot run one properly', async () => {
    const { workloads, jobs } = cluster(() => ({}));
    const gate = new TestJobGate();
    const withStageUrl = { ...k6, env: { BASE_URL: '{{ stageUrl }}' } };

    const noCluster = await gate.run(context(k6), 'verification');
    expect(noCluster).toMatchObject({
      status: 'error',
      reason: 'cannot run the test job without cluster access',
    });
    const noUrl = await gate.run(
      context(withStageUrl, { workloads, stageUrl: undefined }),
      'verification',
    );
    expect(noUrl).toMatchObject({
      status: 'error',
      reason:
        'env BASE_URL uses {{ stageUrl }}, but the stage has no URL for payments-api',
    });
    const badLabel = await gate.run(
      context(k6, { workloads, promotionId: `${'a'.repeat(64)}` }),
      'verification',
    );
    expect(badLabel.status).toBe('error');
    expect(badLabel.reason).toContain('is not a valid label value');
    const notConfigured = await gate.run(
      { ...context(k6, { workloads }), stage: { ...policy, gates: {} } },
      'verification',
    );
    expect(notConfigured.status).toBe('skipped');
    expect(jobs).toEqual([]);
  });
});
