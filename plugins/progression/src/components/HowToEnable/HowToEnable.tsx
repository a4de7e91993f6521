import { CodeSnippet, EmptyState } from '@backstage/core-components';
import { Entity } from '@backstage/catalog-model';
import {
  KUBERNETES_ID_ANNOTATION,
  PROGRESSION_PIPELINE_ANNOTATION,
} from '@progression-io/backstage-plugin-progression-common';

/**
 * What an entity without the pipeline annotation shows: the two lines to
 * add to its catalog-info.yaml.
 */
export function HowToEnable({ entity }: { entity: Entity }) {
  const snippet = `metadata:
  name: ${entity.metadata.name}
  annotations:
    ${PROGRESSION_PIPELINE_ANNOTATION}: <pipeline>  # a key of progression.pipelines in app-config
    ${KUBERNETES_ID_ANNOTATION}: ${entity.metadata.name}  # label of its workload in each stage`;
  return (
    <EmptyState
      missing="field"
      title="This entity does not use Progression yet"
      description={`Progression takes a release through the stages of a pipeline, with gates, approvals and automatic rollback. To enable it, add the ${PROGRESSION_PIPELINE_ANNOTATION} annotation to the entity's catalog-info.yaml, naming one of the pipelines your platform team configured:`}
      action={<CodeSnippet language="yaml" text={snippet} showCopyCodeButton />}
    />
  );
}
