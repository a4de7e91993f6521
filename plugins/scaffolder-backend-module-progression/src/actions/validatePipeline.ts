import { Entity, stringifyEntityRef } from '@backstage/catalog-model';
import { Config } from '@backstage/config';
import { InputError, NotFoundError } from '@backstage/errors';
import { CatalogService } from '@backstage/plugin-catalog-node';
import { createTemplateAction } from '@backstage/plugin-scaffolder-node';
import {
  KUBERNETES_ID_ANNOTATION,
  PROGRESSION_PIPELINE_ANNOTATION,
  getKubernetesId,
  getPipelineName,
} from '@internal/backstage-plugin-progression-common';
import {
  ProgressionConfig,
  ProgressionConfigError,
  readProgressionConfig,
} from '@internal/backstage-plugin-progression-backend';
import { examples } from './validatePipeline.examples';
import { parseEntityRefInput } from './progressionClient';

// A Kubernetes label value: at most 63 characters, alphanumerics at both
// ends, '-', '_' and '.' between.
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/** What the validation found; `valid` when there are no problems. */
export interface PipelineValidation {
  valid: boolean;
  pipeline?: string;
  stages: string[];
  kubernetesId: string;
  problems: string[];
  warnings: string[];
}

/** A pipeline's stages as the raw config has them, for a config that does not read. */
function rawStages(config: Config, pipeline: string) {
  return (
    config.getOptionalConfigArray(`progression.pipelines.${pipeline}.stages`) ??
    []
  ).map((stage, i) => ({
    index: i,
    name: stage.getOptionalString('name') ?? `#${i + 1}`,
    cluster: stage.getOptionalString('cluster'),
  }));
}

/** Cluster names as the raw config has them. */
function rawClusters(config: Config): string[] {
  const names = (config.getOptionalConfigArray('progression.clusters') ?? [])
    .map(c => c.getOptionalString('name'))
    .filter((n): n is string => !!n);
  for (const method of config.getOptionalConfigArray(
    'kubernetes.clusterLocatorMethods',
  ) ?? []) {
    if (method.getOptionalString('type') !== 'config') continue;
    for (const c of method.getOptionalConfigArray('clusters') ?? []) {
      const name = c.getOptionalString('name');
      if (name) names.push(name);
    }
  }
  return names;
}

const list = (names: string[]) => names.map(n => `'${n}'`).join(', ');

/**
 * Checks an entity against the Progression configuration the way the
 * backend reads it: the pipeline annotation, the pipeline, its stages and
 * their clusters, and the workload label.
 */
export function validateEntityPipeline(
  entity: Entity,
  config: Config,
): PipelineValidation {
  const problems: string[] = [];
  const warnings: string[] = [];

  // The backend refuses to start with a configuration it cannot read
  // (an unknown cluster, a pipeline without stages, ...).
  let progression: ProgressionConfig | undefined;
  let configError: { key?: string; message: string } | undefined;
  try {
    progression = readProgressionConfig(config);
  } catch (e) {
    configError = {
      key: e instanceof ProgressionConfigError ? e.key : undefined,
      message: (e as Error).message,
    };
  }
  const pipelineNames = progression
    ? [...progression.pipelines.keys()]
    : config.getOptionalConfig('progression.pipelines')?.keys() ?? [];

  // The workload label that finds the entity's Deployment in every stage.
  const kubernetesId = getKubernetesId(entity);
  const annotated =
    entity.metadata.annotations?.[KUBERNETES_ID_ANNOTATION]?.trim();
  if (!annotated) {
    warnings.push(
      `the entity has no ${KUBERNETES_ID_ANNOTATION} annotation, so its workload is found by the label ${KUBERNETES_ID_ANNOTATION}=${kubernetesId} (the entity name)`,
    );
  }
  if (kubernetesId.length > 63 || !LABEL_VALUE.test(kubernetesId)) {
    problems.push(
      `'${kubernetesId}' (${
        annotated
          ? `the ${KUBERNETES_ID_ANNOTATION} annotation`
          : 'the entity name'
      }) is not a valid Kubernetes label value: use at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit`,
    );
  }

  const pipeline = getPipelineName(entity);
  let stages: string[] = [];
  if (!pipeline) {
    problems.push(
      `the entity has no ${PROGRESSION_PIPELINE_ANNOTATION} annotation; add one naming a pipeline${
        pipelineNames.length
          ? ` (configured: ${list(pipelineNames)})`
          : ', once one is configured in progression.pipelines'
      }`,
    );
  } else if (!pipelineNames.includes(pipeline)) {
    problems.push(
      `pipeline '${pipeline}' (${PROGRESSION_PIPELINE_ANNOTATION}) is not configured; ${
        pipelineNames.length
          ? `configured pipelines: ${list(pipelineNames)}`
          : 'no pipelines are configured (progression.pipelines)'
      }`,
    );
  } else if (progression) {
    stages = progression.pipelines.get(pipeline)!.stages.map(s => s.name);
  } else {
    // The configuration does not read: say what it means for this pipeline.
    const raw = rawStages(config, pipeline);
    const clusters = rawClusters(config);
    stages = raw.map(s => s.name);
    raw.forEach(stage => {
      if (stage.cluster !== undefined && !clusters.includes(stage.cluster)) {
        problems.push(
          `stage '${
            stage.name
          }' of pipeline '${pipeline}' deploys to cluster '${
            stage.cluster
          }', which is not configured; ${
            clusters.length
              ? `configured clusters: ${list(clusters)}`
              : 'no clusters are configured (progression.clusters)'
          }`,
        );
      }
    });
  }
  if (pipeline && pipelineNames.includes(pipeline) && stages.length === 0) {
    problems.push(`pipeline '${pipeline}' has no stages`);
  }
  if (configError) {
    const aboutUnknownCluster = /\.stages\[\d+\]\.cluster$/.test(
      configError.key ?? '',
    );
    const reported =
      aboutUnknownCluster &&
      configError.key!.startsWith(`progression.pipelines.${pipeline}.`);
    if (!reported || problems.length === 0) {
      problems.push(
        `the Progression configuration does not read, so the backend will not start: ${configError.message}`,
      );
    }
  }

  return {
    valid: problems.length === 0,
    pipeline,
    stages,
    kubernetesId,
    problems,
    warnings,
  };
}

