import { HttpAuthService } from '@backstage/backend-plugin-api';
import { stringifyEntityRef } from '@backstage/catalog-model';
import { NotFoundError } from '@backstage/errors';
import { createValidatedOpenApiRouter } from '@backstage/backend-openapi-utils';
import { CatalogService } from '@backstage/plugin-catalog-node';
import express from 'express';
import { ProgressionConfig } from '../config/readProgressionConfig';
import { spec } from '../schema/openapi/generated';
import { describeEnvironments } from './describeEnvironments';

export interface RouterOptions {
  httpAuth: HttpAuthService;
  catalog: CatalogService;
  config: ProgressionConfig;
}

/**
 * The REST API of src/schema/openapi.yaml. Requests and responses are
 * validated against it; each handler authenticates, then calls one function.
 */
export async function createRouter(
  options: RouterOptions,
): Promise<express.Router> {
  const { httpAuth, catalog, config } = options;
  const router = createValidatedOpenApiRouter(spec);

  router.get(
    '/v1/entities/:kind/:namespace/:name/environments',
    async (req, res) => {
      const credentials = await httpAuth.credentials(req, {
        allow: ['user', 'service'],
      });
      const ref = {
        kind: req.params.kind,
        namespace: req.params.namespace,
        name: req.params.name,
      };
      const entity = await catalog.getEntityByRef(ref, { credentials });
      if (!entity) {
        throw new NotFoundError(
          `No entity '${stringifyEntityRef(ref)}' in the catalog`,
        );
      }
      res.json(describeEnvironments(entity, config));
    },
  );

  return router;
}
