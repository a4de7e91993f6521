import { TestDatabaseId, TestDatabases } from '@backstage/backend-test-utils';
import { KubeSimulator } from '@internal/kube-simulator';
import { ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import knexFactory from 'knex';

/*
 * The backend process is killed with SIGKILL in the middle of a deploy and
 * started again on the same database (a SQLite file, then PostgreSQL): the promotion finishes,
 * and the cluster received exactly one image patch.
 */
jest.setTimeout(180_000);

// Two backend processes need a database server: PostgreSQL, which
// scripts/test.sh starts (migrations.test.ts fails when it is missing).
const databases = TestDatabases.create({ ids: ['POSTGRES_15'] });

let sim: KubeSimulator;
let dir: string;
const children: ChildProcess[] = [];

function freePort(): Promise<number> {
  return new Promise(resolve => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

type DatabaseConfig = Record<string, unknown>;

const entity = (name: string) => ({
  apiVersion: 'backstage.io/v1alpha1',
  kind: 'Component',
  metadata: {
    name,
    annotations: {
      'progression.backstage.io/pipeline': 'p',
      'backstage.io/kubernetes-id': name,
    },
  },
  spec: { type: 'service', owner: 'team' },
});

async function startBackendOn(
  port: number,
  database: DatabaseConfig,
  entities: object[],
  stageExtra: object = {},
) {
  const config = {
    backend: {
      baseUrl: `http://127.0.0.1:${port}`,
      listen: { port, host: '127.0.0.1' },
      database,
    },
    progression: {
      clusters: [
        {
          name: 'sim',
          url: sim.url,
          serviceAccountToken: sim.token,
          skipTLSVerify: true,
        },
      ],
      worker: { heartbeatInterval: '200ms', staleAfter: '2s' },
      pipelines: {
        p: {
          stages: [
            {
              name: 'dev',
              cluster: 'sim',
              namespace: 'dev',
              autoPromote: true,
              ...stageExtra,
            },
          ],
        },
      },
    },
  };
  const child = spawn(
    process.execPath,
    [path.resolve(__dirname, '../dev/killableBackend.cjs')],
    {
      env: {
        ...process.env,
        PROGRESSION_TEST_CONFIG: JSON.stringify({ config, entities }),
        NODE_ENV: 'development',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  child.stdout!.on('data', d => (output += d));
  child.stderr!.on('data', d => (output += d));
  children.push(child);
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null)
      throw new Error(`backend exited: ${output.slice(-2000)}`);
    try {
      if ((await fetch(`${base}/.backstage/health/v1/readiness`)).ok)
        return { child, base };
    } catch {
      // not up yet
    }
    await new Promise(r => setTimeout(r, 100));
  }
  throw new Error(`backend did not start: ${output.slice(-2000)}`);
}

/**
 * Starts a backend on a free port. Another test may take the port between
 * the check and the listen: then it tries another.
 */
async function startBackend(
  database: DatabaseConfig | undefined = {
    client: 'better-sqlite3',
    connection: { directory: dir },
  },
  entities: object[] = [entity('app')],
  stageExtra: object = {},
  port?: number,
): Promise<{ child: ChildProcess; base: string; port: number }> {
  for (let attempt = 0; ; attempt++) {
    try {
      const on = port ?? (await freePort());
      return {
        ...(await startBackendOn(on, database, entities, stageExtra)),
        port: on,
      };
    } catch (e) {
      if (port || attempt >= 4 || !String(e).includes('EADDRINUSE')) throw e;
    }
  }
}

function deployment(name: string, image: string, replicas = 1) {
  sim.apply({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name,
      namespace: 'dev',
      labels: { 'backstage.io/kubernetes-id': name },
    },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: { containers: [{ name: 'app', image }] },
      },
    },
  });
}

/** A database of its own on the PostgreSQL server of the test run. */
async function postgresDatabase(
  databaseId: TestDatabaseId,
  name: string,
): Promise<DatabaseConfig> {
  const knex = await databases.init(databaseId);
  // The same server and credentials, with a database prefix of our own.
  const { database: _, ...connection } = knex.client.config.connection;
  await knex.destroy();
  return {
    client: 'pg',
    connection,
    prefix: `progression_${name}_${Date.now()}_`,
  };
}

beforeAll(async () => {
  // Pods take a while to become ready, so the kill lands mid-rollout.
  sim = await KubeSimulator.start({ podReadyDelayMs: 1500 });
  sim.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'dev' } });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'progression-durability-'));
});

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await sim.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

const killedOn: [string, TestDatabaseId | undefined][] = [
  ['a SQLite file', undefined],
  ...databases
    .eachSupportedId()
    .map(([id]): [string, TestDatabaseId] => [id, id]),
];

