import { AuthService, DiscoveryService } from '@backstage/backend-plugin-api';
import { createTemplateAction } from '@backstage/plugin-scaffolder-node';

/** `progression:promote` — TO BE IMPLEMENTED. */
export function createPromoteAction(_options: {
  discovery: DiscoveryService;
  auth: AuthService;
}) {
  return createTemplateAction({
    id: 'progression:promote',
    description: 'TO BE IMPLEMENTED',
    schema: { input: { entityRef: z => z.string() } },
    async handler(ctx) {
      ctx.logger.info('not implemented yet');
    },
  });
}
