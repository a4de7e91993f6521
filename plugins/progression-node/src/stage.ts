/**
 * A cluster that stages can deploy to, as configured.
 *
 * @public
 */
export interface ClusterConfig {
  name: string;
  url: string;
  /**
   * The Kubernetes plugin's auth provider whose strategy gives the
   * credential: serviceAccount, aws, azure, googleServiceAccount or
   * localKubectlProxy.
   */
  authProvider: string;
  /** The token for serviceAccount; without it, the in-cluster account's. */
  serviceAccountToken?: string;
  /**
   * What the provider's strategy reads, as the Kubernetes plugin keys it
   * (`kubernetes.io/aws-assume-role`, `kubernetes.io/x-k8s-aws-id`, …).
   */
  authMetadata?: Record<string, string>;
  caData?: string;
  /** A file holding the API server's certificate authority (PEM). */
  caFile?: string;
  skipTLSVerify: boolean;
  /**
   * Where it was configured, for error messages: `catalog` is a Resource
   * of type kubernetes-cluster, found by the Kubernetes plugin's catalog
   * locator's rules; `gke` one of the Kubernetes plugin's gke locator.
   */
  source:
    | 'progression.clusters'
    | 'kubernetes.clusterLocatorMethods'
    | 'catalog'
    | 'gke';
}

/**
 * Where a stage's workload runs.
 *
 * @public
 */
export interface StageLocation {
  cluster: ClusterConfig;
  namespace: string;
}

/**
 * Who may approve a promotion into a stage, and how many must.
 *
 * @public
 */
export interface ApprovalConfig {
  required: boolean;
  /** User and group entity refs whose members may approve. */
  approvers: string[];
  minApprovals: number;
  allowSelfApproval: boolean;
  expiresAfterMs?: number;
}

/**
 * Where a stage's feature flags live (flagd JSON in a ConfigMap).
 *
 * @public
 */
export interface FlagsConfig {
  configMap: string;
  key: string;
}

/**
 * Each gate's section of a stage, as the gate's own definition read it,
 * by gate name; a gate that is not configured has no entry. A gate module
 * types its entry by declaration merging:
 *
 * ```ts
 * // the module: this (-node) package's name
 * declare module '…/backstage-plugin-progression-node' {
 *   interface StageGateConfigs {
 *     webhook?: WebhookGateConfig;
 *   }
 * }
 * ```
 *
 * @public
 */
export interface StageGateConfigs {
  [gate: string]: unknown;
}

/**
 * How a stage's releases reach it: the deployer `kind` and that deployer's
 * section (`deploy`), as the deployer read it.
 *
 * @public
 */
export interface StageDeployConfig {
  kind: string;
  config: unknown;
}

/**
 * One stage of a pipeline, as Progression read it from app-config.
 *
 * @public
 */
export interface StageConfig {
  name: string;
  title: string;
  cluster: string;
  namespace: string;
  /** The URL template, placeholders not yet filled in. */
  url?: string;
  /** Releases flow into this stage without a click once the previous one passed. */
  autoPromote: boolean;
  approval: ApprovalConfig;
  /** How long a release must stay healthy here before it may move on. */
  soakMs: number;
  rollback: { automatic: boolean };
  /** How long a rollout may take before the deploy fails. */
  rolloutTimeoutMs: number;
  /**
   * How long a new pod may stay unready (its readiness probe failing)
   * before the rollout is failed without waiting for `rolloutTimeoutMs`.
   */
  readyTimeoutMs: number;
  deploy: StageDeployConfig;
  gates: StageGateConfigs;
  /** Where the stage's feature flags are read from. */
  flags: FlagsConfig;
}

/**
 * What Progression knows of the entity whose release moves.
 *
 * @public
 */
export interface EntityTarget {
  entityRef: string;
  name: string;
  namespace: string;
  /** The `backstage.io/kubernetes-id` label value of its workload. */
  kubernetesId: string;
  /** The container that runs the release, when the workload has several. */
  container?: string;
  /** Stage URL overrides from the entity's annotations, by stage name. */
  urlOverrides?: Record<string, string>;
  /** The entity's `progression.backstage.io/…` annotations, for deployers and gates of modules. */
  annotations?: Record<string, string>;
}

/**
 * The release a promotion moves (for a rollback: the one it goes back to).
 *
 * @public
 */
export interface ReleaseRef {
  id: string;
  version: string;
  image: string;
}
