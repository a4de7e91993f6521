/*
 * A Backstage backend with the Progression plugin, run as its own process
 * by the durability test (so that it can be killed with SIGKILL). Its config
 * comes as JSON in PROGRESSION_TEST_CONFIG; auth, the catalog and the
 * permission policy are Backstage's test doubles.
 */
import { createBackend } from '@backstage/backend-defaults';
import { mockServices } from '@backstage/backend-test-utils';
import { catalogServiceMock } from '@backstage/plugin-catalog-node/testUtils';
import { AuthorizeResult } from '@backstage/plugin-permission-common';

const { config, entities } = JSON.parse(process.env.PROGRESSION_TEST_CONFIG!);

const backend = createBackend();
backend.add(mockServices.rootConfig.factory({ data: config }));
backend.add(mockServices.auth.factory());
backend.add(mockServices.httpAuth.factory());
backend.add(
  mockServices.permissions.factory({ result: AuthorizeResult.ALLOW }),
);
backend.add(catalogServiceMock.factory({ entities }));
backend.add(import('../src'));
backend.start();
