import { ConfigReader } from '@backstage/config';
import { KubeSimulator, installDemo } from '@internal/kube-simulator';
import {
  ProgressionConfigError,
  StageConfig,
} from '../config/readProgressionConfig';
import { readTestConfig } from '../__testUtils__/readTestConfig';
import {
  KubernetesWorkloads,
  StageLocation,
} from '../kubernetes/KubernetesWorkloads';
import { tailOf } from '../kubernetes/StageResources';
import { GateContext } from './Gate';
import {
  JobEvidence,
  JobGate,
  JobGateConfig,
  jobName,
  readJobGateConfig,
} from './JobGate';

/*
 * Against the project's Kubernetes API simulator with the demo's stages,
 * over HTTP through @kubernetes/client-node. The simulator runs Jobs: a pod
 * whose image tag contains `fail` exits 1, any other completes.
 */
jest.setTimeout(60_000);

let sim: KubeSimulator;
let demo: Awaited<ReturnType<typeof installDemo>>;
let production: StageConfig;
let location: StageLocation;
const workloads = new KubernetesWorkloads();
const gate = new JobGate();

function read(progression: object) {
  return readTestConfig(new ConfigReader({ progression }));
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

function context(
  promotionId: string,
  image: string,
  job?: Partial<JobGateConfig>,
): GateContext {
  return {
    stage: {
      ...production,
      gates: {
        ...production.gates,
        job: { ...production.gates.job!, ...job },
      },
    },
    location,
    entity: {
      entityRef: 'component:default/payments-api',
      name: 'payments-api',
      namespace: 'default',
      kubernetesId: 'payments-api',
    },
    release: { id: `r-${promotionId}`, version: image.split(':')[1], image },
    promotionId,
    workloads,
  };
}

const jobsOf = (promotionId: string) =>
  sim.store
    .list('jobs', 'production')
    .filter(
      j =>
        j.metadata.labels?.['progression.backstage.io/promotion-id'] ===
        promotionId,
    );

const deploymentNow = () => {
  const d = sim.store.get('deployments', 'production', 'payments-api')!;
  return {
    resourceVersion: d.metadata.resourceVersion,
    generation: d.metadata.generation,
    image: d.spec.template.spec.containers[0].image,
    annotations: d.metadata.annotations,
  };
};

beforeAll(async () => {
  sim = await KubeSimulator.start({
    podReadyDelayMs: 20,
    jobRunMs: 300,
    token: 'test-token',
  });
  demo = await installDemo(sim, { anyPorts: true, trafficIntervalMs: 60_000 });
  const config = read({
    clusters: [
      {
        name: 'sim',
        url: sim.url,
        serviceAccountToken: 'test-token',
        skipTLSVerify: true,
      },
    ],
    pipelines: {
      standard: {
        stages: [
          { name: 'staging', cluster: 'sim', namespace: 'staging' },
          {
            name: 'production',
            cluster: 'sim',
            namespace: 'production',
            gates: {
              job: {
                migration: {
                  command: ['./migrate', 'up'],
                  args: ['--verbose'],
                  timeout: '30s',
                  env: { MIGRATION_LOCK_TIMEOUT: '5s' },
                },
              },
            },
          },
        ],
      },
    },
  });
  production = config.pipelines.get('standard')!.stages[1];
  location = {
    cluster: config.clusters.get('sim')!,
    namespace: 'production',
  };
});

afterAll(async () => {
  await workloads.close();
  await demo?.stop();
  await sim?.stop();
});

describe('JobGate against the simulator', () => {
  it('applies just before the deploy only', () => {
    expect(gate.appliesTo(production, 'predeploy')).toBe(true);
    expect(gate.appliesTo(production, 'preflight')).toBe(false);
    expect(gate.appliesTo(production, 'verification')).toBe(false);
    expect(gate.appliesTo(production, 'rollback')).toBe(false);
  });

  it("completes a healthy migration run with the release's image and argv", async () => {
    const promotionId = '1a2b3c4d-0000-4000-8000-000000000001';
    const result = await gate.run(
      context(promotionId, 'registry.local/payments-api:1.1.0'),
      'predeploy',
    );
    expect(result).toMatchObject({
      gate: 'job',
      phase: 'predeploy',
      status: 'passed',
    });
    expect(result.reason).toMatch(
      /^migration job progression-migrate-1a2b3c4d completed in [\d.]+ m?s$/,
    );
    const [evidence] = (result.evidence as { jobs: JobEvidence[] }).jobs;
    expect(evidence).toMatchObject({
      role: 'migration',
      name: 'progression-migrate-1a2b3c4d',
      namespace: 'production',
      image: 'registry.local/payments-api:1.1.0',
      command: ['./migrate', 'up'],
      args: ['--verbose'],
      envNames: ['ENVIRONMENT', 'DB_PASSWORD', 'MIGRATION_LOCK_TIMEOUT'],
      reused: false,
      status: 'complete',
      exitCode: 0,
    });
    expect(evidence.conditions).toContainEqual(
      expect.objectContaining({
        type: 'Complete',
        status: 'True',
        reason: 'CompletionsReached',
      }),
    );
    expect(evidence.durationMs).toBeGreaterThanOrEqual(0);
    expect(evidence.logTail).toContain(
      'starting registry.local/payments-api:1.1.0 command=["./migrate","up"] args=["--verbose"]',
    );
    expect(evidence.logTail).toContain('completed successfully');

    // The Job as created: shell-free argv, labels, the stage's env by reference.
    const [job] = jobsOf(promotionId);
    expect(job.metadata.labels).toMatchObject({
      'backstage.io/kubernetes-id': 'payments-api',
      'progression.backstage.io/promotion-id': promotionId,
      'progression.backstage.io/job': 'migration',
    });
    const container = job.spec.template.spec.containers[0];
    expect(container.command).toEqual(['./migrate', 'up']);
    expect(container.args).toEqual(['--verbose']);
    expect(container.env).toEqual([
      { name: 'ENVIRONMENT', value: 'prod' },
      {
        name: 'DB_PASSWORD',
        valueFrom: {
          secretKeyRef: {
            name: 'payments-api-db-credentials',
            key: 'password',
          },
        },
      },
      { name: 'MIGRATION_LOCK_TIMEOUT', value: '5s' },
    ]);
    expect(job.spec.backoffLimit).toBe(0);
    expect(job.spec.template.spec.restartPolicy).toBe('Never');
    // Its pods are not the Deployment's.
    expect(job.spec.template.metadata.labels.app).toBeUndefined();
  });

  it('stops a failing-migration image with failed and the log tail, leaving the Deployment untouched', async () => {
    const before = deploymentNow();
    const promotionId = '9f8e7d6c-0000-4000-8000-000000000002';
    const result = await gate.run(
      context(
        promotionId,
        'registry.local/payments-api:1.2.0-failing-migration',
      ),
      'predeploy',
    );
    expect(result.status).toBe('failed');
    expect(result.reason).toBe(
      'migration job progression-migrate-9f8e7d6c failed: BackoffLimitExceeded (exit 1)',
    );
    const [evidence] = (result.evidence as { jobs: JobEvidence[] }).jobs;
    expect(evidence).toMatchObject({
      name: 'progression-migrate-9f8e7d6c',
      image: 'registry.local/payments-api:1.2.0-failing-migration',
      status: 'failed',
      exitCode: 1,
    });
    expect(evidence.conditions).toContainEqual(
      expect.objectContaining({
        type: 'Failed',
        reason: 'BackoffLimitExceeded',
      }),
    );
    expect(evidence.logTail).toContain('ERROR: migration failed');
    expect(Buffer.byteLength(evidence.logTail!)).toBeLessThanOrEqual(4096);
    expect(deploymentNow()).toEqual(before);
    expect(jobsOf(promotionId)).toHaveLength(1);
  });

  it('reuses the Job of an earlier run of the same promotion instead of creating another', async () => {
    const promotionId = '5e5e5e5e-0000-4000-8000-000000000003';
    const ctx = context(promotionId, 'registry.local/payments-api:1.3.0');
    // The first run is still waiting when the second (after a "crash") starts.
    const first = gate.run(ctx, 'predeploy');
    for (let i = 0; i < 100 && jobsOf(promotionId).length === 0; i++) {
      await new Promise(r => setTimeout(r, 10));
    }
    expect(jobsOf(promotionId)).toHaveLength(1);
    const second = await gate.run(ctx, 'predeploy');
    const firstResult = await first;
    expect(firstResult.status).toBe('passed');
    expect(second.status).toBe('passed');
    const jobs = (r: typeof second) =>
      (r.evidence as { jobs: JobEvidence[] }).jobs;
    expect(jobs(firstResult)[0].reused).toBe(false);
    expect(jobs(second)[0].reused).toBe(true);
    expect(jobs(second)[0].name).toBe('progression-migrate-5e5e5e5e');

    // And a third run after it finished answers from the finished Job.
    const third = await gate.run(ctx, 'predeploy');
    expect(third.status).toBe('passed');
    expect(jobs(third)[0]).toMatchObject({ reused: true, status: 'complete' });
    expect(jobs(third)[0].logTail).toContain('completed successfully');
    expect(jobsOf(promotionId)).toHaveLength(1);
  });

  it('refuses a Job of the same name that belongs to another promotion', async () => {
    await gate.run(
      context(
        'abcdef12-0000-4000-8000-00000000000a',
        'registry.local/payments-api:1.4.0',
      ),
      'predeploy',
    );
    const result = await gate.run(
      context(
        'abcdef12-0000-4000-8000-00000000000b',
        'registry.local/payments-api:1.4.0',
      ),
      'predeploy',
    );
    expect(result.status).toBe('error');
    expect(result.reason).toBe(
      "migration job progression-migrate-abcdef12: a Job named progression-migrate-abcdef12 already exists in namespace production for promotion abcdef12-0000-4000-8000-00000000000a; delete it to run this promotion's job",
    );
  });

  it("does not start a second migration while another promotion's still runs", async () => {
    const first = 'e1e1e1e1-0000-4000-8000-00000000000c';
    const second = 'e2e2e2e2-0000-4000-8000-00000000000d';
    // The first promotion's migration, suspended so that it stays running
    // for as long as the test needs.
    const labels = {
      'app.kubernetes.io/managed-by': 'backstage-progression',
      'backstage.io/kubernetes-id': 'payments-api',
      'progression.backstage.io/promotion-id': first,
      'progression.backstage.io/job': 'migration',
    };
    const running = {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: {
        name: jobName('migration', first),
        namespace: 'production',
        labels,
      },
      spec: {
        suspend: true,
        backoffLimit: 0,
        template: {
          metadata: { labels },
          spec: {
            restartPolicy: 'Never',
            containers: [
              {
                name: 'migration',
                image: 'registry.local/payments-api:2.0.0',
                command: ['./migrate', 'up'],
              },
            ],
          },
        },
      },
    };
    sim.apply(running);
    const ctx = context(second, 'registry.local/payments-api:2.1.0', {
      backup: {
        image: 'registry.local/pg-backup:16',
        command: ['pg_dump'],
        timeoutMs: 30_000,
        backoffLimit: 0,
        env: {},
      },
    });
    const refused = await gate.run(ctx, 'predeploy');
    expect(refused).toMatchObject({
      status: 'error',
      reason: `migration Job progression-migrate-e1e1e1e1 of promotion ${first} is still running in namespace production; this promotion does not start a second one — promote again when it has ended`,
    });
    // Not even the backup ran.
    expect(jobsOf(second)).toEqual([]);

    // Once the first one has ended, the second promotion runs its own.
    sim.apply({
      ...sim.store.get('jobs', 'production', running.metadata.name)!,
      spec: {
        ...sim.store.get('jobs', 'production', running.metadata.name)!.spec,
        suspend: false,
      },
    });
    for (let i = 0; i < 400; i++) {
      const job = sim.store.get('jobs', 'production', running.metadata.name)!;
      if (job.status?.conditions?.some((c: any) => c.type === 'Complete'))
        break;
      await new Promise(r => setTimeout(r, 25));
    }
    const passed = await gate.run(ctx, 'predeploy');
    expect(passed.status).toBe('passed');
    expect(
      jobsOf(second)
        .map(j => j.metadata.name)
        .sort(),
    ).toEqual(['progression-backup-e2e2e2e2', 'progression-migrate-e2e2e2e2']);
  });

  it("runs no job with the environment of another entity's Deployment", async () => {
    const current = sim.store.get('deployments', 'production', 'payments-api')!;
    sim.apply({
      ...current,
      metadata: {
        ...current.metadata,
        annotations: {
          ...current.metadata.annotations,
          'progression.backstage.io/entity-ref':
            'component:default/payments-api',
        },
      },
    });
    try {
      // evil-api's owners pointed its backstage.io/kubernetes-id at payments-api.
      const promotionId = 'eeee0001-0000-4000-8000-00000000000e';
      const ctx = context(promotionId, 'registry.local/evil-api:1.0.0');
      const result = await gate.run(
        {
          ...ctx,
          entity: {
            entityRef: 'component:default/evil-api',
            name: 'evil-api',
            namespace: 'default',
            kubernetesId: 'payments-api',
          },
        },
        'predeploy',
      );
      expect(result).toMatchObject({
        status: 'failed',
        reason:
          'Deployment payments-api in namespace production belongs to component:default/payments-api (annotation progression.backstage.io/entity-ref); component:default/evil-api may not deploy to it — give evil-api a backstage.io/kubernetes-id of its own; no job ran with its environment',
      });
      expect(jobsOf(promotionId)).toEqual([]);

      // The entity it belongs to inherits from it as before.
      const own = 'eeee0002-0000-4000-8000-00000000000f';
      expect(
        (
          await gate.run(
            context(own, 'registry.local/payments-api:2.2.0'),
            'predeploy',
          )
        ).status,
      ).toBe('passed');
    } finally {
      const now = sim.store.get('deployments', 'production', 'payments-api')!;
      const annotations = { ...now.metadata.annotations };
      delete annotations['progression.backstage.io/entity-ref'];
      sim.apply({ ...now, metadata: { ...now.metadata, annotations } });
    }
  });

  it('runs the backup first, and not the migration when the backup fails', async () => {
    const ok = '0b0b0b0b-0000-4000-8000-000000000004';
    const passed = await gate.run(
      context(ok, 'registry.local/payments-api:1.5.0', {
        backup: {
          image: 'registry.local/pg-backup:16',
          command: ['pg_dump', '--file=/backup/before.sql'],
          timeoutMs: 30_000,
          backoffLimit: 0,
          env: {},
        },
      }),
      'predeploy',
    );
    expect(passed.status).toBe('passed');
    expect(passed.reason).toMatch(
      /^backup job progression-backup-0b0b0b0b completed in [\d.]+ m?s; migration job progression-migrate-0b0b0b0b completed in [\d.]+ m?s$/,
    );
    expect(
      (passed.evidence as { jobs: JobEvidence[] }).jobs.map(j => [
        j.role,
        j.image,
      ]),
    ).toEqual([
      ['backup', 'registry.local/pg-backup:16'],
      ['migration', 'registry.local/payments-api:1.5.0'],
    ]);

    const bad = '0c0c0c0c-0000-4000-8000-000000000005';
    const failed = await gate.run(
      context(bad, 'registry.local/payments-api:1.5.0', {
        backup: {
          image: 'registry.local/pg-backup:16-fail',
          command: ['pg_dump'],
          timeoutMs: 30_000,
          backoffLimit: 0,
          env: {},
        },
      }),
      'predeploy',
    );
    expect(failed.status).toBe('failed');
    expect(failed.reason).toBe(
      'backup job progression-backup-0c0c0c0c failed: BackoffLimitExceeded (exit 1); the migration did not run',
    );
    expect(jobsOf(bad).map(j => j.metadata.name)).toEqual([
      'progression-backup-0c0c0c0c',
    ]);
  });

  it('fails a migration that does not finish within its timeout', async () => {
    const promotionId = '7a7a7a7a-0000-4000-8000-000000000006';
    const result = await gate.run(
      context(promotionId, 'registry.local/payments-api:1.6.0', {
        migration: { ...production.gates.job!.migration, timeoutMs: 20 },
      }),
      'predeploy',
    );
    expect(result.status).toBe('failed');
    expect(result.reason).toBe(
      'migration job progression-migrate-7a7a7a7a did not finish within 20 ms',
    );
    expect((result.evidence as { jobs: JobEvidence[] }).jobs[0].status).toBe(
      'timeout',
    );
    expect(jobsOf(promotionId)[0].spec.activeDeadlineSeconds).toBe(1);
  });

  it('is an error when the cluster cannot be reached', async () => {
    const ctx = context(
      '3c3c3c3c-0000-4000-8000-000000000007',
      'registry.local/payments-api:1.7.0',
    );
    const result = await gate.run(
      {
        ...ctx,
        location: {
          cluster: {
            ...location.cluster,
            name: 'gone',
            url: 'http://127.0.0.1:9',
          },
          namespace: 'production',
        },
      },
      'predeploy',
    );
    expect(result.status).toBe('error');
    expect(result.reason).toMatch(
      /^cannot read the stage Deployment for the job's environment: /,
    );
    const noInherit = await gate.run(
      {
        ...context('3c3c3c3c-0000-4000-8000-000000000007', 'x:1', {
          inheritFromDeployment: false,
        }),
        location: {
          cluster: {
            ...location.cluster,
            name: 'gone',
            url: 'http://127.0.0.1:9',
          },
          namespace: 'production',
        },
      },
      'predeploy',
    );
    expect(noInherit.status).toBe('error');
    expect(noInherit.reason).toMatch(
      /^cannot tell whether another promotion's migration Job is running: /,
    );
  });

  it('is an error without a promotion id or release', async () => {
    const ctx = context('x', 'registry.local/payments-api:1.0.0');
    const result = await gate.run(
      { ...ctx, promotionId: undefined, release: undefined },
      'predeploy',
    );
    expect(result).toMatchObject({
      status: 'error',
      reason: 'cannot run the migration job without release, promotion id',
    });
  });
});

describe('jobName', () => {
  it('is deterministic from the first 8 characters of the promotion id', () => {
    expect(jobName('migration', '1A2B3C4D-5e6f-0000-0000-000000000000')).toBe(
      'progression-migrate-1a2b3c4d',
    );
    expect(jobName('backup', '1a2b3c4d-5e6f')).toBe(
      'progression-backup-1a2b3c4d',
    );
  });
});

describe('tailOf', () => {
  it('keeps the last lines, at most the byte limit, without a cut line', () => {
    const text = Array.from({ length: 100 }, (_, i) => `line ${i}`).join('\n');
    expect(tailOf(`${text}\n`, 3, 4096)).toBe('line 97\nline 98\nline 99');
    expect(tailOf(text, 50, 20)).toBe('line 98\nline 99');
  });
});

describe('readJobGateConfig', () => {
  const stage = (job: unknown) => new ConfigReader({ gates: { job } } as any);
  const key = (job: unknown) =>
    errorOf(() => readJobGateConfig(stage(job), 's')).key;

  it('reads the migration with its defaults, and the backup', () => {
    expect(readJobGateConfig(new ConfigReader({}), 's')).toBeUndefined();
    expect(
      readJobGateConfig(stage({ migration: { command: ['./migrate'] } }), 's'),
    ).toEqual({
      migration: {
        command: ['./migrate'],
        args: undefined,
        image: undefined,
        timeoutMs: 600_000,
        backoffLimit: 0,
        env: {},
      },
      backup: undefined,
      inheritFromDeployment: true,
    });
    expect(
      readJobGateConfig(
        stage({
          migration: {
            command: ['./migrate'],
            args: ['up'],
            timeout: { minutes: 2 },
            backoffLimit: 2,
            env: { PORT: 5432, DRY_RUN: false },
          },
          backup: {
            image: 'registry.local/pg-backup:16',
            command: ['pg_dump'],
            timeout: '5m',
          },
          inheritFromDeployment: false,
        }),
        's',
      ),
    ).toEqual({
      migration: {
        command: ['./migrate'],
        args: ['up'],
        image: undefined,
        timeoutMs: 120_000,
        backoffLimit: 2,
        env: { PORT: '5432', DRY_RUN: 'false' },
      },
      backup: {
        image: 'registry.local/pg-backup:16',
        command: ['pg_dump'],
        args: undefined,
        timeoutMs: 300_000,
        backoffLimit: 0,
        env: {},
      },
      inheritFromDeployment: false,
    });
  });

  it('names the bad key', () => {
    expect(key(true)).toBe('s.gates.job');
    expect(key({})).toBe('s.gates.job.migration');
    expect(key({ migration: {} })).toBe('s.gates.job.migration.command');
    expect(key({ migration: { command: './migrate up' } })).toBe(
      's.gates.job.migration.command',
    );
    expect(key({ migration: { command: [] } })).toBe(
      's.gates.job.migration.command',
    );
    expect(key({ migration: { command: ['./m'], args: 'up' } })).toBe(
      's.gates.job.migration.args',
    );
    expect(key({ migration: { command: ['./m'], timeout: 'soon' } })).toBe(
      's.gates.job.migration.timeout',
    );
    expect(key({ migration: { command: ['./m'], backoffLimit: -1 } })).toBe(
      's.gates.job.migration.backoffLimit',
    );
    expect(
      key({ migration: { command: ['./m'], env: { 'BAD NAME': 'x' } } }),
    ).toBe('s.gates.job.migration.env.BAD NAME');
    expect(key({ migration: { command: ['./m'], image: 'other:1' } })).toBe(
      's.gates.job.migration.image',
    );
    expect(
      key({
        migration: { command: ['./m'] },
        backup: { command: ['b'], image: 'a b' },
      }),
    ).toBe('s.gates.job.backup.image');
    expect(key({ migration: { command: ['./m'] }, cleanup: {} })).toBe(
      's.gates.job.cleanup',
    );
    expect(
      errorOf(() =>
        readJobGateConfig(
          stage({ migration: { command: './migrate up' } }),
          's',
        ),
      ).message,
    ).toBe(
      "Invalid Progression configuration at 's.gates.job.migration.command': must be a non-empty list of strings (each one argument; no shell runs them)",
    );
  });

  it('refuses a bad value at start-up through readProgressionConfig', () => {
    const error = errorOf(() =>
      read({
        clusters: [{ name: 'c', url: 'http://127.0.0.1:1' }],
        pipelines: {
          p: {
            stages: [
              {
                name: 'prod',
                cluster: 'c',
                namespace: 'prod',
                gates: { job: { migration: { args: ['up'] } } },
              },
            ],
          },
        },
      }),
    );
    expect(error.key).toBe(
      'progression.pipelines.p.stages[0].gates.job.migration.command',
    );
  });
});
