/**
 * One environment of a pipeline, as the REST API returns it.
 *
 * @public
 */
export interface Stage {
  /** Unique within its pipeline, for example `staging`. */
  name: string;
  /** Human-readable name, defaults to `name`. */
  title: string;
  /** The name of a configured cluster. */
  cluster: string;
  /** The namespace that holds the entity's workload in this stage. */
  namespace: string;
  /** Base URL of the stage for smoke and load checks, entity values filled in. */
  url?: string;
}

/**
 * An ordered list of stages that a release goes through.
 *
 * @public
 */
export interface Pipeline {
  name: string;
  title: string;
  description?: string;
  stages: Stage[];
}

/**
 * The environments of one catalog entity: its pipeline and how its workload
 * is found in each stage.
 *
 * @public
 */
export interface EntityEnvironments {
  /** Full entity reference, for example `component:default/payments-api`. */
  entityRef: string;
  pipeline: Pipeline;
  /** The `backstage.io/kubernetes-id` label value (the entity name when the annotation is absent). */
  kubernetesId: string;
}