/** An inline entity as far as the checks need one. */
function toEntity(value: Record<string, unknown>): Entity {
  const metadata = value.metadata as Record<string, unknown> | undefined;
  if (
    !metadata ||
    typeof metadata !== 'object' ||
    typeof metadata.name !== 'string' ||
    !metadata.name
  ) {
    throw new InputError(
      'entity must be a catalog entity with at least metadata.name, as in catalog-info.yaml',
    );
  }
  const annotations = metadata.annotations;
  if (
    annotations !== undefined &&
    (typeof annotations !== 'object' ||
      annotations === null ||
      Object.values(annotations).some(v => typeof v !== 'string'))
  ) {
    throw new InputError(
      'entity.metadata.annotations must map annotation names to strings',
    );
  }
  return {
    apiVersion: 'backstage.io/v1alpha1',
    kind: 'Component',
    ...value,
  } as Entity;
}

/**
 * `progression:pipeline:validate`: checks that an entity, from the catalog
 * or inline, is ready for Progression.
 *
 * @public
 */
export function createValidatePipelineAction(options: {
  config: Config;
  catalog: CatalogService;
}) {
  const { config, catalog } = options;
  return createTemplateAction({
    id: 'progression:pipeline:validate',
    description:
      'Checks that an entity is ready for Progression against the configured pipelines: the progression.backstage.io/pipeline annotation is present and names a configured pipeline ' +
      'with at least one stage, every stage deploys to a configured cluster, and the workload label (backstage.io/kubernetes-id, or the entity name) is a valid Kubernetes label value. ' +
      'Takes a catalog entity by reference, or an inline entity (such as the catalog-info.yaml a template is about to register). Read-only: runs in dry runs too.',
    examples,
    supportsDryRun: true,
    schema: {
      input: {
        entityRef: z =>
          z
            .string()
            .optional()
            .describe(
              'The catalog entity to check, for example component:default/payments-api. Read with the permissions of the user running the task. Give this or entity',
            ),
        entity: z =>
          z
            .record(z.any())
            .optional()
            .describe(
              'An entity to check that is not (yet) in the catalog, as in catalog-info.yaml. Give this or entityRef',
            ),
        failOnProblems: z =>
          z
            .boolean()
            .optional()
            .describe(
              'Fail the step, listing every problem, when the entity is not ready. Default: true',
            ),
      },
      output: {
        valid: z => z.boolean().describe('True when there are no problems'),
        pipeline: z =>
          z
            .string()
            .optional()
            .describe("The pipeline the entity's annotation names"),
        stages: z =>
          z.array(z.string()).describe("The pipeline's stage names, in order"),
        kubernetesId: z =>
          z
            .string()
            .describe(
              "The label value (backstage.io/kubernetes-id) that finds the entity's workload in every stage",
            ),
        problems: z =>
          z
            .array(z.string())
            .describe('What stops Progression from working for the entity'),
        warnings: z =>
          z
            .array(z.string())
            .describe(
              'What works, but maybe not as intended (such as a defaulted workload label)',
            ),
      },
    },
    async handler(ctx) {
      const { entityRef, entity: inline } = ctx.input;
      const failOnProblems = ctx.input.failOnProblems ?? true;
      if (entityRef === undefined && inline === undefined) {
        throw new InputError(
          'Give the entity to check: entityRef for a catalog entity, or entity for one not in the catalog yet',
        );
      }
      if (entityRef !== undefined && inline !== undefined) {
        throw new InputError('Give either entityRef or entity, not both');
      }
      let entity: Entity;
      if (entityRef !== undefined) {
        const ref = stringifyEntityRef(parseEntityRefInput(entityRef));
        const found = await catalog.getEntityByRef(ref, {
          credentials: await ctx.getInitiatorCredentials(),
        });
        if (!found) {
          throw new NotFoundError(
            `No entity '${ref}' in the catalog (or you may not see it)`,
          );
        }
        entity = found;
      } else {
        entity = toEntity(inline!);
      }
      const name = stringifyEntityRef(entity);

      const result = validateEntityPipeline(entity, config);
      for (const warning of result.warnings) ctx.logger.warn(warning);
      for (const problem of result.problems) ctx.logger.error(problem);
      if (result.valid) {
        ctx.logger.info(
          `${name} is ready for Progression: pipeline '${
            result.pipeline
          }', stages ${result.stages.join(' → ')}`,
        );
      }
      ctx.output('valid', result.valid);
      if (result.pipeline) ctx.output('pipeline', result.pipeline);
      ctx.output('stages', result.stages);
      ctx.output('kubernetesId', result.kubernetesId);
      ctx.output('problems', result.problems);
      ctx.output('warnings', result.warnings);
      if (!result.valid && failOnProblems) {
        throw new InputError(
          `${name} is not ready for Progression:\n${result.problems
            .map(p => `- ${p}`)
            .join('\n')}`,
        );
      }
    },
  });
}
