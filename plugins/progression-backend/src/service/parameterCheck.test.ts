import { mockErrorHandler } from '@backstage/backend-test-utils';
import { createValidatedOpenApiRouter } from '@backstage/backend-openapi-utils';
import express from 'express';
import request from 'supertest';
import { spec } from '../schema/openapi/generated';
import { expressPath, parameterCheck } from './parameterCheck';
import { POLLED_READS } from './router';

const POLLED = Object.values(POLLED_READS);

const answer: express.RequestHandler = (req, res) => {
  res.json({ params: req.params, query: req.query });
};

/** The same route behind express-openapi-validator, as Backstage sets it up. */
function validated(specPath: string) {
  const router = createValidatedOpenApiRouter(spec);
  router.get(expressPath(specPath) as never, answer);
  return express()
    .use(router as express.Router)
    .use(mockErrorHandler());
}

function checked(specPath: string) {
  const router = express.Router();
  router.get(expressPath(specPath), parameterCheck(spec, specPath), answer);
  return express().use(router).use(mockErrorHandler());
}

/** The answers of the validated route and of the checked one to a GET. */
async function both(specPath: string, url: string) {
  const [expected, actual] = await Promise.all(
    [validated(specPath), checked(specPath)].map(app => request(app).get(url)),
  );
  return { expected, actual };
}

describe('parameterCheck', () => {
  // Each request goes to both; they must answer alike, word for word.
  const cases: [string, string, number][] = [
    ['component/default/payments-api/environments', '', 200],
    ['component/default/payments-api/environments', '?extra=1', 400],
    ['component/default/payments-api/flags', '', 200],
    ['component/default/payments-api/metrics', '', 200],
    ['component/default/payments-api/metrics', '?range=6h&stage=staging', 200],
    ['component/default/payments-api/metrics', '?range=2h', 400],
    ['component/default/payments-api/metrics', '?stage=Not_A_Stage', 400],
    ['component/default/payments-api/metrics', '?range=1h&range=6h', 400],
    ['component/default/payments-api/metrics', '?range[a]=1h', 400],
    ['component/default/payments-api/insights', '?range=90d', 200],
    ['component/default/payments-api/insights', '?range=1d', 400],
    ['component/default/payments-api/insights', '?range=', 400],
    ['component/default/payments-api/insights', '?range=30d%3Bdrop', 400],
    [
      'component/default/payments-api/insights',
      '?range=30d&since=2020-01-01',
      400,
    ],
    // A kind that is not a word, a namespace with a dot, a name too long,
    // an encoded slash.
    ['com-ponent/default/svc/environments', '', 400],
    ['component/de.fault/svc/environments', '', 400],
    [`component/default/${'a'.repeat(64)}/environments`, '', 400],
    ['component/default/a%2Fb/environments', '', 400],
  ];
  it.each(cases)(
    'answers %s%s as the validator does (%d)',
    async (route, query, status) => {
      const specPath = POLLED.find(p => route.endsWith(p.split('/').pop()!))!;
      const { expected, actual } = await both(
        specPath,
        `/v1/entities/${route}${query}`,
      );
      expect(actual.status).toBe(status);
      expect({ status: actual.status, body: actual.body }).toEqual({
        status: expected.status,
        body: expected.body,
      });
    },
  );

  it('has cases for every polled read', () => {
    for (const specPath of POLLED) {
      const last = specPath.split('/').pop()!;
      expect(
        cases.filter(([route]) => route.endsWith(last)).length,
      ).toBeGreaterThan(0);
    }
  });

  it('is built only for operations whose parameters are strings in the path or the query', () => {
    // The list's limit is an integer (the validator's coercion would apply)
    // and its status a reference to an enum.
    expect(() =>
      parameterCheck(spec, '/v1/entities/{kind}/{namespace}/{name}/promotions'),
    ).toThrow(/parameter status \(in query\) is not a string/);
    expect(() =>
      parameterCheck(
        spec,
        '/v1/entities/{kind}/{namespace}/{name}/releases',
        'post',
      ),
    ).toThrow(/has a body/);
    expect(() => parameterCheck(spec, '/v1/nothing')).toThrow(
      /no get \/v1\/nothing/,
    );
  });
});
