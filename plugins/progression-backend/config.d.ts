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
        }>;
      };
    };
  };
}
