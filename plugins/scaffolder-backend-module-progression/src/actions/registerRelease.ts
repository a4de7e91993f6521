import { AuthService, DiscoveryService } from '@backstage/backend-plugin-api';
import { createTemplateAction } from '@backstage/plugin-scaffolder-node';

/** `progression:release:register` — TO BE IMPLEMENTED. */
export function createRegisterReleaseAction(_options: {
  discovery: DiscoveryService;
  auth: AuthService;
}) {
  return createTemplateAction({
    id: 'progression:release:register',
    description: 'TO BE IMPLEMENTED',
    schema: { input: { entityRef: z => z.string() } },
    async handler(ctx) {
      ctx.logger.info('not implemented yet');
    },
  });
}
