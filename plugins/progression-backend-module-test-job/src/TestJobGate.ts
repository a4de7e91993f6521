import { Config } from '@backstage/config';
import { GateResult } from '@progression-io/backstage-plugin-progression-common';
import {
  GateContext,
  GateDefinition,
  GatePhase,
  ProgressionConfigError,
  StageConfig,
  StageJobRun,
  readDurationMs,
  startGateResult,
} from '@progression-io/backstage-plugin-progression-node';

/** A stage's `gates.testJob`: the test image to run after the deploy. */
export interface TestJobGateConfig {
  image: string;
  /** argv, run without a shell. */
  command: string[];
  args?: string[];
  /** Values may hold `{{ stageUrl }}`, filled in when the Job starts. */
  env: Record<string, string>;
  timeoutMs: number;
  backoffLimit: number;
}

declare module '@progression-io/backstage-plugin-progression-node' {
  interface StageGateConfigs {
    testJob?: TestJobGateConfig;
  }
}

/** What the test job gate recorded: how its Job ended, with the log tail. */
export interface TestJobEvidence {
  /** Absent when the Job could not be started at all. */
  job?: StageJobRun;
}

/** The label that says what a Progression Job is for; this gate's is `test`. */
export const JOB_ROLE_LABEL = 'progression.backstage.io/job';

const KEYS = [
  'image',
  'command',
  'args',
  'env',
  'timeout',
  'backoffLimit',
  'phase',
];
const DEFAULT_TIMEOUT_MS = 10 * 60_000;
const MAX_TIMEOUT_MS = 60 * 60_000;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const STAGE_URL = /\{\{\s*stageUrl\s*\}\}/g;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Whether a string still holds template syntax once `{{ stageUrl }}` is out. */
function hasOtherTemplating(value: string): boolean {
  const rest = value.replace(STAGE_URL, '');
  return rest.includes('{{') || rest.includes('}}');
}

function readArgv(
  section: Config,
  key: 'command' | 'args',
  at: string,
): string[] | undefined {
  if (!section.has(key)) {
    if (key === 'args') return undefined;
    throw new ProgressionConfigError(
      `${at}.command`,
      'required: the argv to run, as a list of strings (no shell), for example [k6, run, /scripts/smoke.js]',
    );
  }
  const value = section.getOptional(key);
  if (
    !Array.isArray(value) ||
    !value.every(v => typeof v === 'string') ||
    (key === 'command' && value.length === 0)
  ) {
    throw new ProgressionConfigError(
      `${at}.${key}`,
      `must be a ${
        key === 'command' ? 'non-empty ' : ''
      }list of strings (each one argument; no shell runs them)`,
    );
  }
  const argv = value as string[];
  if (key === 'command' && !argv[0]) {
    throw new ProgressionConfigError(
      `${at}.command[0]`,
      'the program to run must not be empty',
    );
  }
  argv.forEach((arg, i) => {
    if (arg.includes('{{') || arg.includes('}}')) {
      throw new ProgressionConfigError(
        `${at}.${key}[${i}]`,
        'placeholders work only in env values; pass the stage URL as env, for example BASE_URL: "{{ stageUrl }}"',
      );
    }
  });
  return argv;
}

function readEnv(
  section: Config,
  at: string,
  policy: Omit<StageConfig, 'gates'>,
): Record<string, string> {
  if (!section.has('env')) return {};
  const raw = section.getOptional('env');
  if (!isObject(raw)) {
    throw new ProgressionConfigError(
      `${at}.env`,
      'must be a map of variable names to values',
    );
  }
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(raw)) {
    const key = `${at}.env.${name}`;
    if (!ENV_NAME.test(name)) {
      throw new ProgressionConfigError(
        key,
        `'${name}' is not a valid environment variable name (letters, digits and _, not starting with a digit)`,
      );
    }
    if (!['string', 'number', 'boolean'].includes(typeof value)) {
      throw new ProgressionConfigError(
        key,
        'must be a string, number or boolean',
      );
    }
    const text = String(value);
    if (hasOtherTemplating(text)) {
      throw new ProgressionConfigError(
        key,
        'the only placeholder is {{ stageUrl }}',
      );
    }
    if (text.search(STAGE_URL) >= 0 && policy.url === undefined) {
      throw new ProgressionConfigError(
        key,
        'uses {{ stageUrl }}, but the stage has no url',
      );
    }
    env[name] = text;
  }
  return env;
}

