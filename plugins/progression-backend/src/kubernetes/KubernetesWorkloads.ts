import { setTimeout as sleep } from 'node:timers/promises';
import {
  AppsV1Api,
  CoreV1Api,
  Informer,
  KubeConfig,
  ObjectCache,
  makeInformer,
  PatchStrategy,
  V1Deployment,
  V1Pod,
  V1PodTemplateSpec,
  V1ReplicaSet,
  Watch,
  setHeaderOptions,
} from '@kubernetes/client-node';
import { ConflictError, InputError, NotFoundError } from '@backstage/errors';
import {
  ClusterConfig,
  LiveWorkload,
  RolloutResult,
  StageJobRun,
  StageJobSpec,
  StageLocation,
  StageWorkloads,
} from '@progression-io/backstage-plugin-progression-node';
import {
  ClusterRequest,
  DEFAULT_REQUEST_TIMEOUT_MS,
  boundedRequest,
} from './clusterRequest';
import { ClusterAuth, clusterKubeConfig } from './clusterAuth';
import { ENTITY_REF_ANNOTATION, checkBinding } from './entityBinding';
import { isLabelValue } from './names';
import { podFailure } from './podFailure';
import { rolloutStatus } from './rolloutStatus';
import { runStageJob } from './runStageJob';
import { StageResources } from './StageResources';
import { watchOne } from './watchOne';

const REVISION = 'deployment.kubernetes.io/revision';
const CHANGE_CAUSE = 'kubernetes.io/change-cause';
export const PROMOTION_ANNOTATION = 'progression.backstage.io/promotion-id';
// What `kubectl rollout undo` does not copy from the ReplicaSet
// (annotationsToSkip in staging/src/k8s.io/kubectl/pkg/polymorphichelpers/rollback.go).
const ANNOTATIONS_TO_SKIP = new Set([
  'kubectl.kubernetes.io/last-applied-configuration',
  REVISION,
  'deployment.kubernetes.io/revision-history',
  'deployment.kubernetes.io/desired-replicas',
  'deployment.kubernetes.io/max-replicas',
  'deprecated.deployment.rollback.to',
]);

export type { LiveWorkload, RolloutResult, StageLocation };

/**
 * Argo CD's marks on what it manages: the annotation of its annotation
 * tracking (`<app>:<group>/<Kind>:<namespace>/<name>`, Argo CD 3's
 * default; `<app-namespace>_<app>` for Applications outside its own
 * namespace) and the label key its docs recommend for label tracking.
 * Its older default label, `app.kubernetes.io/instance`, is not read: Helm
 * charts set it too.
 */
export const ARGOCD_TRACKING_ANNOTATION = 'argocd.argoproj.io/tracking-id';
export const ARGOCD_INSTANCE_LABEL = 'argocd.argoproj.io/instance';

function managedBy(d: V1Deployment): Pick<LiveWorkload, 'managedBy'> {
  const tracking = d.metadata?.annotations?.[ARGOCD_TRACKING_ANNOTATION];
  const application = tracking
    ? tracking.split(':')[0]
    : d.metadata?.labels?.[ARGOCD_INSTANCE_LABEL];
  return application ? { managedBy: { tool: 'argocd', application } } : {};
}

/** How often a rollout wait looks at the new pods between Deployment events. */
const POD_CHECK_MS = 1000;

/** The new ReplicaSet a rollout wait found, for the Deployment generation it ran. */
interface NewReplicaSet {
  generation: string;
  uid?: string;
  hash?: string;
}

interface InformerState {
  informer: Informer<V1Deployment> & ObjectCache<V1Deployment>;
  error?: Error;
}

const sameTemplate = (a?: V1PodTemplateSpec, b?: V1PodTemplateSpec) => {
  const strip = (t?: V1PodTemplateSpec) => {
    const c = JSON.parse(JSON.stringify(t ?? {}));
    if (c.metadata?.labels) delete c.metadata.labels['pod-template-hash'];
    if (c.metadata) delete c.metadata.creationTimestamp;
    return JSON.stringify(c, Object.keys(flatKeys(c)).sort());
  };
  return strip(a) === strip(b);
};
function flatKeys(
  o: unknown,
  keys: Record<string, true> = {},
): Record<string, true> {
  if (o && typeof o === 'object') {
    for (const [k, v] of Object.entries(o)) {
      keys[k] = true;
      flatKeys(v, keys);
    }
  }
  return keys;
}

