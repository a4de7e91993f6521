import { InputError } from '@backstage/errors';
import Ajv, { ErrorObject, ValidateFunction } from 'ajv';
import type { RequestHandler } from 'express';

/** What this module reads of an OpenAPI document. */
export interface ParameterSpec {
  readonly paths: {
    readonly [path: string]: {
      readonly [method: string]: unknown;
    };
  };
  readonly components?: {
    readonly parameters?: { readonly [name: string]: unknown };
  };
}

type Parameter = {
  name: string;
  in: string;
  required?: boolean;
  allowEmptyValue?: boolean;
  schema?: { type?: unknown; [keyword: string]: unknown };
};

const ajv = new Ajv({ allErrors: false, strict: false });

/** `/v1/entities/{kind}` as express writes it: `/v1/entities/:kind`. */
export const expressPath = (specPath: string) =>
  specPath.replace(/\{([A-Za-z0-9_]+)\}/g, ':$1');

/**
 * A check of one operation's path and query parameters against their
 * schemas in the OpenAPI document, compiled once, for a route served
 * before express-openapi-validator. The validator finds a request's
 * operation by compiling the path pattern of every route in the document
 * again on every request (express-openapi-validator 5.6, lookupRoute):
 * about a fifth of the time of a read the Environments tab polls. Here
 * express has matched the route already. The rules are the validator's
 * as Backstage sets it up (no type coercion, no unknown query parameters,
 * no empty values unless allowed), in its words, and a failure is a 400
 * InputError; parameterCheck.test.ts holds the two answers side by side.
 *
 * Only string parameters: a query value is a string, and the validator
 * would coerce other types. An operation with another kind of parameter
 * (or a header or a body) is refused when the router is built.
 */
export function parameterCheck(
  spec: ParameterSpec,
  specPath: string,
  method: string = 'get',
): RequestHandler {
  const operation = spec.paths[specPath]?.[method] as
    | { parameters?: unknown[]; requestBody?: unknown }
    | undefined;
  if (!operation) {
    throw new Error(`The OpenAPI document has no ${method} ${specPath}`);
  }
  if (operation.requestBody) {
    throw new Error(`${method} ${specPath} has a body; it is not checked here`);
  }
  const parameters = (operation.parameters ?? []).map(p => resolve(spec, p));
  for (const p of parameters) {
    if (!['path', 'query'].includes(p.in) || p.schema?.type !== 'string') {
      throw new Error(
        `${method} ${specPath}: parameter ${p.name} (in ${p.in}) is not a string in the path or the query`,
      );
    }
  }
  const validatorOf = (own: Parameter[]) =>
    ajv.compile({
      type: 'object',
      properties: Object.fromEntries(own.map(p => [p.name, p.schema ?? {}])),
      required: own.filter(p => p.required).map(p => p.name),
    });
  const pathParameters = parameters.filter(p => p.in === 'path');
  const queryParameters = parameters.filter(p => p.in === 'query');
  const validatePath = validatorOf(pathParameters);
  const validateQuery = validatorOf(queryParameters);
  // Only the query can hold a name the operation does not have, or an
  // empty value: express matched the path's.
  const queryNames = new Set(queryParameters.map(p => p.name));
  const emptyAllowed = new Set(
    queryParameters.filter(p => p.allowEmptyValue).map(p => p.name),
  );
  return (req, _res, next) => {
    for (const [name, value] of Object.entries(req.query)) {
      if (!queryNames.has(name)) {
        throw new InputError(`Unknown query parameter '${name}'`);
      }
      if (value === '' && !emptyAllowed.has(name)) {
        throw new InputError(`Empty value found for query parameter '${name}'`);
      }
    }
    check('params', validatePath, req.params);
    check('query', validateQuery, req.query);
    next();
  };
}

function check(where: string, validate: ValidateFunction, value: unknown) {
  if (validate(value)) return;
  throw new InputError(
    (validate.errors ?? []).map(e => describe(where, e)).join(', '),
  );
}

/** In the validator's words: `request/query/range must be equal to one of the allowed values: 7d, 30d, 90d`. */
function describe(where: string, error: ErrorObject): string {
  const allowed = error.params as { allowedValues?: unknown[] };
  return `request/${where}${error.instancePath} ${error.message}${
    allowed.allowedValues ? `: ${allowed.allowedValues.join(', ')}` : ''
  }`;
}

function resolve(spec: ParameterSpec, parameter: unknown): Parameter {
  const ref = (parameter as { $ref?: string }).$ref;
  if (!ref) return parameter as Parameter;
  const name = ref.match(/^#\/components\/parameters\/([^/]+)$/)?.[1];
  const found = name && spec.components?.parameters?.[name];
  if (!found) throw new Error(`Cannot resolve the parameter ${ref}`);
  return found as Parameter;
}
