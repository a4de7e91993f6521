import {
  coreServices,
  createBackendModule,
} from '@backstage/backend-plugin-api';
import { progressionGatesExtensionPoint } from '@progression-io/backstage-plugin-progression-node';
import { WebhookGate } from './WebhookGate';

/**
 * Adds the `webhook` gate to Progression: stages may ask HTTP webhooks
 * whether a promotion may go on.
 *
 * @public
 */
export const progressionModuleWebhook = createBackendModule({
  pluginId: 'progression',
  moduleId: 'webhook',
  register(env) {
    env.registerInit({
      deps: {
        gates: progressionGatesExtensionPoint,
        logger: coreServices.logger,
      },
      async init({ gates, logger }) {
        gates.addGate(new WebhookGate({ logger }));
      },
    });
  },
});
