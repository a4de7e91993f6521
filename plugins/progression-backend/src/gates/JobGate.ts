import { Config } from '@backstage/config';
import { GateResult } from '@progression-io/backstage-plugin-progression-common';
import { V1Container, V1Deployment } from '@kubernetes/client-node';
import {
  ProgressionConfigError,
  StageConfig,
  readDurationMs,
} from '@progression-io/backstage-plugin-progression-node';
import {
  StageResources,
  describeKubeError,
  isLabelValue,
  jobState,
} from '../kubernetes/StageResources';
import {
  ENTITY_REF_ANNOTATION,
  bindingRefusal,
} from '../kubernetes/entityBinding';
import { JOB_PROMOTION_LABEL } from '../kubernetes/runStageJob';
import { Gate, GateContext, GatePhase, startGateResult } from './Gate';
import type {
  JobEvidence,
  JobRole,
} from '@progression-io/backstage-plugin-progression-common';

export type { JobEvidence, JobRole };

/** One Job of `gates.job`: the migration, or the backup before it. */
export interface JobStepConfig {
  /** The image; the release's image when absent. */
  image?: string;
  command: string[];
  args?: string[];
  timeoutMs: number;
  backoffLimit: number;
  env: Record<string, string>;
}

/** The `gates.job` section of a stage. */
export interface JobGateConfig {
  migration: JobStepConfig;
  /** Runs first; the migration runs only when it completed. */
  backup?: JobStepConfig;
  /**
   * Give the Jobs the env, envFrom, serviceAccountName and imagePullSecrets
   * of the stage Deployment's release container (references, as written in
   * the Deployment; no values are read).
   */
  inheritFromDeployment: boolean;
}

const ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;
const STEP_KEYS = [
  'image',
  'command',
  'args',
  'timeout',
  'backoffLimit',
  'env',
];
const JOB_KEYS = ['migration', 'backup', 'inheritFromDeployment'];

function checkKeys(config: Config, allowed: string[], path: string) {
  for (const key of config.keys()) {
    if (!allowed.includes(key)) {
      throw new ProgressionConfigError(
        `${path}.${key}`,
        `unknown key; use ${allowed.join(', ')}`,
      );
    }
  }
}

function readArgv(
  config: Config,
  key: string,
  path: string,
  required: boolean,
): string[] | undefined {
  if (!config.has(key)) {
    if (required) {
      throw new ProgressionConfigError(
        `${path}.${key}`,
        'required: the argv to run, as a list of strings (no shell), for example [./migrate, up]',
      );
    }
    return undefined;
  }
  const value = config.getOptional(key);
  if (
    !Array.isArray(value) ||
    !value.every(v => typeof v === 'string') ||
    (required && value.length === 0)
  ) {
    throw new ProgressionConfigError(
      `${path}.${key}`,
      `must be a ${
        required ? 'non-empty ' : ''
      }list of strings (each one argument; no shell runs them)`,
    );
  }
  if (required && !value[0]) {
    throw new ProgressionConfigError(
      `${path}.${key}[0]`,
      'the program to run must not be empty',
    );
  }
  return value as string[];
}

function readStep(
  config: Config,
  path: string,
  options: { imageAllowed: boolean },
): JobStepConfig {
  checkKeys(
    config,
    options.imageAllowed ? STEP_KEYS : STEP_KEYS.filter(k => k !== 'image'),
    path,
  );
  let image: string | undefined;
  if (options.imageAllowed && config.has('image')) {
    const value = config.getOptional('image');
    if (typeof value !== 'string' || !value || /\s/.test(value)) {
      throw new ProgressionConfigError(
        `${path}.image`,
        'must be an image reference such as registry.local/pg-backup:16',
      );
    }
    image = value;
  }
  const timeoutMs = readDurationMs(config, 'timeout', path) ?? 10 * 60_000;
  if (timeoutMs <= 0) {
    throw new ProgressionConfigError(`${path}.timeout`, 'must be positive');
  }
  const backoffLimit = config.has('backoffLimit')
    ? config.getOptional('backoffLimit')
    : 0;
  if (
    typeof backoffLimit !== 'number' ||
    !Number.isInteger(backoffLimit) ||
    backoffLimit < 0 ||
    backoffLimit > 10
  ) {
    throw new ProgressionConfigError(
      `${path}.backoffLimit`,
      'must be a whole number from 0 to 10 (retries after a failed pod)',
    );
  }
  const env: Record<string, string> = {};
  if (config.has('env')) {
    const raw = config.getOptional('env');
    if (!raw || typeof raw !== 'object' || Array.isArray(raw)) {
      throw new ProgressionConfigError(
        `${path}.env`,
        'must be a map of variable names to values',
      );
    }
    for (const [name, value] of Object.entries(raw)) {
      if (!ENV_NAME.test(name)) {
        throw new ProgressionConfigError(
          `${path}.env.${name}`,
          `'${name}' is not a valid environment variable name`,
        );
      }
      if (!['string', 'number', 'boolean'].includes(typeof value)) {
        throw new ProgressionConfigError(
          `${path}.env.${name}`,
          'must be a string, number or boolean',
        );
      }
      env[name] = String(value);
    }
  }
  return {
    image,
    command: readArgv(config, 'command', path, true)!,
    args: readArgv(config, 'args', path, false),
    timeoutMs,
    backoffLimit,
    env,
  };
}