describe.each(killedOn)('killed mid-deploy on %s', (label, databaseId) => {
  it('finishes the promotion after a restart, with one image patch', async () => {
    const name = databaseId ? 'killed-pg' : 'killed-sqlite';
    deployment(name, `${name}:1.0.0`, 2);
    const database = databaseId
      ? await postgresDatabase(databaseId, 'killed')
      : undefined;
    const entities = [entity(name)];
    let patches = 0;
    let killed = false;
    const first = await startBackend(database, entities);
    let image = `${name}:1.0.0`;
    sim.store.subscribe(e => {
      if (e.resource !== 'deployments' || e.object.metadata.name !== name)
        return;
      const now = e.object.spec.template.spec.containers[0].image;
      if (now !== image) {
        patches++;
        image = now;
      }
      if (
        e.type === 'MODIFIED' &&
        now === `${name}:2.0.0` &&
        e.object.metadata.generation === 2 &&
        !killed
      ) {
        // The patch just reached the cluster: kill the backend right now.
        killed = true;
        first.child.kill('SIGKILL');
      }
    });

    const registered = await fetch(
      `${first.base}/api/progression/v1/entities/component/default/${name}/releases`,
      {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ version: '2.0.0', image: `${name}:2.0.0` }),
      },
    );
    expect(registered.status).toBe(201);
    await new Promise<void>(resolve =>
      first.child.once('exit', () => resolve()),
    );
    expect(killed).toBe(true);

    const second = await startBackend(database, entities);
    let state = '';
    for (
      let i = 0;
      i < 600 && !['succeeded', 'failed', 'rolled-back'].includes(state);
      i++
    ) {
      const list = await (
        await fetch(
          `${second.base}/api/progression/v1/entities/component/default/${name}/promotions`,
        )
      ).json();
      state = list.items[0]?.state ?? '';
      await new Promise(r => setTimeout(r, 100));
    }
    expect({ label, state }).toEqual({ label, state: 'succeeded' });
    expect(patches).toBe(1);
    expect(
      sim.store.get('deployments', 'dev', name)!.spec.template.spec
        .containers[0].image,
    ).toBe(`${name}:2.0.0`);
    second.child.kill('SIGTERM');
  });
});

describe.each(databases.eachSupportedId())('two backends on %p', databaseId => {
  it('run 20 promotions between them, each deploy patch sent once', async () => {
    const database = await postgresDatabase(databaseId, 'two');

    const names = Array.from({ length: 20 }, (_x, i) => `two-${i}`);
    const images = new Map<string, string>();
    const patches = new Map<string, number>();
    sim.store.subscribe(e => {
      if (
        e.resource !== 'deployments' ||
        !names.includes(e.object.metadata.name)
      )
        return;
      const image = e.object.spec.template.spec.containers[0].image;
      const name = e.object.metadata.name;
      if (images.has(name) && images.get(name) !== image)
        patches.set(name, (patches.get(name) ?? 0) + 1);
      images.set(name, image);
    });
    for (const name of names) deployment(name, 'two:1');
    const entities = names.map(entity);
    // One after the other, so that the first creates the database.
    const a = await startBackend(database, entities);
    const b = await startBackend(database, entities);

    // Half of the releases through each backend: both workers get work.
    await Promise.all(
      names.map((name, i) =>
        fetch(
          `${
            (i % 2 ? b : a).base
          }/api/progression/v1/entities/component/default/${name}/releases`,
          {
            method: 'POST',
            headers: { 'Content-Type': 'application/json' },
            body: JSON.stringify({ version: '2.0.0', image: 'two:2' }),
          },
        ).then(r => expect(r.status).toBe(201)),
      ),
    );
    const states = new Map<string, string>();
    for (
      let round = 0;
      round < 600 &&
      [...states.values()].filter(s => s === 'succeeded').length < names.length;
      round++
    ) {
      for (const name of names) {
        const list = await (
          await fetch(
            `${a.base}/api/progression/v1/entities/component/default/${name}/promotions`,
          )
        ).json();
        states.set(name, list.items[0]?.state ?? '');
      }
      await new Promise(r => setTimeout(r, 100));
    }
    expect([...states.values()]).toEqual(names.map(() => 'succeeded'));
    expect(names.map(n => patches.get(n))).toEqual(names.map(() => 1));
    a.child.kill('SIGTERM');
    b.child.kill('SIGTERM');
  });
});

/** The newest promotion of an entity, through the REST API. */
async function newestPromotion(base: string, name: string) {
  const list = await (
    await fetch(
      `${base}/api/progression/v1/entities/component/default/${name}/promotions`,
    )
  ).json();
  return list.items[0];
}

async function waitForEnd(base: string, name: string) {
  let promotion: any;
  for (let i = 0; i < 900; i++) {
    promotion = await newestPromotion(base, name);
    if (['succeeded', 'failed', 'rolled-back'].includes(promotion?.state)) {
      return promotion;
    }
    await new Promise(r => setTimeout(r, 100));
  }
  return promotion;
}

function register(base: string, name: string, version: string) {
  return fetch(
    `${base}/api/progression/v1/entities/component/default/${name}/releases`,
    {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ version, image: `${name}:${version}` }),
    },
  );
}

