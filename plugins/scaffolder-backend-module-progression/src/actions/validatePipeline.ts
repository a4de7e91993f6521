import { Config } from '@backstage/config';
import { createTemplateAction } from '@backstage/plugin-scaffolder-node';

/** `progression:pipeline:validate` — TO BE IMPLEMENTED. */
export function createValidatePipelineAction(_options: { config: Config }) {
  return createTemplateAction({
    id: 'progression:pipeline:validate',
    description: 'TO BE IMPLEMENTED',
    schema: { input: { entityRef: z => z.string() } },
    async handler(ctx) {
      ctx.logger.info('not implemented yet');
    },
  });
}