/**
 * The stages' workloads through @kubernetes/client-node: find the
 * Deployment by `backstage.io/kubernetes-id`, set its image, wait for the
 * rollout as `kubectl rollout status` does, and roll back as `kubectl
 * rollout undo` does. Nothing else in the plugin talks to clusters.
 */
export class KubernetesWorkloads implements StageWorkloads {
  /** By cluster object: a catalog cluster that changes is a new object. */
  private readonly configs = new WeakMap<ClusterConfig, KubeConfig>();
  private readonly informers = new Map<string, Promise<InformerState>>();

  /**
   * One call to a stage's cluster, bounded by `requestTimeoutMs`; the
   * stage's other resources (StageResources) are read and written through
   * it too.
   */
  readonly request: ClusterRequest;

  private readonly auth: ClusterAuth;

  /**
   * `requestTimeoutMs` (default 30 s) bounds every call to a cluster: one
   * that has not answered by then is aborted and fails, naming the call.
   * `auth` gives each cluster's credential through the Kubernetes plugin's
   * strategies (by default made without config: service-account tokens
   * and the AWS SDK's default chain work; Azure needs a logger).
   */
  constructor(options: { requestTimeoutMs?: number; auth?: ClusterAuth } = {}) {
    this.request = boundedRequest(
      options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
    );
    this.auth = options.auth ?? new ClusterAuth();
  }

  /** The client configuration of a cluster, shared by every reader of it. */
  kubeConfig(cluster: ClusterConfig) {
    let kc = this.configs.get(cluster);
    if (!kc) {
      kc = clusterKubeConfig(cluster, this.auth);
      this.configs.set(cluster, kc);
    }
    return kc;
  }

  private apps(cluster: ClusterConfig) {
    return this.kubeConfig(cluster).makeApiClient(AppsV1Api);
  }

  /** The Deployment labelled `backstage.io/kubernetes-id=<kubernetesId>`. */
  async findDeployment(
    stage: StageLocation,
    kubernetesId: string,
  ): Promise<V1Deployment> {
    if (!isLabelValue(kubernetesId)) {
      throw new InputError(
        `'${kubernetesId}' is not a valid backstage.io/kubernetes-id label value`,
      );
    }
    const list = await this.request(
      stage,
      `list Deployments labelled backstage.io/kubernetes-id=${kubernetesId}`,
      options =>
        this.apps(stage.cluster).listNamespacedDeployment(
          {
            namespace: stage.namespace,
            labelSelector: `backstage.io/kubernetes-id=${kubernetesId}`,
          },
          options,
        ),
    );
    if (list.items.length === 0) {
      throw new NotFoundError(
        `No Deployment labelled backstage.io/kubernetes-id=${kubernetesId} in namespace ${stage.namespace} of cluster ${stage.cluster.name}`,
      );
    }
    if (list.items.length > 1) {
      throw new ConflictError(
        `${list.items.length} Deployments are labelled backstage.io/kubernetes-id=${kubernetesId} in namespace ${stage.namespace}; expected one`,
      );
    }
    return list.items[0];
  }

  /** The container that runs the release: the named one, the only one, or the one named like the workload. */
  containerOf(d: V1Deployment, kubernetesId: string, wanted?: string): string {
    const names = (d.spec?.template.spec?.containers ?? []).map(c => c.name);
    const pick =
      wanted ??
      (names.length === 1 ? names[0] : names.find(n => n === kubernetesId));
    if (!pick || !names.includes(pick)) {
      throw new InputError(
        `Cannot tell which container of Deployment ${
          d.metadata?.name
        } runs the release${
          wanted ? ` ('${wanted}' is not one of them)` : ''
        }; containers: ${names.join(', ')}`,
      );
    }
    return pick;
  }

