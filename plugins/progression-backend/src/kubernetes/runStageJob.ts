import { V1Job } from '@kubernetes/client-node';
import {
  StageJobRun,
  StageJobSpec,
  StageLocation,
  isPromotionMoved,
} from '@progression-io/backstage-plugin-progression-node';
import {
  StageResources,
  describeKubeError,
  isDnsLabel,
  jobState,
} from './StageResources';

/** The label naming the promotion a Job belongs to. */
export const JOB_PROMOTION_LABEL = 'progression.backstage.io/promotion-id';
const KUBERNETES_ID_LABEL = 'backstage.io/kubernetes-id';
const LOG_LINES = 50;
const LOG_BYTES = 4096;

class StageJobError extends Error {}

function elapsedSince(time: unknown): number | undefined {
  const t = Date.parse(String(time ?? ''));
  return Number.isFinite(t) ? Math.max(0, Date.now() - t) : undefined;
}

/**
 * Runs a Job in the stage namespace and waits for it: creates it, or after
 * a restart finds the one an earlier run of the same promotion created
 * (never a second one), then reports how it ended with its pod's exit
 * code and log tail. Env var values never reach the evidence.
 */
export async function runStageJob(
  resources: StageResources,
  location: StageLocation,
  spec: StageJobSpec,
  signal?: AbortSignal,
): Promise<StageJobRun> {
  const { name } = spec;
  const started = Date.now();
  const { serviceAccountName, imagePullSecrets, env, envFrom } =
    spec.inherited ?? {};
  const configured = Object.entries(spec.env ?? {}).map(([n, value]) => ({
    name: n,
    value,
  }));
  const mergedEnv = [
    ...(env ?? []).filter(e => !configured.some(c => c.name === e.name)),
    ...configured,
  ];
  const evidence: StageJobRun = {
    name,
    namespace: location.namespace,
    image: spec.image,
    ...(spec.command && { command: spec.command }),
    ...(spec.args && { args: spec.args }),
    envNames: mergedEnv.map(e => e.name),
    reused: false,
    status: 'error',
    conditions: [],
  };
  const labels = {
    'app.kubernetes.io/managed-by': 'backstage-progression',
    [KUBERNETES_ID_LABEL]: spec.kubernetesId,
    [JOB_PROMOTION_LABEL]: spec.promotionId,
    ...spec.labels,
  };
  const body: V1Job = {
    metadata: { name, labels },
    spec: {
      backoffLimit: spec.backoffLimit,
      activeDeadlineSeconds: Math.ceil(spec.timeoutMs / 1000),
      ttlSecondsAfterFinished: 7 * 24 * 3600,
      template: {
        metadata: {
          labels: { [JOB_PROMOTION_LABEL]: spec.promotionId, ...spec.labels },
        },
        spec: {
          restartPolicy: 'Never',
          ...(serviceAccountName && { serviceAccountName }),
          ...(imagePullSecrets?.length && { imagePullSecrets }),
          containers: [
            {
              name: spec.container,
              image: spec.image,
              // argv, as configured: no shell is involved.
              ...(spec.command && { command: spec.command }),
              ...(spec.args && { args: spec.args }),
              ...(mergedEnv.length && { env: mergedEnv as any }),
              ...(envFrom?.length && { envFrom: envFrom as any }),
            },
          ],
        },
      },
    },
  };
  try {
    if (!isDnsLabel(name)) {
      throw new StageJobError(`'${name}' is not a valid Job name`);
    }
    const { job, created } = await resources.createJob(location, body);
    evidence.reused = !created;
    const owner = job.metadata?.labels?.[JOB_PROMOTION_LABEL];
    if (!created && owner !== spec.promotionId) {
      throw new StageJobError(
        `a Job named ${name} already exists in namespace ${
          location.namespace
        } for ${
          owner ? `promotion ${owner}` : 'something else'
        }; delete it to run this promotion's job`,
      );
    }
    if (!created) {
      const existingImage = job.spec?.template.spec?.containers?.[0]?.image;
      if (existingImage) evidence.image = existingImage;
    }
    const remaining =
      spec.timeoutMs - (created ? 0 : elapsedSince(job.status?.startTime) ?? 0);
    const waited =
      jobState(job) !== 'running'
        ? { job, outcome: jobState(job) }
        : await resources.waitForJob(location, name, {
            timeoutMs: Math.max(0, remaining),
            signal,
          });
    const final = waited.job;
    evidence.status = waited.outcome === 'running' ? 'timeout' : waited.outcome;
    if (
      spec.deleteOnCancel &&
      waited.outcome === 'cancelled' &&
      isPromotionMoved(signal?.reason)
    ) {
      // The promotion was cancelled: its test Job stops too (a shutdown or
      // a lost claim leaves it running, for the next holder to adopt).
      try {
        await resources.deleteJob(location, name);
        evidence.deleted = true;
      } catch (e) {
        evidence.deleted = false;
        evidence.error = `the cancelled promotion's Job could not be deleted: ${describeKubeError(
          e,
        )}`;
      }
      return evidence;
    }
    evidence.conditions = (final.status?.conditions ?? []).map(c => ({
      type: c.type,
      status: c.status,
      ...(c.reason && { reason: c.reason }),
      ...(c.message && { message: c.message }),
    }));
    const start = Date.parse(String(final.status?.startTime ?? ''));
    const end = Date.parse(
      String(
        final.status?.completionTime ??
          final.status?.conditions?.find(
            c => c.type === 'Failed' && c.status === 'True',
          )?.lastTransitionTime ??
          '',
      ),
    );
    evidence.durationMs =
      Number.isFinite(start) && Number.isFinite(end)
        ? Math.max(0, end - start)
        : Date.now() - started;
    const pod = await resources.jobLastPod(location, final, {
      container: final.spec?.template.spec?.containers?.[0]?.name,
      lines: LOG_LINES,
      maxBytes: LOG_BYTES,
    });
    if (pod) {
      evidence.pod = pod.pod;
      if (pod.exitCode !== undefined) evidence.exitCode = pod.exitCode;
      evidence.logTail = pod.logTail;
      if (pod.logError) evidence.logError = pod.logError;
    }
  } catch (e) {
    evidence.status = 'error';
    evidence.error =
      e instanceof StageJobError
        ? e.message
        : `cannot run the job: ${describeKubeError(e)}`;
    evidence.durationMs = Date.now() - started;
  }
  return evidence;
}