/**
 * Reads and validates a stage's `gates.testJob`; `path` is the stage's.
 * Undefined when the stage has none.
 */
function readTestJobGateConfig(
  stage: Config,
  path: string,
  policy: Omit<StageConfig, 'gates'>,
): TestJobGateConfig | undefined {
  if (!stage.has('gates.testJob')) return undefined;
  const at = `${path}.gates.testJob`;
  if (!isObject(stage.getOptional('gates.testJob'))) {
    throw new ProgressionConfigError(
      at,
      'must be an object with an image and a command',
    );
  }
  const section = stage.getConfig('gates.testJob');
  for (const key of section.keys()) {
    if (!KEYS.includes(key)) {
      throw new ProgressionConfigError(
        `${at}.${key}`,
        `unknown key; use ${KEYS.join(', ')}`,
      );
    }
  }
  const image = section.getOptional('image');
  if (typeof image !== 'string' || !image || /\s/.test(image)) {
    throw new ProgressionConfigError(
      `${at}.image`,
      image === undefined
        ? 'required: the test image, for example grafana/k6:0.52.0'
        : 'must be an image reference such as grafana/k6:0.52.0',
    );
  }
  const phase = section.getOptional('phase');
  if (phase !== undefined && phase !== 'verification') {
    throw new ProgressionConfigError(
      `${at}.phase`,
      'a test job runs after the deploy: the only phase is verification',
    );
  }
  const timeoutMs =
    readDurationMs(section, 'timeout', at) ?? DEFAULT_TIMEOUT_MS;
  if (timeoutMs <= 0 || timeoutMs > MAX_TIMEOUT_MS) {
    throw new ProgressionConfigError(
      `${at}.timeout`,
      'must be more than 0 and at most 1h',
    );
  }
  const backoffLimit = section.getOptional('backoffLimit') ?? 0;
  if (
    typeof backoffLimit !== 'number' ||
    !Number.isInteger(backoffLimit) ||
    backoffLimit < 0 ||
    backoffLimit > 10
  ) {
    throw new ProgressionConfigError(
      `${at}.backoffLimit`,
      'must be a whole number from 0 to 10 (retries after a failed pod)',
    );
  }
  const args = readArgv(section, 'args', at);
  return {
    image,
    command: readArgv(section, 'command', at)!,
    ...(args && { args }),
    env: readEnv(section, at, policy),
    timeoutMs,
    backoffLimit,
  };
}

/**
 * The test Job's name: the same on every run of one promotion, so that a
 * worker that restarts adopts the Job instead of starting a second one.
 */
export function testJobName(promotionId: string): string {
  const suffix = promotionId
    .toLowerCase()
    .replace(/[^a-z0-9]/g, '')
    .slice(0, 8);
  return `progression-test-${suffix || 'x'}`;
}

function duration(ms: number) {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return ms >= 60_000 && ms % 60_000 === 0
    ? `${ms / 60_000} min`
    : `${Math.round(ms / 100) / 10} s`;
}

// The timestamp a pod log line may start with (`kubectl logs --timestamps`).
const LOG_TIMESTAMP =
  /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)\s+/;

/** The log's last line, which is where test tools say why they failed. */
function lastLogLine(job: StageJobRun): string | undefined {
  const line = job.logTail
    ?.split('\n')
    .map(l => l.trim().replace(LOG_TIMESTAMP, ''))
    .filter(Boolean)
    .pop();
  return line && line.length > 200 ? `${line.slice(0, 197)}...` : line;
}

