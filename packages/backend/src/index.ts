/*
 * The demo backend: Backstage with the Progression backend plugin, an
 * in-memory SQLite database and guest sign-in (see app-config.yaml).
 */

import { createBackend } from '@backstage/backend-defaults';

const backend = createBackend();

backend.add(import('@backstage/plugin-app-backend'));
backend.add(import('@backstage/plugin-proxy-backend'));

// scaffolder plugin
backend.add(import('@backstage/plugin-scaffolder-backend'));
// Progression's actions: register a release, promote, validate a pipeline
backend.add(
  import(
    '@progression-io/backstage-plugin-scaffolder-backend-module-progression'
  ),
);
backend.add(
  import('@backstage/plugin-scaffolder-backend-module-notifications'),
);

// auth plugin, with guest sign-in for the demo
backend.add(import('@backstage/plugin-auth-backend'));
backend.add(import('@backstage/plugin-auth-backend-module-guest-provider'));

// catalog plugin
backend.add(import('@backstage/plugin-catalog-backend'));
backend.add(
  import('@backstage/plugin-catalog-backend-module-scaffolder-entity-model'),
);
backend.add(import('@backstage/plugin-catalog-backend-module-logs'));

// permission plugin, with the demo's policy: owners promote and roll back
backend.add(import('@backstage/plugin-permission-backend'));
backend.add(import('./permissionPolicy'));

// search plugin, with the in-memory Lunr engine
backend.add(import('@backstage/plugin-search-backend'));
backend.add(import('@backstage/plugin-search-backend-module-catalog'));

// user settings, notifications and signals plugins
backend.add(import('@backstage/plugin-user-settings-backend'));
backend.add(import('@backstage/plugin-notifications-backend'));
backend.add(import('@backstage/plugin-signals-backend'));

// kubernetes plugin: the Kubernetes tab beside Environments, on the same
// cluster (kubernetes.clusterLocatorMethods in app-config.yaml)
backend.add(import('@backstage/plugin-kubernetes-backend'));

// progression: pipelines, promotions, gates and rollbacks
backend.add(import('@progression-io/backstage-plugin-progression-backend'));
// gates from modules, added through Progression's extension point
backend.add(
  import(
    '@progression-io/backstage-plugin-progression-backend-module-test-job'
  ),
);
backend.add(
  import('@progression-io/backstage-plugin-progression-backend-module-webhook'),
);
// GitOps stages (deploy.kind: argocd): a commit to the stage's Kustomize
// overlay and an Argo CD sync, through Progression's deployer extension point
backend.add(
  import('@progression-io/backstage-plugin-progression-backend-module-argocd'),
);

backend.start();
