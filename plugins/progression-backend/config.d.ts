import { HumanDuration } from '@backstage/types';

/**
 * A promotion window of a pipeline or a stage: it opens at each fire of its
 * cron `schedule` (in `timezone`, default UTC) and lasts `duration`.
 */
interface PromotionWindow {
  kind: 'allow' | 'deny';
  /** Shown in reasons, e.g. 'holiday freeze'. */
  name?: string;
  /** Cron: five fields, or six with seconds first. */
  schedule: string;
  duration: string | HumanDuration;
  /** IANA time zone, default UTC. */
  timezone?: string;
}

/** Prometheus alerts that close a pipeline's stages, or a stage, while they fire. */
interface FreezeOn {
  /** Alert names, or selectors on ALERTS such as {severity="page"}. */
  alerts?: string[];
}

export interface Config {
  /** Configuration for the Progression plugins. */
  progression?: {
    /**
     * Kubernetes clusters that stages deploy to. The shape is the Kubernetes
     * plugin's `kubernetes.clusterLocatorMethods[].clusters[]`; clusters
     * configured there (type `config`) can be named by stages too.
     */
    clusters?: Array<{
      /** Unique name that stages refer to. */
      name: string;
      /** The Kubernetes API server URL. */
      url: string;
      /**
       * Whose credential the backend sends, made by the Kubernetes plugin's
       * strategy: serviceAccount (default), aws, azure,
       * googleServiceAccount or localKubectlProxy.
       */
      authProvider?: string;
      /**
       * Bearer token of the service account the backend acts as; without
       * it, the in-cluster service account's.
       * @visibility secret
       */
      serviceAccountToken?: string;
      /** For aws: the IAM role to assume. */
      assumeRole?: string;
      /** For aws: the external id of the role. */
      externalId?: string;
      /** What the strategy reads, keyed as the Kubernetes plugin keys it. */
      authMetadata?: { [key: string]: string };
      /** Base64-encoded PEM of the certificate authority of the API server. */
      caData?: string;
      /** A file holding the PEM of the certificate authority. */
      caFile?: string;
      /** Skip TLS verification of the API server (local clusters only). */
      skipTLSVerify?: boolean;
    }>;

    /**
     * How long ended promotions (with their steps, evidence and approvals)
     * are kept. A task deletes older ones every hour.
     */
    retention?: {
      /** Default '180d'. */
      keepFor?: string | HumanDuration;
      /** The newest this many of every entity and stage stay, whatever their age. Default 50. */
      keepLast?: number;
    };

    /** The promotion worker that runs in every backend replica. */
    worker?: {
      /** How often a running promotion's claim is renewed. Default '10s'. */
      heartbeatInterval?: string | HumanDuration;
      /** A claim not renewed for this long is taken over by another replica. Default '1m'. */
      staleAfter?: string | HumanDuration;
      /**
       * How a step that failed on an error that may heal (a cluster or a
       * catalog that does not answer) is tried again: after initialDelay
       * (default '1s'), doubling up to maxDelay (default '1m'), until the
       * step has failed for budget (default '5m'); then the promotion fails
       * (before the deploy) or rolls back (after it).
       */
      retry?: {
        initialDelay?: string | HumanDuration;
        maxDelay?: string | HumanDuration;
        budget?: string | HumanDuration;
      };
      /** A step that runs longer is stopped and counts as a failed attempt. Default '1h'. */
      stepTimeout?: string | HumanDuration;
      /**
       * This replica's name, stable across its restarts, so that a restarted
       * replica takes back the promotions it held at once. Default: the host
       * name and backend.listen.port.
       */
      replicaId?: string;
    };

    /**
     * The Prometheus that metric gates and the Environments tab's charts
     * read. Without it, a stage with metric checks that are not `optional`
     * is refused at start-up.
     */
    prometheus?: {
      /** Base URL, for example http://prometheus:9090. */
      url: string;
      /**
       * Headers sent with every query, for example Authorization.
       * @visibility secret
       */
      headers?: { [name: string]: string };
      /** Timeout of one query. Default '10s'. */
      timeout?: string | HumanDuration;
    };

    /**
     * How long a reader's catalog lookup of an entity is reused by the
     * read routes (environments, releases, promotions), per reader and
     * entity. Mutations always read the catalog afresh. Default '5s'; '0s'
     * turns the reuse off.
     */
    entityCacheTtl?: string | HumanDuration;

    /**
     * Notifications through Backstage's notifications service: a promotion
     * awaiting approval to its approvers, a failed or rolled-back one and
     * a success in a pipeline's last stage to the entity's owners
     * (docs/notifications.md).
     */
    notifications?: {
      /**
       * Default true. Turn it off in a backend without
       * `@backstage/plugin-notifications-backend`; with it on there, each
       * notification is tried once, marked failed and the backend warns once.
       */
      enabled?: boolean;
    };

    /**
     * Pipelines, by name. An entity opts into one with the annotation
     * `progression.backstage.io/pipeline: <name>`.
     */
    pipelines?: {
      [name: string]: {
        /** Human-readable name of the pipeline. */
        title?: string;
        /** What the pipeline is for. */
        description?: string;
        /**
         * PromQL of the Environments tab's charts, with the placeholders
         * `{{ namespace }}`, `{{ app }}`, `{{ stage }}`, `{{ entity }}` inside
         * double-quoted label values. Defaults read http_requests_total and
         * http_request_duration_seconds.
         */
        /** Where every stage's flagd flags live (ConfigMap name and key). */
        flags?: {
          /** Default 'feature-flags'. */
          configMap?: string;
          /** Default 'flags.json'. */
          key?: string;
        };
        metrics?: {
          requestRate?: string;
          errorRate?: string;
          /** In seconds. */
          p95?: string;
        };
        /**
         * Promotion windows of every stage (a stage's own are added): a
         * window opens at each fire of its cron `schedule` (in `timezone`,
         * default UTC) and lasts `duration`. Deny wins; with no allow
         * window a stage is open whenever no deny window is.
         */
        windows?: PromotionWindow[];
        /** Close every stage while one of these Prometheus alerts fires. */
        freezeOn?: FreezeOn;
        /** Whether on-demand rollbacks may enter a closed stage. Default allow. */
        rollbacksWhenClosed?: 'allow' | 'deny';
        /** The stages in the order a release goes through them. */
        stages: Array<{
          /** Unique within the pipeline: a lowercase DNS label such as `staging`. */
          name: string;
          /** Human-readable name, defaults to `name`. */
          title?: string;
          /** The name of a configured cluster. */
          cluster: string;
          /** The namespace that holds the workloads of this stage. */
          namespace: string;
          /**
           * Base URL of the stage for smoke and load checks. May use
           * `{{ entity.name }}`, `{{ entity.namespace }}`, `{{ kubernetesId }}`,
           * `{{ stage.name }}` and `{{ stage.namespace }}`.
           */
          url?: string;
          /** Releases flow into this stage without a click once the previous stage passed. Default false. */
          autoPromote?: boolean;
          /** A human approval before the deploy. */
          approval?: {
            /** Default false. */
            required?: boolean;
            /** User and group entity refs whose members may approve, e.g. group:default/release-managers. */
            approvers?: string[];
            /** Distinct approvers needed. Default 1. */
            minApprovals?: number;
            /** Whether the requester may approve their own promotion. Default false. */
            allowSelfApproval?: boolean;
            /** An approval not given within this time rejects the promotion, e.g. '24h'. */
            expiresAfter?: string | HumanDuration;
          };
          /** How long a release must stay healthy here before it may move on, e.g. '10m'. */
          soak?: string | HumanDuration;
          rollback?: {
            /** Roll back when the deploy or verification fails. Default true. */
            automatic?: boolean;
          };
          /** How long a rollout may take before the deploy fails. Default '10m'. */
          rolloutTimeout?: string | HumanDuration;
          /**
           * How long a new pod may stay unready (failing its readiness probe)
           * before the deploy fails without waiting for rolloutTimeout. Default '60s'.
           */
          readyTimeout?: string | HumanDuration;
          /**
           * How releases reach this stage: an installed deployer's kind and
           * its own keys. Default: the built-in 'kubernetes' deployer.
           */
          deploy?: {
            kind?: string;
          };
          /**
           * This stage's promotion windows, added to the pipeline's: a
           * window opens at each fire of its cron `schedule` (in `timezone`,
           * default UTC) and lasts `duration`. Deny wins; with no allow
           * window a stage is open whenever no deny window is.
           */
          windows?: PromotionWindow[];
          /** Close this stage while one of these Prometheus alerts fires. */
          freezeOn?: FreezeOn;
          /** Whether on-demand rollbacks may enter this stage while closed; overrides the pipeline's. */
          rollbacksWhenClosed?: 'allow' | 'deny';
          /** Where this stage's flagd flags live; overrides the pipeline's. */
          flags?: {
            /** Default 'feature-flags'. */
            configMap?: string;
            /** Default 'flags.json'. */
            key?: string;
          };
          gates?: {
            /** HTTP checks against the stage URL after the deploy (and after a rollback). */
            smoke?: {
              checks: Array<{
                name?: string;
                /** Default GET. */
                method?:
                  | 'GET'
                  | 'HEAD'
                  | 'POST'
                  | 'PUT'
                  | 'PATCH'
                  | 'DELETE'
                  | 'OPTIONS';
                /** Path below the stage URL, starting with '/'. */
                path: string;
                /** Request body: a string, or an object sent as JSON. */
                body?: string | object;
                headers?: { [name: string]: string };
                /** Acceptable status(es). Default 200. */
                expectStatus?: number | number[];
                /** JSONata expression(s) over the JSON body that must be true, e.g. "status = 'ok'". */
                assert?: string | string[];
                /** Per attempt. Default '5s'. */
                timeout?: string | HumanDuration;
                /** Extra attempts after a failure. Default 0. */
                retries?: number;
                /** Default '1s'. */
                retryDelay?: string | HumanDuration;
              }>;
            };
            /** A bounded load test of the stage's own url after the deploy. */
            load?: {
              /** Below the stage url. Default '/'. */
              path?: string;
              /** Default GET. */
              method?: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
              body?: string | object;
              headers?: { [name: string]: string };
              /** 1-200. Default 10. */
              connections?: number;
              /** At most '5m'; with requests, whichever comes first. */
              duration?: string | HumanDuration;
              /** 1-1,000,000. */
              requests?: number;
              /** Target requests per second overall. */
              rate?: number;
              /** Per request. Default '10s'. */
              timeout?: string | HumanDuration;
              /** At least one. */
              thresholds: {
                p95?: string | HumanDuration;
                p99?: string | HumanDuration;
                /** 0..1 */
                errorRate?: number;
                /** Responses per second. */
                minThroughput?: number;
              };
            };
            /** Kubernetes Jobs run after the approval, before the deploy (a migration). */
            job?: {
              migration: {
                /** The argv to run (no shell), e.g. ['./migrate', 'up']. */
                command: string[];
                args?: string[];
                /** Default '10m'. */
                timeout?: string | HumanDuration;
                /** Retries after a failed pod (0-10). Default 0. */
                backoffLimit?: number;
                /** Extra environment variables. */
                env?: { [name: string]: string };
              };
              /** Runs before the migration; the migration does not run when it fails. */
              backup?: {
                /** Default: the release image. */
                image?: string;
                /** The argv to run (no shell), e.g. ['./migrate', 'up']. */
                command: string[];
                args?: string[];
                /** Default '10m'. */
                timeout?: string | HumanDuration;
                /** Retries after a failed pod (0-10). Default 0. */
                backoffLimit?: number;
                /** Extra environment variables. */
                env?: { [name: string]: string };
              };
              /** Give the Jobs the Deployment's env, envFrom, serviceAccountName, imagePullSecrets. Default true. */
              inheritFromDeployment?: boolean;
            };
            /** Before the approval: the stage namespace is isolated from the other stages. */
            isolation?:
              | boolean
              | {
                  /** The namespace label that names the environment. Default 'environment'. */
                  environmentLabel?: string;
                  /**
                   * The namespace Backstage runs in on the stage's cluster: the
                   * stage must admit it (smoke and load checks come from there).
                   */
                  observerNamespace?: string;
                };
            /** Before the approval: the Secrets and ConfigMaps the workload references exist here. */
            parity?:
              | boolean
              | {
                  /**
                   * 'keys' (default): check the keys containers take (those
                   * Secrets read whole, values dropped); 'names': existence
                   * only, every Secret read as metadata.
                   */
                  secrets?: 'keys' | 'names';
                };
            /**
             * PromQL checks against progression.prometheus, sampled over time;
             * without one configured, only `optional` checks are accepted.
             */
            metrics?: Array<{
              /** Lowercase letters, digits and '-'; unique in the stage. */
              name: string;
              /** 'preflight' (before the approval) or 'verification' (after the deploy, default). */
              when?: 'preflight' | 'verification';
              /**
               * PromQL returning one value; `{{ namespace }}`, `{{ app }}`,
               * `{{ stage }}`, `{{ entity }}`, `{{ version }}` inside
               * double-quoted label values (checked and escaped).
               */
              query: string;
              /** '<= 0.05' (absolute) or '<= +10%' (relative to the last successful release here). */
              condition: string;
              /** How values are shown: ratio (as %), seconds or ms (as ms), rps, none. */
              unit?: 'ratio' | 'seconds' | 'ms' | 'rps' | 'none';
              /** Between samples. Default '10s'. */
              interval?: string | HumanDuration;
              /** Samples to take. Default 3. */
              count?: number;
              /** Wait before the first sample. Default 0. */
              initialDelay?: string | HumanDuration;
              /** Failed samples tolerated. Default 0. */
              failureLimit?: number;
              /** Inconclusive samples tolerated. Default 0. */
              inconclusiveLimit?: number;
              /** Errors in a row tolerated. Default 2. */
              consecutiveErrorLimit?: number;
              /** What an empty result or NaN counts as. Default 'fail'. */
              noData?: 'fail' | 'pass' | 'inconclusive';
              /** Below `min` of this query a sample is inconclusive, not passed. */
              minTraffic?: { query: string; min: number };
              /** Pass (as skipped) when the configured Prometheus could not measure anything. Default false. */
              passIfUnmeasurable?: boolean;
              /**
               * Accept the check on a backend without progression.prometheus;
               * it is then recorded as skipped, "optional, not measured".
               * No effect when a Prometheus is configured. Default false.
               */
              optional?: boolean;
            }>;
          };
        }>;
      };
    };
  };
}
