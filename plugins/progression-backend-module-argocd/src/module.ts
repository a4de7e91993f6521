import {
  coreServices,
  createBackendModule,
} from '@backstage/backend-plugin-api';
import { progressionDeployersExtensionPoint } from '@progression-io/backstage-plugin-progression-node';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ArgoCdDeployer } from './ArgoCdDeployer';

/**
 * Adds the `argocd` deployer to Progression: stages with
 * `deploy.kind: argocd` promote by a Git commit to their Kustomize overlay
 * and an Argo CD sync.
 *
 * @public
 */
export const progressionModuleArgoCd = createBackendModule({
  pluginId: 'progression',
  moduleId: 'argocd',
  register(env) {
    env.registerInit({
      deps: {
        deployers: progressionDeployersExtensionPoint,
        config: coreServices.rootConfig,
        logger: coreServices.logger,
        lifecycle: coreServices.rootLifecycle,
      },
      async init({ deployers, config, logger, lifecycle }) {
        // The manifests repositories' objects, fetched again after a
        // restart; a folder of this process's own.
        const cacheDir = await fs.promises.mkdtemp(
          path.join(
            config.getOptionalString('backend.workingDirectory') ?? os.tmpdir(),
            'progression-gitops-',
          ),
        );
        lifecycle.addShutdownHook(() =>
          fs.promises.rm(cacheDir, { recursive: true, force: true }),
        );
        deployers.addDeployer(new ArgoCdDeployer({ config, logger, cacheDir }));
      },
    });
  },
});