/**
 * Reads and validates a stage's `gates.job`, or undefined when the
 * stage has none. Throws ProgressionConfigError naming the bad key.
 */
declare module '@progression-io/backstage-plugin-progression-node' {
  interface StageGateConfigs {
    job?: JobGateConfig;
  }
}

export function readJobGateConfig(
  stage: Config,
  path: string,
): JobGateConfig | undefined {
  if (!stage.has('gates.job')) return undefined;
  const at = `${path}.gates.job`;
  const raw = stage.getOptional('gates.job');
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ProgressionConfigError(
      at,
      'must be an object with a migration: { command: [...] }',
    );
  }
  const job = stage.getConfig('gates.job');
  checkKeys(job, JOB_KEYS, at);
  if (!job.has('migration')) {
    throw new ProgressionConfigError(
      `${at}.migration`,
      'required: the migration Job to run before the deploy, { command: [...] }',
    );
  }
  const section = (key: string) => {
    const value = job.getOptional(key);
    if (!value || typeof value !== 'object' || Array.isArray(value)) {
      throw new ProgressionConfigError(
        `${at}.${key}`,
        'must be an object with a command',
      );
    }
    return job.getConfig(key);
  };
  const inherit = job.getOptional('inheritFromDeployment');
  if (inherit !== undefined && typeof inherit !== 'boolean') {
    throw new ProgressionConfigError(
      `${at}.inheritFromDeployment`,
      'must be true or false',
    );
  }
  return {
    migration: readStep(section('migration'), `${at}.migration`, {
      imageAllowed: false,
    }),
    backup: job.has('backup')
      ? readStep(section('backup'), `${at}.backup`, { imageAllowed: true })
      : undefined,
    inheritFromDeployment: inherit ?? true,
  };
}

export { JOB_PROMOTION_LABEL };
export const JOB_ROLE_LABEL = 'progression.backstage.io/job';

/** A Job's deterministic name: `progression-<migrate|backup>-<first 8 of the promotion id>`. */
export function jobName(role: JobRole, promotionId: string): string {
  const suffix = promotionId
    .toLowerCase()
    .replace(/[^a-z0-9]/g, '')
    .slice(0, 8);
  const name = `progression-${role === 'migration' ? 'migrate' : role}-${
    suffix || 'x'
  }`;
  return name;
}

function seconds(ms: number) {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return ms >= 60_000 && ms % 60_000 === 0
    ? `${ms / 60_000} min`
    : `${Math.round(ms / 100) / 10} s`;
}

/**
 * Runs a stage's migration (and the backup before it, when configured) as
 * Kubernetes Jobs in the stage namespace, just before the deploy, with the
 * release's image and the configured argv. The Job names come from the
 * promotion id, so a run after a crash finds and waits for the Job the
 * first run created instead of starting another.
 */
export class JobGate extends Gate<JobGateConfig> {
  readonly name = 'job';

  /** A Job that ran is not run again after a restart. */
  readonly once = true;
  readonly phases = ['predeploy'] as const;

  readConfig(
    stage: Config,
    { path }: { path: string; policy: Omit<StageConfig, 'gates'> },
  ): JobGateConfig | undefined {
    return readJobGateConfig(stage, path);
  }

