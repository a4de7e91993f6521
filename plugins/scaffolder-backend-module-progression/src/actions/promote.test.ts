import {
  ALICE,
  BOB,
  Progression,
  exampleSteps,
  runAction,
  startProgression,
  waitForState,
} from '../__testUtils__/progression';
import { promotionIdempotencyKey } from './promote';

/*
 * progression:promote against a real Progression backend (see
 * __testUtils__/progression.ts): promotions deploy to the cluster
 * simulator and run their smoke checks against its demo workloads.
 */
jest.setTimeout(120_000);

let progression: Progression;

beforeAll(async () => {
  progression = await startProgression();
});

afterAll(async () => {
  await progression?.stop();
});

const FAST = { pollInterval: 0.02 };

const liveImage = (ns: string, name: string) =>
  progression.sim.store.get('deployments', ns, name)!.spec.template.spec
    .containers[0].image;

const promotions = async (name: string) =>
  (await progression.get(`entities/component/default/${name}/promotions`))
    .items;

async function register(name: string, version: string) {
  const res = await progression.post(
    `entities/component/default/${name}/releases`,
    { version, image: `registry.local/${name}:${version}` },
  );
  expect(res.status).toBeLessThan(300);
}

it('runs its examples', async () => {
  await register('payments-api', '1.4.2');
  const steps = exampleSteps(progression.actions.promote);
  expect(steps.map(s => [s.input.stage, s.input.wait])).toEqual([
    ['development', true],
    ['staging', undefined],
  ]);
  const outputs = [];
  for (const step of steps) {
    expect(step.action).toBe('progression:promote');
    const run = await runAction(
      progression.actions.promote,
      { ...step.input, ...FAST },
      { stepId: step.id, taskId: 'examples' },
    );
    outputs.push(run.outputs);
  }
  expect(outputs).toEqual([
    { promotionId: expect.any(String), state: 'succeeded', version: '1.4.2' },
    { promotionId: expect.any(String), state: 'pending', version: '1.4.2' },
  ]);
  expect(liveImage('development', 'payments-api')).toBe(
    'registry.local/payments-api:1.4.2',
  );
  // Staging asks for an approval: the request stands, nobody waits.
  const [staging] = await promotions('payments-api');
  expect(staging).toMatchObject({ stage: 'staging', requestedBy: ALICE });
  expect(
    (await waitForState(progression, staging.id, ['awaiting-approval']))
      .promotion.release.version,
  ).toBe('1.4.2');
});

it('promotes a healthy release as the user running the task and waits until it succeeded, logging each step', async () => {
  await register('web-shop', '3.0.0');
  const run = await runAction(progression.actions.promote, {
    entityRef: 'component:default/web-shop',
    stage: 'development',
    version: '3.0.0',
    reason: 'from a template',
    wait: true,
    ...FAST,
  });
  expect(run.outputs).toEqual({
    promotionId: expect.any(String),
    state: 'succeeded',
    version: '3.0.0',
  });
  expect(liveImage('development', 'web-shop')).toBe(
    'registry.local/web-shop:3.0.0',
  );
  const details = await progression.get(
    `promotions/${run.outputs.promotionId}`,
  );
  expect(details.promotion).toMatchObject({
    requestedBy: ALICE,
    reason: 'from a template',
  });
  const logs = run.logs();
  expect(logs[0]).toMatch(
    /^Requested promotion \S+ of 3\.0\.0 to development \(component:default\/web-shop\): /,
  );
  expect(logs).toContainEqual(expect.stringMatching(/^gate smoke: passed/));
  expect(logs).toContainEqual(
    expect.stringMatching(/ of 3\.0\.0 to development is now succeeded$/),
  );
  expect(logs[logs.length - 1]).toMatch(
    / of 3\.0\.0 to development succeeded$/,
  );
});

it('fails the step when the promotion is rolled back, naming the failing check', async () => {
  const before = liveImage('development', 'web-shop');
  await register('web-shop', '3.1.0-unhealthy');
  const promote = runAction(progression.actions.promote, {
    entityRef: 'web-shop',
    stage: 'development',
    version: '3.1.0-unhealthy',
    wait: true,
    timeout: '2m',
    ...FAST,
  });
  await expect(promote).rejects.toThrow(
    /^promotion \S+ of 3\.1\.0-unhealthy to development was rolled back: smoke: GET \/healthz failed: /,
  );
  expect(liveImage('development', 'web-shop')).toBe(before);
  const [latest] = await promotions('web-shop');
  expect(latest).toMatchObject({
    state: 'rolled-back',
    release: { version: '3.1.0-unhealthy' },
  });
});

it('returns the same promotion when the same task and step run again', async () => {
  await register('web-shop', '3.2.0');
  const input = {
    entityRef: 'component:default/web-shop',
    stage: 'development',
    version: '3.2.0',
    ...FAST,
  };
  const first = await runAction(progression.actions.promote, input, {
    taskId: 'task-retried',
    stepId: 'promote',
  });
  const count = (await promotions('web-shop')).length;
  // The task is retried, this time waiting.
  const retried = await runAction(
    progression.actions.promote,
    { ...input, wait: true },
    { taskId: 'task-retried', stepId: 'promote' },
  );
  expect(retried.outputs).toEqual({
    promotionId: first.outputs.promotionId,
    state: 'succeeded',
    version: '3.2.0',
  });
  expect(await promotions('web-shop')).toHaveLength(count);
});

