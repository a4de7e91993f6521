import { Entity, stringifyEntityRef } from '@backstage/catalog-model';
import { NotFoundError } from '@backstage/errors';
import {
  EntityEnvironments,
  PROGRESSION_PIPELINE_ANNOTATION,
  getKubernetesId,
  getPipelineName,
  getStageUrlOverride,
} from '@progression-io/backstage-plugin-progression-common';
import {
  GateDefinition,
  GatePhase,
  configuredPhases,
} from '@progression-io/backstage-plugin-progression-node';
import { resolveStageUrl } from '../config/stageUrl';
import {
  PipelineConfig,
  ProgressionConfig,
  StageConfig,
} from '../config/types';

/**
 * The entity's configured pipeline. Throws NotFoundError, saying what to do
 * about it, for an entity that does not use Progression or names an unknown
 * pipeline.
 */
export function pipelineOf(
  entity: Entity,
  config: ProgressionConfig,
): PipelineConfig {
  const entityRef = stringifyEntityRef(entity);
  const pipelineName = getPipelineName(entity);
  if (!pipelineName) {
    throw new NotFoundError(
      `${entityRef} does not use Progression: add the annotation '${PROGRESSION_PIPELINE_ANNOTATION}: <pipeline>' to its catalog-info.yaml`,
    );
  }
  const pipeline = config.pipelines.get(pipelineName);
  if (!pipeline) {
    const known = [...config.pipelines.keys()];
    throw new NotFoundError(
      `${entityRef} uses pipeline '${pipelineName}', which is not configured; ${
        known.length
          ? `configured pipelines: ${known.join(', ')}`
          : 'no pipelines are configured (progression.pipelines)'
      }`,
    );
  }
  return pipeline;
}

/**
 * The gates a promotion into the stage runs, in the order they run, with
 * when each runs: every installed gate the stage (or, for gates such as
 * soak, the stage before it) configures, and the approval when it needs one.
 */
export function configuredGates(
  stage: StageConfig,
  source: StageConfig | undefined,
  gates: readonly GateDefinition<any>[],
): { gate: string; phase: string }[] {
  const inPhase = (phase: GatePhase) =>
    gates
      .filter(g => configuredPhases(g, stage, source).includes(phase))
      .map(g => ({ gate: g.name, phase }));
  return [
    ...inPhase('preflight'),
    ...(stage.approval.required
      ? [{ gate: 'approval', phase: 'approval' }]
      : []),
    ...inPhase('predeploy'),
    ...inPhase('verification'),
  ];
}

/**
 * The stage's URL for the entity (see resolveStageUrl), and why an
 * override in its annotations was ignored, if it was.
 */
export function stageUrlOf(
  entity: Entity,
  stage: StageConfig,
): { url?: string; urlOverrideIgnored?: string } {
  const { url, ignored } = resolveStageUrl(
    stage.url,
    {
      'entity.name': entity.metadata.name,
      'entity.namespace': entity.metadata.namespace ?? 'default',
      kubernetesId: getKubernetesId(entity),
      'stage.name': stage.name,
      'stage.namespace': stage.namespace,
    },
    getStageUrlOverride(entity, stage.name),
  );
  return {
    ...(url && { url }),
    ...(ignored && { urlOverrideIgnored: ignored }),
  };
}

/**
 * The entity's pipeline with its stages in order, their URLs filled in with
 * the entity's values. Throws NotFoundError, with what to do about it, for an
 * entity that does not use Progression or names an unknown pipeline.
 */
export function describeEnvironments(
  entity: Entity,
  config: ProgressionConfig,
  gates: readonly GateDefinition<any>[],
): EntityEnvironments {
  const entityRef = stringifyEntityRef(entity);
  const pipeline = pipelineOf(entity, config);

  const kubernetesId = getKubernetesId(entity);

  return {
    entityRef,
    kubernetesId,
    pipeline: {
      name: pipeline.name,
      title: pipeline.title,
      ...(pipeline.description && { description: pipeline.description }),
      stages: pipeline.stages.map((stage, i) => ({
        name: stage.name,
        title: stage.title,
        cluster: stage.cluster,
        namespace: stage.namespace,
        ...stageUrlOf(entity, stage),
        configuredGates: configuredGates(stage, pipeline.stages[i - 1], gates),
      })),
    },
  };
}
