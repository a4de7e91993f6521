import fs from 'node:fs';
import path from 'node:path';
import {
  mockCredentials,
  mockServices,
  startTestBackend,
} from '@backstage/backend-test-utils';
import { AuthorizeResult } from '@backstage/plugin-permission-common';
import { catalogServiceMock } from '@backstage/plugin-catalog-node/testUtils';
import { KubeSimulator, installDemo } from '@internal/kube-simulator';
import request from 'supertest';
import { parseAllDocuments } from 'yaml';
import { progressionPlugin } from './plugin';
import { component, releaseManager } from './__testUtils__/entities';

/*
 * docs/rbac.yaml, tested: the simulator enforces RBAC (as a cluster with
 * RBAC on does) and the backend calls it with the token of the
 * ServiceAccount the file binds. A full promotion — every gate that reads
 * the cluster, the deploys, an automatic rollback, the tab's live state —
 * passes under exactly those rules; without any one of them, the step that
 * needs it fails and its evidence names the 403. The catalog and the
 * permission policy are Backstage's test doubles.
 */
jest.setTimeout(600_000);

const RBAC_FILE = path.resolve(__dirname, '../../../docs/rbac.yaml');
const ACCOUNT = 'system:serviceaccount:backstage:progression';

let sim: KubeSimulator;
let demo: Awaited<ReturnType<typeof installDemo>>;

const entity = component('payments-api', { owner: 'team-payments' });
const base = '/api/progression/v1/entities/component/default/payments-api';

beforeAll(async () => {
  sim = await KubeSimulator.start({ podReadyDelayMs: 20, rbac: true });
  demo = await installDemo(sim, { anyPorts: true, trafficIntervalMs: 60_000 });
});

afterAll(async () => {
  await demo?.stop();
  await sim?.stop();
});

type Doc = Record<string, any>;
const documents = (): Doc[] =>
  parseAllDocuments(fs.readFileSync(RBAC_FILE, 'utf8')).map(d => d.toJS());

function progressionConfig(token: string) {
  const url = (ns: string) =>
    `${demo.servers.find(s => s.namespace === ns)!.url}/{{ kubernetesId }}`;
  const smoke = { checks: [{ path: '/healthz', assert: "status = 'ok'" }] };
  return {
    clusters: [
      {
        name: 'sim',
        url: sim.url,
        serviceAccountToken: token,
        skipTLSVerify: true,
      },
    ],
    pipelines: {
      standard: {
        stages: [
          {
            name: 'development',
            cluster: 'sim',
            namespace: 'development',
            url: url('development'),
            autoPromote: true,
            gates: { smoke },
          },
          {
            name: 'staging',
            cluster: 'sim',
            namespace: 'staging',
            url: url('staging'),
            gates: { smoke },
          },
          {
            name: 'production',
            cluster: 'sim',
            namespace: 'production',
            url: url('production'),
            approval: {
              required: true,
              approvers: ['group:default/release-managers'],
            },
            gates: {
              isolation: true,
              parity: true,
              job: {
                migration: { command: ['./migrate', 'up'], timeout: '1m' },
              },
              smoke,
            },
          },
        ],
      },
    },
  };
}

async function backend(token: string) {
  const { server } = await startTestBackend({
    features: [
      progressionPlugin,
      catalogServiceMock.factory({
        entities: [entity, releaseManager],
      }),
      mockServices.rootConfig.factory({
        data: { progression: progressionConfig(token) },
      }),
      mockServices.permissions.factory({ result: AuthorizeResult.ALLOW }),
    ],
  });
  return server;
}

const ENDED = ['succeeded', 'failed', 'rolled-back', 'cancelled', 'rejected'];

async function waitForState(server: any, id: string, states: string[]) {
  for (let i = 0; i < 2000; i++) {
    const res = await request(server).get(
      `/api/progression/v1/promotions/${id}`,
    );
    if ([...states, ...ENDED].includes(res.body.promotion?.state)) {
      return res.body;
    }
    await new Promise(r => setTimeout(r, 25));
  }
  throw new Error(`promotion ${id} did not reach ${states.join(' or ')}`);
}

/**
 * The promotions a team makes, each until it ends or cannot go on: what
 * each ended in, and every step's evidence and error as text.
 */
async function promoteEverywhere(server: any, round: number) {
  const outcomes: Record<string, string> = {};
  const texts: string[] = [];
  const record = (what: string, body: any) => {
    outcomes[what] = body.promotion.state;
    texts.push(JSON.stringify([body.promotion, body.steps]));
  };
  const register = (version: string) =>
    request(server)
      .post(`${base}/releases`)
      .send({ version, image: `registry.local/payments-api:${version}` });
  const latest = async (stage: string) =>
    (await request(server).get(`${base}/promotions?stage=${stage}`)).body
      .items[0].id;

  // A healthy release through every stage.
  const good = `2.${round}.0`;
  expect((await register(good)).status).toBe(201);
  record(
    'development',
    await waitForState(server, await latest('development'), []),
  );
  if (outcomes.development !== 'succeeded') return { outcomes, texts };
  const staging = await request(server)
    .post(`${base}/promotions`)
    .send({ stage: 'staging', version: good });
  record('staging', await waitForState(server, staging.body.id, []));
  if (outcomes.staging !== 'succeeded') return { outcomes, texts };
  const prod = await request(server)
    .post(`${base}/promotions`)
    .send({ stage: 'production', version: good });
  const waiting = await waitForState(server, prod.body.id, [
    'awaiting-approval',
  ]);
  if (waiting.promotion.state !== 'awaiting-approval') {
    record('production', waiting);
    return { outcomes, texts };
  }
  await request(server)
    .post(`/api/progression/v1/promotions/${prod.body.id}/approvals`)
    .set('Authorization', mockCredentials.user.header('user:default/olivia'))
    .send({ decision: 'approve' });
  record('production', await waitForState(server, prod.body.id, []));

  // An unhealthy one in development: rolled back to the good one.
  expect((await register(`2.${round}.1-unhealthy`)).status).toBe(201);
  record(
    'rollback',
    await waitForState(server, await latest('development'), []),
  );

  // The tab's live state of each stage.
  const environments = await request(server).get(`${base}/environments`);
  texts.push(JSON.stringify(environments.body));
  outcomes.environments = String(environments.status);
  return { outcomes, texts };
}