  async readLive(
    stage: StageLocation,
    kubernetesId: string,
    container?: string,
  ): Promise<LiveWorkload> {
    return this.describe(
      await this.findDeployment(stage, kubernetesId),
      kubernetesId,
      container,
    );
  }

  /**
   * The live workload from a watch-based cache of the stage's Deployments
   * (an informer per cluster and namespace), not a cluster call per read.
   * Undefined when no single Deployment carries the label.
   */
  async readCached(
    stage: StageLocation,
    kubernetesId: string,
    container?: string,
  ): Promise<LiveWorkload | undefined> {
    const informer = await this.informer(stage);
    const matches = informer
      .list(stage.namespace)
      .filter(
        d =>
          d.metadata?.labels?.['backstage.io/kubernetes-id'] === kubernetesId,
      );
    if (matches.length !== 1) return undefined;
    return this.describe(matches[0], kubernetesId, container);
  }

  private informer(stage: StageLocation) {
    const key = `${stage.cluster.name}/${stage.namespace}`;
    let entry = this.informers.get(key);
    if (!entry) {
      entry = (async () => {
        const apps = this.apps(stage.cluster);
        const informer = makeInformer<V1Deployment>(
          this.kubeConfig(stage.cluster),
          `/apis/apps/v1/namespaces/${encodeURIComponent(
            stage.namespace,
          )}/deployments`,
          () =>
            this.request(stage, 'list Deployments', options =>
              apps.listNamespacedDeployment(
                {
                  namespace: stage.namespace,
                  labelSelector: 'backstage.io/kubernetes-id',
                },
                options,
              ),
            ),
          'backstage.io/kubernetes-id',
        );
        const state: InformerState = { informer, error: undefined };
        informer.on('connect', () => {
          state.error = undefined;
        });
        // After an error the informer lists and watches again; until it
        // does, reads say why the stage cannot be read.
        informer.on('error', (error?: Error) => {
          state.error = error ?? new Error('the watch failed');
          setTimeout(
            () => informer.start().catch(() => undefined),
            2000,
          ).unref?.();
        });
        await informer.start();
        return state;
      })();
      this.informers.set(key, entry);
      // A failed start is retried on the next read.
      entry.catch(() => this.informers.delete(key));
    }
    return entry.then(state => {
      if (state.error) throw state.error;
      return state.informer;
    });
  }

  /** Runs (or adopts, after a restart) a Job in the stage and waits for it. */
  runJob(
    location: StageLocation,
    spec: StageJobSpec,
    signal?: AbortSignal,
  ): Promise<StageJobRun> {
    return runStageJob(new StageResources(this), location, spec, signal);
  }

  /** Stops the informers. */
  async close() {
    const all = [...this.informers.values()];
    this.informers.clear();
    await Promise.all(
      all.map(p =>
        p.then(
          state => state.informer.stop(),
          () => undefined,
        ),
      ),
    );
  }

  private describe(
    d: V1Deployment,
    kubernetesId: string,
    container?: string,
  ): LiveWorkload {
    const name = this.containerOf(d, kubernetesId, container);
    const s = d.status ?? {};
    return {
      deployment: d.metadata!.name!,
      container: name,
      image:
        d.spec!.template.spec!.containers.find(c => c.name === name)!.image ??
        '',
      revision: Number(d.metadata?.annotations?.[REVISION] ?? 0),
      replicas: d.spec?.replicas ?? 1,
      readyReplicas: s.readyReplicas ?? 0,
      updatedReplicas: s.updatedReplicas ?? 0,
      availableReplicas: s.availableReplicas ?? 0,
      generation: d.metadata?.generation ?? 0,
      observedGeneration: s.observedGeneration ?? 0,
      promotionId: d.metadata?.annotations?.[PROMOTION_ANNOTATION],
      entityRef: d.metadata?.annotations?.[ENTITY_REF_ANNOTATION],
      changeCause: d.metadata?.annotations?.[CHANGE_CAUSE],
      rollout: rolloutStatus(d),
      ...managedBy(d),
    };
  }

