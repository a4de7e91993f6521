import {
  ALICE,
  BOB,
  Progression,
  exampleSteps,
  runAction,
  startProgression,
} from '../__testUtils__/progression';

/*
 * progression:release:register against a real Progression backend (see
 * __testUtils__/progression.ts), on behalf of the user running the task.
 */
jest.setTimeout(60_000);

let progression: Progression;

beforeAll(async () => {
  progression = await startProgression();
});

afterAll(async () => {
  await progression?.stop();
});

const releases = async (name: string) =>
  (await progression.get(`entities/component/default/${name}/releases`)).items;

it('runs its examples', async () => {
  const steps = exampleSteps(progression.actions.register);
  expect(steps.length).toBeGreaterThan(0);
  for (const step of steps) {
    expect(step.action).toBe('progression:release:register');
    const { outputs } = await runAction(
      progression.actions.register,
      step.input,
      { stepId: step.id },
    );
    expect(outputs).toEqual({
      releaseId: expect.any(String),
      version: step.input.version,
      created: expect.any(Boolean),
    });
  }
  const [registered] = await releases('payments-api');
  expect(registered).toMatchObject({
    version: '1.4.2',
    image: 'registry.example.com/payments-api:1.4.2',
    commit: '3f2c9ab',
    url: 'https://ci.example.com/payments-api/builds/812',
  });
});

it('registers a new release as the user running the task, then the same one again, and refuses another image for the same version', async () => {
  const input = {
    entityRef: 'component:default/web-shop',
    version: '2.4.0',
    image: 'registry.local/web-shop:2.4.0',
    commit: 'abc1234',
  };
  const first = await runAction(progression.actions.register, input);
  expect(first.outputs).toEqual({
    releaseId: expect.any(String),
    version: '2.4.0',
    created: true,
  });
  expect(first.logs()).toContain(
    'Registered release 2.4.0 (registry.local/web-shop:2.4.0) of component:default/web-shop',
  );
  const [release] = await releases('web-shop');
  expect(release).toMatchObject({
    id: first.outputs.releaseId,
    createdBy: ALICE,
    commit: 'abc1234',
  });

  // A retried task: the same release, not an error.
  const again = await runAction(progression.actions.register, input);
  expect(again.outputs).toEqual({
    releaseId: first.outputs.releaseId,
    version: '2.4.0',
    created: false,
  });

  // Releases are immutable: the backend's 409, with its message.
  const conflict = runAction(progression.actions.register, {
    ...input,
    image: 'registry.local/web-shop:2.4.0-rebuilt',
  });
  await expect(conflict).rejects.toMatchObject({
    name: 'ConflictError',
    message:
      'Could not register release 2.4.0 of component:default/web-shop: Release 2.4.0 of component:default/web-shop already exists with image registry.local/web-shop:2.4.0 (this registration says registry.local/web-shop:2.4.0-rebuilt); releases are immutable',
  });
  expect(await releases('web-shop')).toHaveLength(1);
});

it("fails with the backend's message when the user may not register releases or the entity is unknown", async () => {
  await expect(
    runAction(
      progression.actions.register,
      {
        entityRef: 'component:default/web-shop',
        version: '2.5.0',
        image: 'registry.local/web-shop:2.5.0',
      },
      { user: BOB },
    ),
  ).rejects.toMatchObject({
    name: 'NotAllowedError',
    message:
      'Could not register release 2.5.0 of component:default/web-shop: Not allowed to progression.release.create on component:default/web-shop',
  });
  await expect(
    runAction(progression.actions.register, {
      entityRef: 'component:default/nope',
      version: '1.0.0',
      image: 'registry.local/nope:1.0.0',
    }),
  ).rejects.toMatchObject({
    name: 'NotFoundError',
    message: expect.stringContaining(
      "No entity 'component:default/nope' in the catalog",
    ),
  });
});

it('refuses bad input before calling the API', async () => {
  const base = {
    entityRef: 'web-shop',
    version: '2.6.0',
    image: 'registry.local/web-shop:2.6.0',
  };
  await expect(
    runAction(progression.actions.register, { ...base, version: '2.6 beta' }),
  ).rejects.toMatchObject({
    name: 'InputError',
    message: expect.stringContaining("version '2.6 beta' is not a valid"),
  });
  await expect(
    runAction(progression.actions.register, { ...base, image: 'Bad Image' }),
  ).rejects.toThrow("image 'Bad Image' is not an image reference");
  await expect(
    runAction(progression.actions.register, { ...base, url: 'ftp://x' }),
  ).rejects.toThrow("url 'ftp://x' is not an http or https URL");
  await expect(
    runAction(progression.actions.register, {
      ...base,
      entityRef: 'component:default/',
    }),
  ).rejects.toThrow(
    /entityRef 'component:default\/' is not an entity reference/,
  );
  expect(await releases('web-shop')).toHaveLength(1);
});

it('in a dry run, says what it would register and registers nothing', async () => {
  const run = await runAction(
    progression.actions.register,
    {
      entityRef: 'web-shop',
      version: '2.7.0',
      image: 'registry.local/web-shop:2.7.0',
    },
    { isDryRun: true },
  );
  expect(run.outputs).toEqual({
    releaseId: 'dry-run',
    version: '2.7.0',
    created: true,
  });
  expect(run.logs()).toEqual([
    'Dry run: would register release 2.7.0 (registry.local/web-shop:2.7.0) of component:default/web-shop with Progression',
  ]);
  expect(
    (await releases('web-shop')).map((r: { version: string }) => r.version),
  ).not.toContain('2.7.0');
});