const apply = (docs: Doc[]) => docs.forEach(d => sim.apply(d as any));

/** The file's documents with `verb` taken out of rule `ruleIndex`. */
function without(docs: Doc[], ruleIndex: number, verb: string): Doc[] {
  return docs.map(d => {
    if (d.kind !== 'ClusterRole') return d;
    const rules = d.rules.flatMap((rule: Doc, i: number) => {
      if (i !== ruleIndex) return [rule];
      const verbs = rule.verbs.filter((v: string) => v !== verb);
      return verbs.length ? [{ ...rule, verbs }] : [];
    });
    return { ...d, rules };
  });
}

/** Each rule's verbs, as `verb resource` with the rule's index. */
function grants(docs: Doc[]) {
  const role = docs.find(d => d.kind === 'ClusterRole')!;
  return role.rules.flatMap((rule: Doc, i: number) =>
    rule.verbs.flatMap((verb: string) =>
      rule.resources.map((resource: string) => ({ rule: i, verb, resource })),
    ),
  ) as { rule: number; verb: string; resource: string }[];
}

/**
 * Grants whose loss costs evidence, not the outcome: without the Job's
 * log the job gate still decides by the Job's status, and its evidence
 * says why the log tail is missing.
 */
const EVIDENCE_ONLY = new Set(['get pods/log']);

/**
 * Grants a promotion that runs to its end does not use: deleting a Job is
 * for a promotion cancelled while its Job runs, tested under these same
 * rules in cancelJob.test.ts.
 */
const ON_CANCEL = new Set(['delete jobs']);

let token: string;

beforeAll(() => {
  sim.apply({
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: 'backstage' },
  });
  apply(documents());
  token = sim.serviceAccountToken('backstage', 'progression');
  // The demo's workloads use a Secret; here they use a ConfigMap too, so
  // that the parity gate has one to compare.
  for (const namespace of ['staging', 'production']) {
    sim.apply({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'payments-api-settings', namespace },
      data: { LOG_LEVEL: 'info' },
    });
    const deployment = structuredClone(
      sim.store.get('deployments', namespace, 'payments-api')!,
    );
    deployment.spec.template.spec.containers[0].envFrom = [
      { configMapRef: { name: 'payments-api-settings' } },
    ];
    sim.apply(deployment);
  }
});

it('runs a full promotion, every gate and a rollback, under exactly the documented rules', async () => {
  const server = await backend(token);
  const { outcomes } = await promoteEverywhere(server, 0);
  expect(outcomes).toEqual({
    development: 'succeeded',
    staging: 'succeeded',
    production: 'succeeded',
    rollback: 'rolled-back',
    environments: '200',
  });
  const denied = sim.access.filter(a => !a.allowed);
  expect(denied).toEqual([]);
  // Every grant of the file was used.
  const used = new Set(
    sim.access.map(
      a =>
        `${a.verb} ${
          a.subresource ? `${a.resource}/${a.subresource}` : a.resource
        }`,
    ),
  );
  expect(
    grants(documents())
      .map(g => `${g.verb} ${g.resource}`)
      .filter(g => !used.has(g) && !ON_CANCEL.has(g)),
  ).toEqual([]);
});

it('fails the step that needs a grant, naming the 403, when any one verb is taken away', async () => {
  const docs = documents();
  const wrong: string[] = [];
  let round = 1;
  for (const grant of grants(docs).filter(
    g => !ON_CANCEL.has(`${g.verb} ${g.resource}`),
  )) {
    apply(without(docs, grant.rule, grant.verb));
    try {
      const server = await backend(token);
      const { outcomes, texts } = await promoteEverywhere(server, round++);
      const [resource, subresource] = grant.resource.split('/');
      // The API server's words, or the backend's for a refused watch.
      const forbidden = new RegExp(
        `403.*(User \\\\?"${ACCOUNT}\\\\?"|the account) cannot ${
          grant.verb
        } resource \\\\?"${resource}${
          subresource ? `/${subresource}` : ''
        }\\\\?"`,
      );
      const named = texts.some(t => forbidden.test(t));
      const broke =
        Object.values(outcomes).some(
          o => !['succeeded', 'rolled-back', '200'].includes(o),
        ) || outcomes.rollback !== 'rolled-back';
      const expected = EVIDENCE_ONLY.has(`${grant.verb} ${grant.resource}`)
        ? named && !broke
        : named && broke;
      if (!expected) {
        wrong.push(
          `${grant.verb} ${grant.resource}: ${JSON.stringify(
            outcomes,
          )}, 403 named: ${named}`,
        );
      }
    } finally {
      apply(docs);
      // Each round starts without the Jobs an earlier one left: a round
      // whose gate could not watch its migration Job leaves it running
      // (Progression does not delete a migration it cannot follow), and
      // the next round's gate would rightly refuse to start a second one.
      for (const job of sim.store.list('jobs')) {
        sim.store.delete('jobs', job.metadata.namespace, job.metadata.name);
      }
    }
  }
  expect(wrong).toEqual([]);
});
