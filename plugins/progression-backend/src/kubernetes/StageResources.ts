import {
  ApiException,
  BatchV1Api,
  CoreV1Api,
  NetworkingV1Api,
  V1ConfigMap,
  V1Deployment,
  V1Job,
  V1NetworkPolicy,
  V1Pod,
  Watch,
} from '@kubernetes/client-node';
import { InputError, NotFoundError } from '@backstage/errors';
import {
  StageLocation,
  StageWorkloads,
} from '@progression-io/backstage-plugin-progression-node';
import { ClusterRequest, beforeSend, requestOf } from './clusterRequest';
import {
  isConfigMapKey,
  isDnsLabel,
  isDnsSubdomain,
  isLabelKey,
  isLabelValue,
} from './names';
import { watchOne } from './watchOne';

export { isConfigMapKey, isDnsLabel, isDnsSubdomain, isLabelKey, isLabelValue };

/*
 * The reads and writes of a stage's other resources that the gates need:
 * namespaces, NetworkPolicies, ConfigMaps, the names and keys (never the
 * values) of Secrets, and Jobs. Like KubernetesWorkloads, through
 * @kubernetes/client-node and nothing else, and bounded in time the same
 * way: every call goes through the workloads' `request`.
 */

function checkName(
  value: string,
  what: string,
  valid: (v: string) => boolean,
  rule: string,
) {
  if (typeof value !== 'string' || !valid(value)) {
    throw new InputError(`'${value}' is not a valid ${what}: ${rule}`);
  }
}

const LABEL_RULE =
  'use at most 63 lowercase letters, digits and "-", starting and ending with a letter or digit';
const SUBDOMAIN_RULE =
  'use at most 253 lowercase letters, digits, "-" and ".", starting and ending with a letter or digit';
const LABEL_VALUE_RULE =
  'use at most 63 letters, digits, "-", "_" and ".", starting and ending with a letter or digit';

function checkNamespace(location: StageLocation) {
  checkName(location.namespace, 'namespace name', isDnsLabel, LABEL_RULE);
}

/** The status code of a failed cluster call, if it got an answer. */
export function kubeErrorCode(e: unknown): number | undefined {
  return e instanceof ApiException ? e.code : undefined;
}

/**
 * A short description of a failed cluster call: the status and the
 * server's message, without the headers and body that ApiException's own
 * message carries.
 */
export function describeKubeError(e: unknown): string {
  if (e instanceof ApiException) {
    let body: unknown = e.body;
    if (typeof body === 'string') {
      try {
        body = JSON.parse(body);
      } catch {
        // not JSON: keep the text
      }
    }
    let message: string | undefined;
    if (body && typeof body === 'object' && 'message' in body) {
      message = String((body as { message: unknown }).message);
    } else if (typeof body === 'string' && body) {
      message = body.slice(0, 200);
    }
    return `the API server answered ${e.code}${message ? `: ${message}` : ''}`;
  }
  const error = e as Error;
  const cause = (error?.cause as Error | undefined)?.message;
  return cause ? `${error.message} (${cause})` : String(error?.message ?? e);
}

function checkLabels(labels: Record<string, string>) {
  for (const [key, value] of Object.entries(labels)) {
    checkName(key, 'label key', isLabelKey, 'use [prefix/]name');
    checkName(value, `value of label ${key}`, isLabelValue, LABEL_VALUE_RULE);
  }
}