/**
 * Runs a test image (k6, newman, any container) as a Kubernetes Job in the
 * stage's namespace after the deploy. Its exit code decides: a complete
 * Job passes, a failed or timed-out one fails, and a Job that could not run
 * or was cancelled is `error`. The evidence is how the Job ended with its
 * log tail; env values are never recorded, only their names.
 */
export class TestJobGate implements GateDefinition<TestJobGateConfig> {
  readonly name = 'testJob';
  readonly phases = ['verification'] as const;
  /** A test that passed in a promotion is not run again after a restart. */
  readonly once = true;
  // It starts a Job: nothing the promote dialog may do to preview.
  readonly preview = false;

  readConfig(
    stage: Config,
    { path, policy }: { path: string; policy: Omit<StageConfig, 'gates'> },
  ): TestJobGateConfig | undefined {
    return readTestJobGateConfig(stage, path, policy);
  }

  async run(context: GateContext, phase: GatePhase): Promise<GateResult> {
    const result = startGateResult(this.name, phase);
    const evidence: TestJobEvidence = {};
    const config = context.stage.gates.testJob;
    if (!config) {
      return result('skipped', 'the stage has no gates.testJob', evidence);
    }
    const { location, workloads, promotionId, entity, stageUrl } = context;
    if (!location || !workloads || !promotionId || !entity) {
      const missing = [
        !location && 'location',
        !workloads && 'cluster access',
        !promotionId && 'promotion id',
        !entity && 'entity',
      ].filter(Boolean);
      return result(
        'error',
        `cannot run the test job without ${missing.join(', ')}`,
        evidence,
      );
    }
    const env: Record<string, string> = {};
    for (const [name, value] of Object.entries(config.env)) {
      if (value.search(STAGE_URL) >= 0 && !stageUrl) {
        return result(
          'error',
          `env ${name} uses {{ stageUrl }}, but the stage has no URL for ${entity.name}`,
          evidence,
        );
      }
      env[name] = value.replace(STAGE_URL, () => stageUrl!);
    }
    for (const value of [promotionId, entity.kubernetesId]) {
      if (value.length > 63 || !LABEL_VALUE.test(value)) {
        return result(
          'error',
          `cannot label the test job: '${value}' is not a valid label value`,
          evidence,
        );
      }
    }
    let job: StageJobRun;
    try {
      job = await workloads.runJob(
        location,
        {
          name: testJobName(promotionId),
          promotionId,
          kubernetesId: entity.kubernetesId,
          container: 'test',
          image: config.image,
          command: config.command,
          ...(config.args && { args: config.args }),
          env,
          labels: { [JOB_ROLE_LABEL]: 'test' },
          timeoutMs: config.timeoutMs,
          backoffLimit: config.backoffLimit,
          // A test nobody waits for any more stops with its promotion.
          deleteOnCancel: true,
        },
        context.signal,
      );
    } catch (e) {
      return result(
        'error',
        `cannot run the test job: ${(e as Error).message}`,
        evidence,
      );
    }
    evidence.job = job;
    const name = `test job ${job.name}`;
    switch (job.status) {
      case 'complete':
        return result(
          'passed',
          `${name} completed${
            job.durationMs !== undefined
              ? ` in ${duration(job.durationMs)}`
              : ''
          }`,
          evidence,
        );
      case 'failed': {
        const exit =
          job.exitCode !== undefined ? ` with exit code ${job.exitCode}` : '';
        const last = lastLogLine(job);
        return result(
          'failed',
          `${name} failed${exit}${last ? `: ${last}` : ''}`,
          evidence,
        );
      }
      case 'timeout':
        return result(
          'failed',
          `${name} did not finish within ${duration(config.timeoutMs)}`,
          evidence,
        );
      case 'cancelled':
        return result(
          'error',
          `interrupted: the promotion was cancelled or stopped while ${name} ran`,
          evidence,
        );
      default:
        return result(
          'error',
          `${name} could not run: ${job.error ?? 'unknown error'}`,
          evidence,
        );
    }
  }
}
