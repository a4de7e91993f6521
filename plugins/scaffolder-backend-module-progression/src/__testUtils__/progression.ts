import {
  BackstageCredentials,
  coreServices,
  createServiceFactory,
} from '@backstage/backend-plugin-api';
import {
  mockCredentials,
  mockServices,
  startTestBackend,
} from '@backstage/backend-test-utils';
import { Entity } from '@backstage/catalog-model';
import { JsonObject } from '@backstage/types';
import { catalogServiceMock } from '@backstage/plugin-catalog-node/testUtils';
import { AuthorizeResult } from '@backstage/plugin-permission-common';
import {
  ActionContext,
  TemplateAction,
  scaffolderActionsExtensionPoint,
} from '@backstage/plugin-scaffolder-node';
import { createMockActionContext } from '@backstage/plugin-scaffolder-node-test-utils';
import { KubeSimulator, installDemo } from '@internal/kube-simulator';
import { validate as validateJsonSchema } from 'jsonschema';
// The tests run the real Progression backend beside the scaffolder.
// eslint-disable-next-line @backstage/no-mixed-plugin-imports
import progressionPlugin from '@progression-io/backstage-plugin-progression-backend';
import yaml from 'yaml';
import { scaffolderModuleProgression } from '../module';

/*
 * A real Progression backend for the actions' tests: the progression
 * plugin in a test backend (SQLite), the cluster simulator with its demo
 * workloads answering the smoke checks, and this package's module, whose
 * actions get the test backend's own discovery and (mock) auth. The catalog
 * and the permission policy are Backstage's test doubles.
 */

export const ALICE = 'user:default/alice';
/** Denied every Progression permission by the test policy. */
export const BOB = 'user:default/bob';

export function entity(
  name: string,
  annotations: Record<string, string> = {
    'progression.backstage.io/pipeline': 'standard',
    'backstage.io/kubernetes-id': name,
  },
): Entity {
  return {
    apiVersion: 'backstage.io/v1alpha1',
    kind: 'Component',
    metadata: { name, namespace: 'default', annotations },
    spec: { type: 'service', owner: 'team-payments', lifecycle: 'production' },
  };
}

/** The demo's services, both on the standard pipeline. */
export const ENTITIES = [entity('payments-api'), entity('web-shop')];

export type AnyAction = TemplateAction<any, any, any>;

export interface Progression {
  sim: KubeSimulator;
  /** The `progression` config section the backend runs with. */
  progressionConfig: JsonObject;
  actions: Record<'register' | 'promote' | 'validate', AnyAction>;
  /** `http://localhost:<port>/api/progression`, as discovery says. */
  baseUrl: string;
  /** GET on the API as a user. */
  get(path: string): Promise<any>;
  /** POST on the API as a user. */
  post(path: string, body: unknown): Promise<{ status: number; body: any }>;
  stop(): Promise<void>;
}

/**
 * Starts the simulator, its demo workloads and a backend with Progression
 * and the scaffolder module. Pipeline `standard`: development (smoke check
 * GET /healthz must say ok), then staging (the same check, and an approval).
 */