/** `k=v,...` for the labels, each checked against the label rules first. */
function labelSelector(labels: Record<string, string>): string {
  checkLabels(labels);
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

/** Runs a read; a 404 is undefined. */
async function orUndefined<T>(read: () => Promise<T>): Promise<T | undefined> {
  try {
    return await read();
  } catch (e) {
    if (kubeErrorCode(e) === 404) return undefined;
    throw e;
  }
}

/** A Job's outcome, from its conditions. */
export type JobState = 'running' | 'complete' | 'failed';

export function jobState(job: V1Job): JobState {
  const conditions = job.status?.conditions ?? [];
  const is = (type: string) =>
    conditions.some(c => c.type === type && c.status === 'True');
  if (is('Complete')) return 'complete';
  if (is('Failed')) return 'failed';
  return 'running';
}

export interface JobWaitResult {
  job: V1Job;
  /** `timeout` when the deadline passed, `cancelled` when the signal fired. */
  outcome: JobState | 'timeout' | 'cancelled';
}

/** The last pod of a Job: how it ended and the tail of its log. */
export interface JobPodSummary {
  pod: string;
  container: string;
  phase?: string;
  exitCode?: number;
  terminationReason?: string;
  /** The last lines of the container's log, at most `maxBytes`. */
  logTail: string;
  /** Why the log could not be read, when it could not. */
  logError?: string;
}

/** Keeps the end of `text`: the last `lines` lines and at most `maxBytes` bytes. */
export function tailOf(text: string, lines: number, maxBytes: number): string {
  let all = text.split('\n');
  if (all[all.length - 1] === '') all.pop();
  all = all.slice(-lines);
  let out = all.join('\n');
  const bytes = Buffer.from(out, 'utf8');
  if (bytes.length > maxBytes) {
    out = bytes.subarray(bytes.length - maxBytes).toString('utf8');
    // Drop a partial first line (and a character cut in half).
    const nl = out.indexOf('\n');
    out = nl >= 0 ? out.slice(nl + 1) : out.replace(/^\uFFFD+/, '');
  }
  return out;
}

/** The API server's metadata-only form of an object, else the object. */
const METADATA_ONLY =
  'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json';

/**
 * A stage's namespaces, NetworkPolicies, ConfigMaps, Secret keys, workload
 * pod templates and Jobs, through the cluster access gates get. Every name
 * that goes into a URL path or a selector is checked against the
 * Kubernetes name rules first. Every call is bounded in time by the
 * access's own bound (see {@link requestOf}). Secret values are never
 * returned: only the names of their keys.
 */
export class StageResources {
  private readonly request: ClusterRequest;

  constructor(
    private readonly workloads: Pick<
      StageWorkloads,
      'kubeConfig' | 'findDeployment'
    >,
  ) {
    this.request = requestOf(workloads);
  }

  private core(location: StageLocation) {
    return this.workloads.kubeConfig(location.cluster).makeApiClient(CoreV1Api);
  }

  private batch(location: StageLocation) {
    return this.workloads
      .kubeConfig(location.cluster)
      .makeApiClient(BatchV1Api);
  }

  private networking(location: StageLocation) {
    return this.workloads
      .kubeConfig(location.cluster)
      .makeApiClient(NetworkingV1Api);
  }

  /** The namespace's labels, or undefined when it does not exist. */
  async namespaceLabels(
    location: StageLocation,
  ): Promise<Record<string, string> | undefined> {
    checkNamespace(location);
    const ns = await orUndefined(() =>
      this.request(location, `read Namespace ${location.namespace}`, options =>
        this.core(location).readNamespace(
          { name: location.namespace },
          options,
        ),
      ),
    );
    return ns ? { ...ns.metadata?.labels } : undefined;
  }

  /** The NetworkPolicies of the stage namespace. */
  async listNetworkPolicies(
    location: StageLocation,
  ): Promise<V1NetworkPolicy[]> {
    checkNamespace(location);
    const list = await this.request(location, 'list NetworkPolicies', options =>
      this.networking(location).listNamespacedNetworkPolicy(
        { namespace: location.namespace },
        options,
      ),
    );
    return list.items;
  }

  /** A ConfigMap of the stage namespace, or undefined when it does not exist. */
  async readConfigMap(
    location: StageLocation,
    name: string,
  ): Promise<V1ConfigMap | undefined> {
    checkNamespace(location);
    checkName(name, 'ConfigMap name', isDnsSubdomain, SUBDOMAIN_RULE);
    return orUndefined(() =>
      this.request(location, `read ConfigMap ${name}`, options =>
        this.core(location).readNamespacedConfigMap(
          { namespace: location.namespace, name },
          options,
        ),
      ),
    );
  }

  /** The keys of a ConfigMap (data and binaryData), or undefined when it does not exist. */
  async configMapKeys(
    location: StageLocation,
    name: string,
  ): Promise<string[] | undefined> {
    const cm = await this.readConfigMap(location, name);
    if (!cm) return undefined;
    return [
      ...Object.keys(cm.data ?? {}),
      ...Object.keys(cm.binaryData ?? {}),
    ].sort();
  }

  /**
   * Whether a Secret exists, read as metadata only
   * (`PartialObjectMetadata`): its data never leaves the API server.
   * Kubernetes RBAC still calls this `get` on the Secret.
   */
  async secretExists(location: StageLocation, name: string): Promise<boolean> {
    checkNamespace(location);
    checkName(name, 'Secret name', isDnsSubdomain, SUBDOMAIN_RULE);
    const metadata = await orUndefined(() =>
      this.request(location, `read Secret ${name} (metadata)`, options =>
        this.core(location).readNamespacedSecret(
          { namespace: location.namespace, name },
          beforeSend(
            context => context.setHeaderParam('Accept', METADATA_ONLY),
            options,
          ),
        ),
      ),
    );
    return metadata !== undefined;
  }

  /**
   * The names of a Secret's keys, or undefined when it does not exist. The
   * values are read by the API call (Kubernetes has no keys-only read) and
   * dropped here; they are never returned or logged.
   */
  async secretKeys(
    location: StageLocation,
    name: string,
  ): Promise<string[] | undefined> {
    checkNamespace(location);
    checkName(name, 'Secret name', isDnsSubdomain, SUBDOMAIN_RULE);
    const secret = await orUndefined(() =>
      this.request(location, `read Secret ${name}`, options =>
        this.core(location).readNamespacedSecret(
          { namespace: location.namespace, name },
          options,
        ),
      ),
    );
    if (!secret) return undefined;
    return [
      ...new Set([
        ...Object.keys(secret.data ?? {}),
        ...Object.keys(secret.stringData ?? {}),
      ]),
    ].sort();
  }

  /**
   * The stage's Deployment labelled `backstage.io/kubernetes-id`, with its
   * pod template; undefined when there is none. More than one is an error.
   */
  async findDeployment(
    location: StageLocation,
    kubernetesId: string,
  ): Promise<V1Deployment | undefined> {
    checkNamespace(location);
    checkName(
      kubernetesId,
      'backstage.io/kubernetes-id label value',
      isLabelValue,
      LABEL_VALUE_RULE,
    );
    try {
      return await this.workloads.findDeployment(location, kubernetesId);
    } catch (e) {
      if (e instanceof NotFoundError) return undefined;
      throw e;
    }
  }

  /** A Job of the stage namespace, or undefined. */
  async readJob(
    location: StageLocation,
    name: string,
  ): Promise<V1Job | undefined> {
    checkNamespace(location);
    checkName(name, 'Job name', isDnsLabel, LABEL_RULE);
    return orUndefined(() => this.readJobNow(location, name));
  }

  private readJobNow(
    location: StageLocation,
    name: string,
    signal?: AbortSignal,
  ): Promise<V1Job> {
    return this.request(
      location,
      `read Job ${name}`,
      options =>
        this.batch(location).readNamespacedJob(
          { namespace: location.namespace, name },
          options,
        ),
      signal,
    );
  }

  /** The Jobs of the stage namespace that carry all of `labels`. */
  async listJobs(
    location: StageLocation,
    labels: Record<string, string>,
  ): Promise<V1Job[]> {
    checkNamespace(location);
    const selector = labelSelector(labels);
    const list = await this.request(
      location,
      `list Jobs labelled ${selector}`,
      options =>
        this.batch(location).listNamespacedJob(
          { namespace: location.namespace, labelSelector: selector },
          options,
        ),
    );
    return list.items;
  }

  /**
   * Creates the Job, or when one of that name exists (409: a run before a
   * crash created it) returns the existing one with `created: false`. The
   * caller checks that the existing Job is its own (labels).
   */
  async createJob(
    location: StageLocation,
    job: V1Job,
  ): Promise<{ job: V1Job; created: boolean }> {
    checkNamespace(location);
    const name = job.metadata?.name ?? '';
    checkName(name, 'Job name', isDnsLabel, LABEL_RULE);
    checkLabels(job.metadata?.labels ?? {});
    try {
      const created = await this.request(
        location,
        `create Job ${name}`,
        options =>
          this.batch(location).createNamespacedJob(
            {
              namespace: location.namespace,
              body: {
                apiVersion: 'batch/v1',
                kind: 'Job',
                ...job,
                metadata: { ...job.metadata, namespace: location.namespace },
              },
            },
            options,
          ),
      );
      return { job: created, created: true };
    } catch (e) {
      if (kubeErrorCode(e) !== 409) throw e;
      const existing = await this.readJob(location, name);
      // Deleted between the create and the read: try once more.
      if (!existing) return this.createJob(location, job);
      return { job: existing, created: false };
    }
  }

  /**
   * Deletes the Job and, in the background, its pods (as `kubectl delete
   * job` does); one already gone is not an error.
   */
  async deleteJob(location: StageLocation, name: string): Promise<void> {
    checkNamespace(location);
    checkName(name, 'Job name', isDnsLabel, LABEL_RULE);
    try {
      await this.request(location, `delete Job ${name}`, options =>
        this.batch(location).deleteNamespacedJob(
          {
            name,
            namespace: location.namespace,
            propagationPolicy: 'Background',
          },
          options,
        ),
      );
    } catch (e) {
      if (kubeErrorCode(e) !== 404) throw e;
    }
  }

  /**
   * Waits until the Job is Complete or Failed, `timeoutMs` passed or the
   * signal fired, from a watch on the Job; the Job is read again at least
   * every `pollMs` (and whenever the watch drops), so a watch that never
   * delivers (or never connects) does not stall the wait: each watch ends
   * by then, and each read is bounded like every other call.
   */
  async waitForJob(
    location: StageLocation,
    name: string,
    options: { timeoutMs: number; signal?: AbortSignal; pollMs?: number },
  ): Promise<JobWaitResult> {
    checkNamespace(location);
    checkName(name, 'Job name', isDnsLabel, LABEL_RULE);
    const watch = new Watch(this.workloads.kubeConfig(location.cluster));
    const path = `/apis/batch/v1/namespaces/${encodeURIComponent(
      location.namespace,
    )}/jobs`;
    const deadline = Date.now() + options.timeoutMs;
    const pollMs = options.pollMs ?? 10_000;
    let job = await this.readJobNow(location, name);
    for (;;) {
      const state = jobState(job);
      if (state !== 'running') return { job, outcome: state };
      if (options.signal?.aborted) return { job, outcome: 'cancelled' };
      if (Date.now() >= deadline) return { job, outcome: 'timeout' };
      const seen = await watchOne<V1Job, V1Job>({
        watch,
        path,
        name,
        resourceVersion: job.metadata?.resourceVersion,
        until: Math.min(deadline, Date.now() + pollMs),
        signal: options.signal,
        judge: j => (jobState(j) !== 'running' ? j : undefined),
        what: { resource: 'jobs', namespace: location.namespace },
      });
      if (seen) {
        job = seen;
        continue;
      }
      try {
        job = await this.readJobNow(location, name, options.signal);
      } catch (e) {
        // A cancel during the read is a cancelled wait, as it is between reads.
        if (options.signal?.aborted) return { job, outcome: 'cancelled' };
        throw e;
      }
    }
  }

  /** The Job's pods (by its selector and owner), oldest first. */
  async jobPods(location: StageLocation, job: V1Job): Promise<V1Pod[]> {
    checkNamespace(location);
    const selector = labelSelector(job.spec?.selector?.matchLabels ?? {});
    if (!selector) {
      const name = job.metadata?.name ?? '';
      checkName(name, 'Job name', isDnsLabel, LABEL_RULE);
    }
    const list = await this.request(
      location,
      `list the pods of Job ${job.metadata?.name}`,
      options =>
        this.core(location).listNamespacedPod(
          {
            namespace: location.namespace,
            labelSelector: selector || `job-name=${job.metadata?.name}`,
          },
          options,
        ),
    );
    return list.items
      .filter(
        p =>
          !job.metadata?.uid ||
          (p.metadata?.ownerReferences ?? []).some(
            r => r.uid === job.metadata?.uid,
          ),
      )
      .sort((a, b) =>
        String(a.metadata?.creationTimestamp ?? '').localeCompare(
          String(b.metadata?.creationTimestamp ?? ''),
        ),
      );
  }

  /**
   * How the Job's last pod ended and the tail of its log: the last `lines`
   * lines, at most `maxBytes` bytes. Undefined when the Job has no pod.
   */
  async jobLastPod(
    location: StageLocation,
    job: V1Job,
    options: { container?: string; lines?: number; maxBytes?: number } = {},
  ): Promise<JobPodSummary | undefined> {
    const pods = await this.jobPods(location, job);
    const pod = pods[pods.length - 1];
    if (!pod) return undefined;
    const podName = pod.metadata!.name!;
    const container =
      options.container ?? pod.spec?.containers?.[0]?.name ?? '';
    const status = pod.status?.containerStatuses?.find(
      s => s.name === container,
    );
    const terminated =
      status?.state?.terminated ?? status?.lastState?.terminated;
    const lines = options.lines ?? 50;
    const maxBytes = options.maxBytes ?? 4096;
    const summary: JobPodSummary = {
      pod: podName,
      container,
      phase: pod.status?.phase,
      exitCode: terminated?.exitCode,
      terminationReason: terminated?.reason,
      logTail: '',
    };
    try {
      const text = await this.request(
        location,
        `read the log of pod ${podName}`,
        call =>
          this.core(location).readNamespacedPodLog(
            {
              namespace: location.namespace,
              name: podName,
              container,
              tailLines: lines,
            },
            call,
          ),
      );
      summary.logTail = tailOf(String(text ?? ''), lines, maxBytes);
    } catch (e) {
      summary.logError = describeKubeError(e);
    }
    return summary;
  }
}