  async run(context: GateContext, phase: GatePhase): Promise<GateResult> {
    const result = startGateResult(this.name, phase);
    const config = context.stage.gates.job;
    if (!config) {
      return result('skipped', 'the stage has no gates.job', { jobs: [] });
    }
    const { location, workloads, release, promotionId, entity } = context;
    if (!location || !workloads || !release || !promotionId || !entity) {
      const missing = [
        !location && 'location',
        !workloads && 'cluster access',
        !release && 'release',
        !promotionId && 'promotion id',
        !entity && 'entity',
      ].filter(Boolean);
      return result(
        'error',
        `cannot run the migration job without ${missing.join(', ')}`,
        { jobs: [] },
      );
    }
    if (!isLabelValue(promotionId) || !isLabelValue(entity.kubernetesId)) {
      return result(
        'error',
        `cannot label the job: '${
          isLabelValue(promotionId) ? entity.kubernetesId : promotionId
        }' is not a valid label value`,
        { jobs: [] },
      );
    }
    const resources = new StageResources(workloads);
    const jobs: JobEvidence[] = [];
    const evidence = { namespace: location.namespace, jobs };

    let inherited: Partial<V1Container> & {
      serviceAccountName?: string;
      imagePullSecrets?: { name: string }[];
    } = {};
    try {
      if (config.inheritFromDeployment) {
        const deployment = await resources.findDeployment(
          location,
          entity.kubernetesId,
        );
        // Its env and service account are another service's credentials.
        const refusal =
          deployment &&
          bindingRefusal(
            {
              name: deployment.metadata?.name ?? entity.kubernetesId,
              namespace: location.namespace,
              entityRef:
                deployment.metadata?.annotations?.[ENTITY_REF_ANNOTATION],
            },
            entity,
          );
        if (refusal) {
          return result(
            'failed',
            `${refusal}; no job ran with its environment`,
            evidence,
          );
        }
        if (deployment) {
          inherited = inheritFrom(
            deployment,
            workloads.containerOf(
              deployment,
              entity.kubernetesId,
              entity.container,
            ),
          );
        }
      }
    } catch (e) {
      return result(
        'error',
        `cannot read the stage Deployment for the job's environment: ${describeKubeError(
          e,
        )}`,
        evidence,
      );
    }

    // Two migrations of one database at once are not safe: while another
    // promotion's migration still runs (the entity was promoted again),
    // this one starts nothing.
    try {
      const running = (
        await resources.listJobs(location, {
          [JOB_ROLE_LABEL]: 'migration',
          'backstage.io/kubernetes-id': entity.kubernetesId,
        })
      ).find(
        j =>
          j.metadata?.labels?.[JOB_PROMOTION_LABEL] !== promotionId &&
          jobState(j) === 'running',
      );
      if (running) {
        const other = running.metadata?.labels?.[JOB_PROMOTION_LABEL];
        return result(
          'error',
          `migration Job ${running.metadata?.name} of ${
            other ? `promotion ${other}` : 'another run'
          } is still running in namespace ${
            location.namespace
          }; this promotion does not start a second one — promote again when it has ended`,
          evidence,
        );
      }
    } catch (e) {
      return result(
        'error',
        `cannot tell whether another promotion's migration Job is running: ${describeKubeError(
          e,
        )}`,
        evidence,
      );
    }

    const steps: [JobRole, JobStepConfig][] = [];
    if (config.backup) steps.push(['backup', config.backup]);
    steps.push(['migration', config.migration]);
    for (const [role, step] of steps) {
      const outcome: JobEvidence = {
        role,
        ...(await workloads.runJob(
          location,
          {
            name: jobName(role, promotionId),
            promotionId,
            kubernetesId: entity.kubernetesId,
            container: role,
            image: step.image ?? release.image,
            command: step.command,
            ...(step.args && { args: step.args }),
            env: step.env,
            labels: { [JOB_ROLE_LABEL]: role },
            timeoutMs: step.timeoutMs,
            backoffLimit: step.backoffLimit,
            inherited,
          },
          context.signal,
        )),
      };
      jobs.push(outcome);
      if (outcome.status === 'complete') continue;
      const name = `${role} job ${outcome.name}`;
      switch (outcome.status) {
        case 'failed': {
          const reason =
            outcome.conditions.find(c => c.type === 'Failed')?.reason ??
            'Failed';
          const exit =
            outcome.exitCode !== undefined ? ` (exit ${outcome.exitCode})` : '';
          return result(
            'failed',
            `${name} failed: ${reason}${exit}${
              role === 'backup' ? '; the migration did not run' : ''
            }`,
            evidence,
          );
        }
        case 'timeout':
          return result(
            'failed',
            `${name} did not finish within ${seconds(step.timeoutMs)}`,
            evidence,
          );
        case 'cancelled':
          return result('error', `cancelled while ${name} ran`, evidence);
        default:
          return result('error', `${name}: ${outcome.error}`, evidence);
      }
    }
    return result(
      'passed',
      jobs
        .map(
          j =>
            `${j.role} job ${j.name} completed${
              j.durationMs !== undefined ? ` in ${seconds(j.durationMs)}` : ''
            }`,
        )
        .join('; '),
      evidence,
    );
  }
}

/** The parts of the stage Deployment's release container a Job inherits. */
function inheritFrom(d: V1Deployment, container: string) {
  const spec = d.spec?.template.spec;
  const c = spec?.containers.find(x => x.name === container);
  return {
    env: c?.env,
    envFrom: c?.envFrom,
    serviceAccountName: spec?.serviceAccountName,
    imagePullSecrets: spec?.imagePullSecrets?.filter(
      (s): s is { name: string } => Boolean(s.name),
    ),
  };
}
