import { Entity } from '@backstage/catalog-model';

/**
 * Names the pipeline (a key of `progression.pipelines` in app-config) that
 * takes this entity's releases through its stages.
 *
 * @public
 */
export const PROGRESSION_PIPELINE_ANNOTATION =
  'progression.backstage.io/pipeline';

/**
 * The label value that finds the entity's workload in every stage, the same
 * convention as the Kubernetes plugin.
 *
 * @public
 */
export const KUBERNETES_ID_ANNOTATION = 'backstage.io/kubernetes-id';

/**
 * The pipeline name an entity opts into, or undefined when it does not use
 * Progression.
 *
 * @public
 */
export function getPipelineName(entity: Entity): string | undefined {
  const value = entity.metadata.annotations?.[PROGRESSION_PIPELINE_ANNOTATION];
  const trimmed = value?.trim();
  return trimmed ? trimmed : undefined;
}

/**
 * True when the entity opts into Progression; used to show the Environments
 * tab only where it has something to say.
 *
 * @public
 */
export function isProgressionAvailable(entity: Entity): boolean {
  return getPipelineName(entity) !== undefined;
}

/**
 * The `backstage.io/kubernetes-id` label value of the entity's workload: the
 * annotation, or the entity name when it has none.
 *
 * @public
 */
export function getKubernetesId(entity: Entity): string {
  return (
    entity.metadata.annotations?.[KUBERNETES_ID_ANNOTATION]?.trim() ||
    entity.metadata.name
  );
}

/**
 * The container of the stage Deployments that runs the release, when they
 * have more than one. Without it the first container is used.
 *
 * @public
 */
export const PROGRESSION_CONTAINER_ANNOTATION =
  'progression.backstage.io/container';

/**
 * Prefix of the annotations that override a stage's URL for this entity:
 * `progression.backstage.io/url.<stage>`. An override may only narrow the
 * configured URL: it must keep the configured URL's origin (scheme, host and
 * port); the backend ignores one that does not.
 *
 * @public
 */
export const PROGRESSION_STAGE_URL_ANNOTATION_PREFIX =
  'progression.backstage.io/url.';

/**
 * The container name the entity asks for, if any.
 *
 * @public
 */
export function getContainerName(entity: Entity): string | undefined {
  return (
    entity.metadata.annotations?.[PROGRESSION_CONTAINER_ANNOTATION]?.trim() ||
    undefined
  );
}

/**
 * The entity's URL override for a stage, if it has one (not yet checked
 * against the configured URL).
 *
 * @public
 */
export function getStageUrlOverride(
  entity: Entity,
  stage: string,
): string | undefined {
  return (
    entity.metadata.annotations?.[
      `${PROGRESSION_STAGE_URL_ANNOTATION_PREFIX}${stage}`
    ]?.trim() || undefined
  );
}