export async function startProgression(
  options: { entities?: Entity[] } = {},
): Promise<Progression> {
  const sim = await KubeSimulator.start({ podReadyDelayMs: 20 });
  const demo = await installDemo(sim, {
    anyPorts: true,
    trafficIntervalMs: 60_000,
  });
  const url = (ns: string) =>
    `${demo.servers.find(s => s.namespace === ns)!.url}/{{ kubernetesId }}`;
  const smoke = { checks: [{ path: '/healthz', assert: "status = 'ok'" }] };
  const progressionConfig = {
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
      standard: {
        title: 'Standard',
        stages: [
          {
            name: 'development',
            cluster: 'sim',
            namespace: 'development',
            url: url('development'),
            gates: { smoke },
          },
          {
            name: 'staging',
            cluster: 'sim',
            namespace: 'staging',
            url: url('staging'),
            approval: {
              required: true,
              approvers: ['group:default/release-managers'],
            },
            gates: { smoke },
          },
        ],
      },
    },
  };

  const actions = new Map<string, AnyAction>();
  const backend = await startTestBackend({
    extensionPoints: [
      [
        scaffolderActionsExtensionPoint,
        {
          addActions: (...added: AnyAction[]) =>
            added.forEach(a => actions.set(a.id, a)),
        },
      ],
    ],
    features: [
      progressionPlugin,
      scaffolderModuleProgression,
      catalogServiceMock.factory({
        entities: options.entities ?? ENTITIES,
      }),
      mockServices.rootConfig.factory({
        data: { progression: progressionConfig },
      }),
      // Everyone may do everything except Bob: the user's permissions
      // apply to what the actions do, not the scaffolder's.
      createServiceFactory({
        service: coreServices.permissions,
        deps: {},
        factory: () => {
          const result = (credentials: BackstageCredentials) =>
            (credentials.principal as { userEntityRef?: string })
              .userEntityRef === BOB
              ? AuthorizeResult.DENY
              : AuthorizeResult.ALLOW;
          return {
            authorize: async (requests: unknown[], o: any) =>
              requests.map(() => ({ result: result(o.credentials) })),
            authorizeConditional: async (requests: unknown[], o: any) =>
              requests.map(() => ({ result: result(o.credentials) })),
          } as any;
        },
      }),
    ],
  });
  const baseUrl = `http://localhost:${backend.server.port()}/api/progression`;
  const header = mockCredentials.user.header(ALICE);
  return {
    sim,
    progressionConfig,
    actions: {
      register: actions.get('progression:release:register')!,
      promote: actions.get('progression:promote')!,
      validate: actions.get('progression:pipeline:validate')!,
    },
    baseUrl,
    async get(path) {
      const res = await fetch(`${baseUrl}/v1/${path}`, {
        headers: { Authorization: header },
      });
      if (!res.ok) throw new Error(`GET ${path}: ${res.status}`);
      return res.json();
    },
    async post(path, body) {
      const res = await fetch(`${baseUrl}/v1/${path}`, {
        method: 'POST',
        headers: { Authorization: header, 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
      return { status: res.status, body: await res.json() };
    },
    async stop() {
      await backend.stop();
      await demo.stop();
      await sim.stop();
    },
  };
}

export interface RunOptions {
  taskId?: string;
  stepId?: string;
  isDryRun?: boolean;
  /** Who runs the task. Default: Alice. */
  user?: string;
  /** Aborted when the task is cancelled. */
  signal?: AbortSignal;
}

export interface ActionRun {
  ctx: ActionContext<JsonObject, JsonObject>;
  outputs: Record<string, any>;
  /** Every line logged, info then warn then error. */
  logs(): string[];
  warnings(): string[];
}

/**
 * An action context as the scaffolder's task runner makes one, with the
 * given user as the task's initiator. Outputs and log lines are collected.
 */
export function actionContext(
  input: JsonObject,
  options: RunOptions = {},
): ActionRun {
  const logger = mockServices.logger.mock();
  const outputs: Record<string, any> = {};
  const base = createMockActionContext<JsonObject, JsonObject>({
    input,
    logger,
    task: { id: options.taskId ?? 'task-1' },
  });
  const credentials = mockCredentials.user(options.user ?? ALICE);
  const ctx: ActionContext<JsonObject, JsonObject> = {
    ...base,
    output: (name: string, value: unknown) => {
      outputs[name] = value;
    },
    step: { id: options.stepId ?? 'step-1', name: 'a step' },
    isDryRun: options.isDryRun ?? false,
    signal: options.signal,
    getInitiatorCredentials: async () => credentials,
  };
  const lines = (level: 'info' | 'warn' | 'error') =>
    (logger[level] as jest.Mock).mock.calls.map(c => String(c[0]));
  return {
    ctx,
    outputs,
    logs: () => [...lines('info'), ...lines('warn'), ...lines('error')],
    warnings: () => lines('warn'),
  };
}

/**
 * Runs an action's handler as the task runner would, after checking the
 * input against the action's JSON schema like the runner does.
 */
export async function runAction(
  action: AnyAction,
  input: JsonObject,
  options: RunOptions = {},
): Promise<ActionRun> {
  const checked = validateJsonSchema(input, action.schema?.input ?? {});
  if (!checked.valid) {
    throw new Error(
      `Invalid input passed to action ${action.id}, ${checked.errors.join(
        ', ',
      )}`,
    );
  }
  const run = actionContext(input, options);
  await action.handler(run.ctx);
  return run;
}

/** The steps of an action's examples, parsed from their YAML. */
export function exampleSteps(action: AnyAction) {
  return (action.examples ?? []).flatMap(example => {
    const steps = yaml.parse(example.example).steps as Array<{
      id: string;
      action: string;
      input: JsonObject;
    }>;
    return steps.map(step => ({ description: example.description, ...step }));
  });
}

/** Polls a promotion until it is in one of the states. */
export async function waitForState(
  progression: Progression,
  id: string,
  states: string[],
) {
  for (let i = 0; i < 400; i++) {
    const details = await progression.get(`promotions/${id}`);
    if (states.includes(details.promotion.state)) return details;
    await new Promise(r => setTimeout(r, 25));
  }
  throw new Error(`promotion ${id} did not reach ${states.join(' or ')}`);
}