  /**
   * Sets the container's image with a strategic merge patch, recording the
   * change-cause and the promotion id on the Deployment (and so on its new
   * ReplicaSet, for `rollout history`), and the entity it belongs to from
   * now on when `entityRef` is given.
   */
  async setImage(
    stage: StageLocation,
    deployment: string,
    container: string,
    image: string,
    annotations: {
      changeCause: string;
      promotionId: string;
      entityRef?: string;
    },
  ): Promise<V1Deployment> {
    return this.request(stage, `patch Deployment ${deployment}`, options =>
      this.apps(stage.cluster).patchNamespacedDeployment(
        {
          namespace: stage.namespace,
          name: deployment,
          body: {
            metadata: {
              annotations: {
                [CHANGE_CAUSE]: annotations.changeCause,
                [PROMOTION_ANNOTATION]: annotations.promotionId,
                ...(annotations.entityRef && {
                  [ENTITY_REF_ANNOTATION]: annotations.entityRef,
                }),
              },
            },
            spec: {
              template: { spec: { containers: [{ name: container, image }] } },
            },
          },
        },
        setHeaderOptions(
          'Content-Type',
          PatchStrategy.StrategicMergePatch,
          options,
        ),
      ),
    );
  }

  /**
   * Waits until the rollout is done, failed, or `timeoutMs` passed. Done
   * and failed are `kubectl rollout status`'s, from a watch on the
   * Deployment (a dropped watch is re-opened from the last version seen);
   * besides, the new ReplicaSet's pods are looked at every second, and a
   * pod that cannot come up (see {@link podFailure}; not ready for longer
   * than `readyTimeoutMs`) fails the rollout at once, without waiting for
   * the progress deadline. An abort of `signal` is no outcome: the wait
   * rejects with its reason.
   */
  async waitForRollout(
    stage: StageLocation,
    deployment: string,
    options: {
      timeoutMs: number;
      readyTimeoutMs?: number;
      signal?: AbortSignal;
    },
  ): Promise<RolloutResult> {
    const { signal } = options;
    signal?.throwIfAborted();
    const deadline = Date.now() + options.timeoutMs;
    const finished = new AbortController();
    const until = signal
      ? AbortSignal.any([signal, finished.signal])
      : finished.signal;
    const latest: { deployment?: V1Deployment } = {};
    try {
      const result = await Promise.race([
        this.followRollout(stage, deployment, deadline, until, latest),
        this.watchNewPods(stage, options.readyTimeoutMs, until, latest),
      ]);
      signal?.throwIfAborted();
      return (
        result ?? {
          done: false,
          failed: true,
          message: `deployment "${deployment}" did not finish rolling out in ${Math.round(
            options.timeoutMs / 1000,
          )} s`,
        }
      );
    } finally {
      finished.abort();
    }
  }

  /**
   * The Deployment's rollout by `kubectl rollout status`'s rules, until it
   * is done or failed; undefined at `deadline` or when `signal` aborts.
   * Keeps `latest` up to date for the look at the pods.
   */
  private async followRollout(
    stage: StageLocation,
    deployment: string,
    deadline: number,
    signal: AbortSignal,
    latest: { deployment?: V1Deployment },
  ): Promise<RolloutResult | undefined> {
    const apps = this.apps(stage.cluster);
    const watch = new Watch(this.kubeConfig(stage.cluster));
    const path = `/apis/apps/v1/namespaces/${encodeURIComponent(
      stage.namespace,
    )}/deployments`;
    const judge = (d: V1Deployment): RolloutResult | undefined => {
      latest.deployment = d;
      const s = rolloutStatus(d);
      if (s.done) return { done: true, failed: false, message: s.message };
      if (s.failed) return { done: false, failed: true, message: s.message };
      return undefined;
    };
    while (Date.now() < deadline && !signal.aborted) {
      const current = await this.request(
        stage,
        `read Deployment ${deployment}`,
        options =>
          apps.readNamespacedDeployment(
            { namespace: stage.namespace, name: deployment },
            options,
          ),
        signal,
      );
      const now = judge(current);
      if (now) return now;
      const result = await watchOne<RolloutResult, V1Deployment>({
        watch,
        path,
        name: deployment,
        resourceVersion: current.metadata?.resourceVersion,
        until: deadline,
        signal,
        judge,
        what: { resource: 'deployments', namespace: stage.namespace },
      });
      if (result) return result;
    }
    return undefined;
  }

