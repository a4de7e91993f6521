import { HumanDuration } from '@backstage/types';

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
      /** How the backend authenticates to the cluster. */
      authProvider?: 'serviceAccount';
      /**
       * Bearer token of the service account the backend acts as.
       * @visibility secret
       */
      serviceAccountToken?: string;
      /** Base64-encoded PEM of the certificate authority of the API server. */
      caData?: string;
      /** Skip TLS verification of the API server (local clusters only). */
      skipTLSVerify?: boolean;
    }>;

    /** The promotion worker that runs in every backend replica. */
    worker?: {
      /** How often a running promotion's claim is renewed. Default '10s'. */
      heartbeatInterval?: string | HumanDuration;
      /** A claim not renewed for this long is taken over by another replica. Default '1m'. */
      staleAfter?: string | HumanDuration;
    };

    /**
     * The Prometheus that metric gates and the Environments tab's charts
     * read. Without it, metric gates are skipped (saying why).
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
     * Pipelines, by name. An entity opts into one with the annotation
     * `progression.backstage.io/pipeline: <name>`.
     */
    pipelines?: {
      [name: string]: {
        /** Human-readable name of the pipeline. */
        title?: string;
        /** What the pipeline is for. */
        description?: string;
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
          };
        }>;
      };
    };
  };
}
