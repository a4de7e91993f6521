import {
  ENTITIES,
  Progression,
  entity,
  exampleSteps,
  runAction,
  startProgression,
} from '../__testUtils__/progression';

/*
 * progression:pipeline:validate: the module's action in a backend with
 * Progression (see __testUtils__/progression.ts), which answers through
 * its POST /v1/validate route. A configuration with unknown clusters or
 * empty pipelines never gets this far: the backend refuses to start.
 */
jest.setTimeout(60_000);

const entities = [
  ...ENTITIES,
  entity('no-annotation', { 'backstage.io/kubernetes-id': 'no-annotation' }),
  entity('unknown-pipeline', {
    'progression.backstage.io/pipeline': 'express',
    'backstage.io/kubernetes-id': 'unknown-pipeline',
  }),
  entity('defaulted-label', {
    'progression.backstage.io/pipeline': 'standard',
  }),
  entity('bad-label', {
    'progression.backstage.io/pipeline': 'standard',
    'backstage.io/kubernetes-id': 'payments api/v2',
  }),
];

let progression: Progression;

beforeAll(async () => {
  progression = await startProgression({ entities });
});

afterAll(async () => {
  await progression?.stop();
});

const validate = (
  input: Record<string, any>,
  options: Parameters<typeof runAction>[2] = {},
) => runAction(progression.actions.validate, input, options);

it('runs its examples', async () => {
  const steps = exampleSteps(progression.actions.validate);
  expect(steps.length).toBe(2);
  for (const step of steps) {
    expect(step.action).toBe('progression:pipeline:validate');
    const { outputs } = await validate(step.input, { stepId: step.id });
    expect(outputs).toEqual({
      valid: true,
      pipeline: 'standard',
      stages: ['development', 'staging'],
      kubernetesId: expect.any(String),
      problems: [],
      warnings: [],
    });
  }
});

it('passes an entity ready for Progression', async () => {
  const run = await validate({ entityRef: 'component:default/payments-api' });
  expect(run.outputs).toEqual({
    valid: true,
    pipeline: 'standard',
    stages: ['development', 'staging'],
    kubernetesId: 'payments-api',
    problems: [],
    warnings: [],
  });
  expect(run.logs()).toEqual([
    "component:default/payments-api is ready for Progression: pipeline 'standard', stages development → staging",
  ]);
});

it('fails an entity without the pipeline annotation, listing the configured pipelines', async () => {
  await expect(validate({ entityRef: 'no-annotation' })).rejects.toMatchObject({
    name: 'InputError',
    message:
      "component:default/no-annotation is not ready for Progression:\n- the entity has no progression.backstage.io/pipeline annotation; add one naming a pipeline (configured pipelines: 'standard')",
  });
  // Reported, not thrown, without failOnProblems.
  const run = await validate({
    entityRef: 'no-annotation',
    failOnProblems: false,
  });
  expect(run.outputs).toMatchObject({
    valid: false,
    stages: [],
    problems: [
      expect.stringContaining(
        'the entity has no progression.backstage.io/pipeline annotation',
      ),
    ],
  });
  expect(run.outputs.pipeline).toBeUndefined();
});

it('fails an entity whose pipeline is not configured', async () => {
  const run = await validate({
    entityRef: 'component:default/unknown-pipeline',
    failOnProblems: false,
  });
  expect(run.outputs).toMatchObject({
    valid: false,
    pipeline: 'express',
    stages: [],
    problems: [
      "pipeline 'express' is not configured; configured pipelines: 'standard'",
    ],
  });
  await expect(
    validate({ entityRef: 'component:default/unknown-pipeline' }),
  ).rejects.toThrow("pipeline 'express' is not configured");
});

it('reports a defaulted workload label and refuses an invalid one', async () => {
  const defaulted = await validate({ entityRef: 'defaulted-label' });
  expect(defaulted.outputs).toMatchObject({
    valid: true,
    kubernetesId: 'defaulted-label',
    warnings: [
      'the entity has no backstage.io/kubernetes-id annotation, so its workload is found by the label backstage.io/kubernetes-id=defaulted-label (the entity name)',
    ],
  });
  expect(defaulted.warnings()).toEqual(defaulted.outputs.warnings);

  await expect(validate({ entityRef: 'bad-label' })).rejects.toThrow(
    "'payments api/v2' is not a valid Kubernetes label value for backstage.io/kubernetes-id",
  );
});

it('checks an inline entity that is not in the catalog', async () => {
  const fresh = entity('checkout-api', {
    'progression.backstage.io/pipeline': 'standard',
  });
  const run = await validate({ entity: fresh as any });
  expect(run.outputs).toMatchObject({
    valid: true,
    pipeline: 'standard',
    stages: ['development', 'staging'],
    kubernetesId: 'checkout-api',
  });
  await expect(
    validate({
      entity: {
        metadata: {
          name: 'checkout-api',
          annotations: { 'progression.backstage.io/pipeline': 'express' },
        },
      },
    }),
  ).rejects.toThrow(
    "component:default/checkout-api is not ready for Progression:\n- pipeline 'express'",
  );
  await expect(validate({ entity: { kind: 'Component' } })).rejects.toThrow(
    'entity must be a catalog entity with at least metadata.name',
  );
});

it('wants one entity, from the catalog or inline, and runs fully in a dry run', async () => {
  await expect(
    validate({ entityRef: 'component:default/nope' }),
  ).rejects.toMatchObject({
    name: 'NotFoundError',
    message:
      "No entity 'component:default/nope' in the catalog (or you may not see it)",
  });
  await expect(validate({})).rejects.toThrow(
    'Give the entity to check: entityRef for a catalog entity, or entity for one not in the catalog yet',
  );
  await expect(
    validate({ entityRef: 'payments-api', entity: entities[0] as any }),
  ).rejects.toThrow('Give either entityRef or entity, not both');
  // Read-only, so a dry run runs it fully.
  const dry = await validate(
    { entityRef: 'unknown-pipeline', failOnProblems: false },
    { isDryRun: true },
  );
  expect(dry.outputs).toMatchObject({ valid: false, pipeline: 'express' });
});