  /**
   * Looks at the pods of the Deployment's new ReplicaSet every
   * `POD_CHECK_MS` until `signal` aborts, and answers with the failed
   * rollout as soon as one of them cannot come up.
   */
  private async watchNewPods(
    stage: StageLocation,
    readyTimeoutMs: number | undefined,
    signal: AbortSignal,
    latest: { deployment?: V1Deployment },
  ): Promise<RolloutResult | undefined> {
    let found: NewReplicaSet | undefined;
    while (!signal.aborted) {
      await sleep(POD_CHECK_MS, undefined, { signal }).catch(() => undefined);
      const d = latest.deployment;
      if (signal.aborted || !d) continue;
      try {
        const rs = await this.newReplicaSet(stage, d, found, signal);
        found = rs;
        if (!rs.uid) continue;
        const pods = await this.request(
          stage,
          `list the pods of ReplicaSet ${d.metadata?.name}-${rs.hash}`,
          options =>
            this.kubeConfig(stage.cluster)
              .makeApiClient(CoreV1Api)
              .listNamespacedPod(
                {
                  namespace: stage.namespace,
                  labelSelector: `pod-template-hash=${rs.hash}`,
                },
                options,
              ),
          signal,
        );
        const failure = podFailure(
          pods.items.filter((p: V1Pod) =>
            p.metadata?.ownerReferences?.some(r => r.uid === rs.uid),
          ),
          { now: Date.now(), readyTimeoutMs },
        );
        if (failure) return { done: false, failed: true, ...failure };
      } catch {
        // The Deployment's status still decides: a look at the pods that
        // failed is tried again at the next interval.
      }
    }
    return undefined;
  }

  /**
   * The ReplicaSet that runs the Deployment's current template (as
   * `kubectl rollout status` finds it: the same template but for the
   * pod-template-hash), looked up once per generation; none until the
   * controller observed the generation and made it.
   */
  private async newReplicaSet(
    stage: StageLocation,
    d: V1Deployment,
    known: NewReplicaSet | undefined,
    signal: AbortSignal,
  ): Promise<NewReplicaSet> {
    const generation = `${d.metadata?.uid}/${d.metadata?.generation}`;
    if (known?.generation === generation && known.uid) return known;
    if ((d.metadata?.generation ?? 0) > (d.status?.observedGeneration ?? 0))
      return { generation };
    const revision = d.metadata?.annotations?.[REVISION];
    const rs = (await this.replicaSetsOf(stage, d, signal))
      .filter(
        r =>
          sameTemplate(r.spec?.template, d.spec?.template) ||
          (revision !== undefined &&
            r.metadata?.annotations?.[REVISION] === revision),
      )
      .sort(
        (a, b) =>
          Number(b.metadata?.annotations?.[REVISION] ?? 0) -
          Number(a.metadata?.annotations?.[REVISION] ?? 0),
      )[0];
    const hash = rs?.metadata?.labels?.['pod-template-hash'];
    return rs?.metadata?.uid && hash && isLabelValue(hash)
      ? { generation, uid: rs.metadata.uid, hash }
      : { generation };
  }