it('derives the idempotency key from the task, the step and the request', () => {
  expect(
    promotionIdempotencyKey({
      taskId: 'a1b2',
      stepId: 'promote',
      stage: 'staging',
      version: '1.0.0',
    }),
  ).toBe('scaffolder:a1b2:promote:staging:1.0.0');
  expect(promotionIdempotencyKey({ taskId: 'a1b2', stage: 'staging' })).toBe(
    'scaffolder:a1b2:promote:staging',
  );
  expect(
    promotionIdempotencyKey({
      taskId: 'a1b2',
      stepId: 'promote to prod ✓',
      stage: 'prod',
    }),
  ).toBe('scaffolder:a1b2:promote_to_prod__:prod');
  expect(
    promotionIdempotencyKey({
      taskId: 'a1b2',
      stepId: 'x'.repeat(300),
      stage: 'prod',
    }),
  ).toMatch(/^scaffolder:sha256:[0-9a-f]{64}$/);
});

it("fails with the backend's message when the release has not passed the previous stage, the stage is busy, or the user may not promote", async () => {
  await expect(
    runAction(progression.actions.promote, {
      entityRef: 'web-shop',
      stage: 'staging',
      version: '3.1.0-unhealthy',
    }),
  ).rejects.toMatchObject({
    name: 'ConflictError',
    message:
      'Could not promote release 3.1.0-unhealthy of component:default/web-shop to staging: development has not passed 3.1.0-unhealthy yet',
  });

  // Staging waits for an approval: the stage is busy.
  const waiting = await runAction(
    progression.actions.promote,
    { entityRef: 'web-shop', stage: 'staging', version: '3.2.0' },
    { taskId: 'task-staging' },
  );
  await waitForState(progression, waiting.outputs.promotionId, [
    'awaiting-approval',
  ]);
  await expect(
    runAction(
      progression.actions.promote,
      { entityRef: 'web-shop', stage: 'staging', version: '3.0.0' },
      { taskId: 'task-other' },
    ),
  ).rejects.toMatchObject({
    name: 'ConflictError',
    message: expect.stringContaining(
      'component:default/web-shop already has an active promotion to staging',
    ),
  });

  await expect(
    runAction(
      progression.actions.promote,
      { entityRef: 'web-shop', stage: 'development' },
      { user: BOB, taskId: 'task-bob' },
    ),
  ).rejects.toMatchObject({
    name: 'NotAllowedError',
    message:
      'Could not promote the newest release of component:default/web-shop to development: Not allowed to progression.promotion.create on component:default/web-shop',
  });

  await expect(
    runAction(progression.actions.promote, {
      entityRef: 'web-shop',
      stage: 'qa',
    }),
  ).rejects.toMatchObject({ name: 'NotFoundError' });
});

it('stops waiting at the timeout and says the promotion goes on', async () => {
  // The promotion of the previous test, waiting for an approval.
  const promote = runAction(
    progression.actions.promote,
    {
      entityRef: 'web-shop',
      stage: 'staging',
      version: '3.2.0',
      wait: true,
      timeout: '300ms',
      ...FAST,
    },
    { taskId: 'task-staging' },
  );
  await expect(promote).rejects.toThrow(
    /^promotion \S+ of 3\.2\.0 to staging is still awaiting-approval after 300 ms; it goes on in Progression/,
  );
});

it('stops waiting when the task is cancelled; the promotion goes on', async () => {
  const controller = new AbortController();
  const promote = runAction(
    progression.actions.promote,
    {
      entityRef: 'web-shop',
      stage: 'staging',
      version: '3.2.0',
      wait: true,
      ...FAST,
    },
    { taskId: 'task-staging', signal: controller.signal },
  );
  setTimeout(() => controller.abort(), 100);
  await expect(promote).rejects.toThrow(
    /^Stopped waiting for promotion \S+ of 3\.2\.0 to staging, which is awaiting-approval: the task was cancelled; the promotion goes on in Progression$/,
  );
});

it('in a dry run, says what it would do and requests nothing', async () => {
  const before = (await promotions('web-shop')).length;
  const run = await runAction(
    progression.actions.promote,
    {
      entityRef: 'web-shop',
      stage: 'development',
      version: '3.2.0',
      wait: true,
    },
    { isDryRun: true, taskId: 'task-dry' },
  );
  expect(run.outputs).toEqual({
    promotionId: 'dry-run',
    state: 'pending',
    version: '3.2.0',
  });
  expect(run.logs()).toEqual([
    'Dry run: would request a promotion of release 3.2.0 of component:default/web-shop to development (Idempotency-Key scaffolder:task-dry:step-1:development:3.2.0) and wait up to 30 min for it',
  ]);
  expect(await promotions('web-shop')).toHaveLength(before);
});

it('refuses bad input, also in a dry run', async () => {
  const cases: Array<[Record<string, string | number | boolean>, string]> = [
    [{ stage: 'Staging!' }, "stage 'Staging!' is not a valid stage name"],
    [{ version: '1 0' }, "version '1 0' is not a valid release version"],
    [
      { wait: true, timeout: 'soon' },
      "timeout must be a number of seconds or a duration such as '30m', '1h' or 'PT30M', got 'soon'",
    ],
    [{ wait: true, pollInterval: -1 }, 'pollInterval must be'],
  ];
  for (const [input, message] of cases) {
    await expect(
      runAction(
        progression.actions.promote,
        { entityRef: 'web-shop', stage: 'development', ...input },
        { isDryRun: true },
      ),
    ).rejects.toMatchObject({
      name: 'InputError',
      message: expect.stringContaining(message),
    });
  }
});