/** Counts changes of a Deployment's image, and calls `onPatch` on the first. */
function watchPatches(name: string, onPatch?: () => void) {
  let image: string | undefined = sim.store.get('deployments', 'dev', name)
    ?.spec.template.spec.containers[0].image;
  const seen = { patches: 0 };
  sim.store.subscribe(e => {
    if (e.resource !== 'deployments' || e.object.metadata.name !== name) return;
    const now = e.object.spec.template.spec.containers[0].image;
    if (image !== undefined && now !== image) {
      seen.patches++;
      if (seen.patches === 1) onPatch?.();
    }
    image = now;
  });
  return seen;
}

describe.each(databases.eachSupportedId())('SIGTERM on %p', databaseId => {
  it('mid-deploy: after a restart the promotion succeeds with exactly one image patch', async () => {
    const name = 'sigterm-deploy';
    deployment(name, `${name}:1.0.0`, 2);
    const database = await postgresDatabase(databaseId, 'sigterm_deploy');
    const first = await startBackend(database, [entity(name)]);
    const seen = watchPatches(name, () => first.child.kill('SIGTERM'));
    expect((await register(first.base, name, '2.0.0')).status).toBe(201);
    await new Promise<void>(resolve =>
      first.child.once('exit', () => resolve()),
    );
    expect(seen.patches).toBe(1);
    // The interrupted rollout wait was not recorded as a failed deploy.
    const second = await startBackend(database, [entity(name)], {}, first.port);
    const ended = await waitForEnd(second.base, name);
    expect(ended.state).toBe('succeeded');
    expect(seen.patches).toBe(1);
    second.child.kill('SIGTERM');
  });

  it('mid-migration: after a restart the Job is adopted, not run twice, and the promotion succeeds with one patch', async () => {
    const name = 'sigterm-migration';
    deployment(name, `${name}:1.0.0`);
    const database = await postgresDatabase(databaseId, 'sigterm_job');
    const migration = {
      gates: { job: { migration: { command: ['./migrate', 'up'] } } },
    };
    const jobs = new Set<string>();
    // The backend to stop, once it runs.
    const running: { child?: ChildProcess } = {};
    sim.store.subscribe(e => {
      if (
        e.resource !== 'jobs' ||
        e.type !== 'ADDED' ||
        e.object.metadata.labels?.['backstage.io/kubernetes-id'] !== name
      )
        return;
      jobs.add(e.object.metadata.name);
      // The Job was just created: stop the backend while it runs.
      running.child?.kill('SIGTERM');
    });
    const first = await startBackend(database, [entity(name)], migration);
    running.child = first.child;
    const seen = watchPatches(name);
    expect((await register(first.base, name, '2.0.0')).status).toBe(201);
    await new Promise<void>(resolve =>
      first.child.once('exit', () => resolve()),
    );
    expect(jobs.size).toBe(1);
    expect(seen.patches).toBe(0);
    const second = await startBackend(
      database,
      [entity(name)],
      migration,
      first.port,
    );
    const ended = await waitForEnd(second.base, name);
    expect(ended.state).toBe('succeeded');
    expect(jobs.size).toBe(1);
    expect(seen.patches).toBe(1);
    second.child.kill('SIGTERM');
  });

  it('two replicas, the one running a step SIGTERMed: the other finishes it with one patch', async () => {
    const name = 'sigterm-replica';
    deployment(name, `${name}:1.0.0`, 2);
    const database = await postgresDatabase(databaseId, 'sigterm_two');
    const a = await startBackend(database, [entity(name)]);
    const b = await startBackend(database, [entity(name)]);
    // The plugin's own database on the server, as the backends named it.
    const store = knexFactory({
      client: 'pg',
      connection: {
        ...(database.connection as object),
        database: `${database.prefix}progression`,
      },
    });
    let stopped: typeof a | undefined;
    let failure: unknown;
    const seen = watchPatches(name, () => {
      // Whichever replica holds the promotion is stopped mid-rollout;
      // its claim names it (replica id: host and port).
      store('progression_promotions')
        .whereNotNull('owner_id')
        .first()
        .then(row => {
          const port = Number(/:(\d+)\//.exec(row?.owner_id ?? '')?.[1]);
          stopped = [a, b].find(r => r.port === port);
          if (!stopped) {
            throw new Error(`no replica holds it: ${row?.owner_id}`);
          }
          stopped.child.kill('SIGTERM');
        })
        .catch(e => {
          failure = e;
        });
    });
    try {
      expect((await register(a.base, name, '2.0.0')).status).toBe(201);
      for (let i = 0; i < 100 && !stopped && !failure; i++) {
        await new Promise(r => setTimeout(r, 50));
      }
      expect(failure).toBeUndefined();
      expect(stopped).toBeDefined();
      const survivor = stopped === a ? b : a;
      const ended = await waitForEnd(survivor.base, name);
      expect(ended.state).toBe('succeeded');
      expect(seen.patches).toBe(1);
    } finally {
      await store.destroy();
      a.child.kill('SIGTERM');
      b.child.kill('SIGTERM');
    }
  });
});
