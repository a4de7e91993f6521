import { Entity, stringifyEntityRef } from '@backstage/catalog-model';
import { AuthService, DiscoveryService } from '@backstage/backend-plugin-api';
import { InputError, NotFoundError } from '@backstage/errors';
import { CatalogService } from '@backstage/plugin-catalog-node';
import { createTemplateAction } from '@backstage/plugin-scaffolder-node';
import { EntityValidation } from '@progression-io/backstage-plugin-progression-common';
import { examples } from './validatePipeline.examples';
import { ProgressionClient, parseEntityRefInput } from './progressionClient';

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
  discovery: DiscoveryService;
  auth: AuthService;
  catalog: CatalogService;
}) {
  const { discovery, auth, catalog } = options;
  return createTemplateAction({
    id: 'progression:pipeline:validate',
    description:
      'Asks Progression whether an entity is ready for the pipelines it runs: the progression.backstage.io/pipeline annotation is present and names a configured pipeline ' +
      '(whose stages and clusters Progression checked at start-up), and the workload label (backstage.io/kubernetes-id, or the entity name) is a valid Kubernetes label value. ' +
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

      // Progression checks it against the pipelines it runs (POST /v1/validate).
      const result: EntityValidation = await new ProgressionClient({
        discovery,
        auth,
        credentials: await ctx.getInitiatorCredentials(),
        signal: ctx.signal,
      }).validateEntity(entity);
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