  private async replicaSetsOf(
    stage: StageLocation,
    d: V1Deployment,
    signal?: AbortSignal,
  ): Promise<V1ReplicaSet[]> {
    const selector = Object.entries(d.spec?.selector.matchLabels ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    const list = await this.request(
      stage,
      `list the ReplicaSets of Deployment ${d.metadata?.name}`,
      options =>
        this.apps(stage.cluster).listNamespacedReplicaSet(
          { namespace: stage.namespace, labelSelector: selector },
          options,
        ),
      signal,
    );
    return list.items.filter(rs =>
      rs.metadata?.ownerReferences?.some(
        r => r.controller && r.uid === d.metadata?.uid,
      ),
    );
  }

  /**
   * `kubectl rollout undo` for a Deployment: put the template of an earlier
   * revision back (the previous one by default, or the one whose container
   * image is `toImage`), with that ReplicaSet's annotations. The Deployment
   * controller then reuses the old ReplicaSet. With `entity`, a Deployment
   * that belongs to another entity is refused (NotAllowedError) and an
   * unbound one becomes the entity's.
   */
  async rollBack(
    stage: StageLocation,
    kubernetesId: string,
    options: {
      container?: string;
      toImage?: string;
      toRevision?: number;
      entity?: { entityRef: string; name: string };
    } = {},
  ): Promise<{
    deployment: string;
    fromRevision: number;
    toRevision: number;
    image: string;
    skipped: boolean;
  }> {
    const d = await this.findDeployment(stage, kubernetesId);
    const bound = d.metadata?.annotations?.[ENTITY_REF_ANNOTATION];
    if (options.entity) {
      checkBinding(
        {
          name: d.metadata?.name ?? kubernetesId,
          namespace: stage.namespace,
          entityRef: bound,
        },
        options.entity,
      );
    }
    if (d.spec?.paused) {
      throw new ConflictError(
        `Deployment ${d.metadata?.name} is paused; resume it before rolling back`,
      );
    }
    const container = this.containerOf(d, kubernetesId, options.container);
    const current = Number(d.metadata?.annotations?.[REVISION] ?? 0);
    const history = (await this.replicaSetsOf(stage, d))
      .map(rs => ({
        rs,
        revision: Number(rs.metadata?.annotations?.[REVISION] ?? 0),
      }))
      .sort((a, b) => b.revision - a.revision);
    const imageOf = (rs: V1ReplicaSet) =>
      rs.spec?.template?.spec?.containers.find(c => c.name === container)
        ?.image ?? '';

    let target: { rs: V1ReplicaSet; revision: number } | undefined;
    if (options.toRevision !== undefined) {
      target = history.find(h => h.revision === options.toRevision);
    } else if (options.toImage) {
      target = history.find(
        h => h.revision !== current && imageOf(h.rs) === options.toImage,
      );
    } else {
      target =
        history.find(h => h.revision < current) ??
        history.find(h => h.revision !== current);
    }
    if (!target) {
      throw new NotFoundError(
        `No earlier revision of Deployment ${d.metadata?.name} to roll back to${
          options.toImage ? ` with image ${options.toImage}` : ''
        }${
          options.toRevision !== undefined
            ? ` at revision ${options.toRevision}`
            : ''
        }`,
      );
    }
    const name = d.metadata!.name!;
    const image = imageOf(target.rs);
    if (sameTemplate(target.rs.spec?.template, d.spec?.template)) {
      return {
        deployment: name,
        fromRevision: current,
        toRevision: target.revision,
        image,
        skipped: true,
      };
    }
    const template = JSON.parse(
      JSON.stringify(target.rs.spec!.template),
    ) as V1PodTemplateSpec;
    if (template.metadata?.labels)
      delete template.metadata.labels['pod-template-hash'];
    const annotations: Record<string, string> = { ...d.metadata?.annotations };
    for (const [k, v] of Object.entries(
      target.rs.metadata?.annotations ?? {},
    )) {
      if (!ANNOTATIONS_TO_SKIP.has(k)) annotations[k] = v;
    }
    // Whom the Deployment belongs to is not part of the revision rolled
    // back to: a ReplicaSet that carries an earlier binding must not bring
    // it back.
    const owner = options.entity?.entityRef ?? bound;
    if (owner) annotations[ENTITY_REF_ANNOTATION] = owner;
    else delete annotations[ENTITY_REF_ANNOTATION];
    await this.request(stage, `patch Deployment ${name}`, call =>
      this.apps(stage.cluster).patchNamespacedDeployment(
        {
          namespace: stage.namespace,
          name,
          body: [
            { op: 'replace', path: '/spec/template', value: template },
            {
              op: 'replace',
              path: '/metadata/annotations',
              value: annotations,
            },
          ],
        },
        call,
      ),
    );
    return {
      deployment: name,
      fromRevision: current,
      toRevision: target.revision,
      image,
      skipped: false,
    };
  }
}
