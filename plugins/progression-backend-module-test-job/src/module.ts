import { createBackendModule } from '@backstage/backend-plugin-api';
import { progressionGatesExtensionPoint } from '@progression-io/backstage-plugin-progression-node';
import { TestJobGate } from './TestJobGate';

/**
 * Adds the `testJob` gate to Progression: stages may run a test image as a
 * Kubernetes Job after the deploy.
 *
 * @public
 */
export const progressionModuleTestJob = createBackendModule({
  pluginId: 'progression',
  moduleId: 'test-job',
  register(env) {
    env.registerInit({
      deps: { gates: progressionGatesExtensionPoint },
      async init({ gates }) {
        gates.addGate(new TestJobGate());
      },
    });
  },
});
