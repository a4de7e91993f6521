import { KubeSimulator } from '../KubeSimulator';
import { WorkloadServer } from './WorkloadServer';

export interface DemoStage {
  namespace: string;
  environment: string;
  port: number;
}

/** The demo's stages; app-config's stage URLs use these ports. */
export const DEMO_STAGES: DemoStage[] = [
  { namespace: 'development', environment: 'dev', port: 7101 },
  { namespace: 'staging', environment: 'staging', port: 7102 },
  { namespace: 'production', environment: 'prod', port: 7103 },
];

export const DEMO_SERVICES = [
  {
    name: 'payments-api',
    image: 'registry.local/payments-api',
    version: '1.0.0',
    replicas: { development: 1, staging: 2, production: 3 },
  },
  {
    name: 'web-shop',
    image: 'registry.local/web-shop',
    version: '2.3.0',
    replicas: { development: 1, staging: 2, production: 2 },
  },
];

const FLAGS: Record<string, Record<string, boolean>> = {
  development: {
    'new-checkout': true,
    'fast-refunds': true,
    'dark-mode': true,
  },
  staging: { 'new-checkout': true, 'fast-refunds': false, 'dark-mode': true },
  production: {
    'new-checkout': false,
    'fast-refunds': false,
    'dark-mode': true,
  },
};

/**
 * Creates the demo cluster's contents: one namespace per stage labelled
 * `environment=dev|staging|prod`, a default-deny ingress policy and a
 * same-environment allow policy in each, a flagd ConfigMap of feature flags,
 * and the example services' Deployments and Services at a first version. Then
 * serves the workloads over HTTP (one port per stage) with light background
 * traffic so their metrics are never empty.
 */
export async function installDemo(
  sim: KubeSimulator,
  options: {
    stages?: DemoStage[];
    /** Serve the workloads on any free ports (tests), not 7101-7103. */
    anyPorts?: boolean;
    trafficIntervalMs?: number;
  } = {},
) {
  const stages = (options.stages ?? DEMO_STAGES).map(stage =>
    options.anyPorts ? { ...stage, port: 0 } : stage,
  );
  for (const stage of stages) {
    sim.apply({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: {
        name: stage.namespace,
        labels: { environment: stage.environment },
      },
    });
    sim.apply({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: 'default-deny-ingress', namespace: stage.namespace },
      spec: { podSelector: {}, policyTypes: ['Ingress'] },
    });
    sim.apply({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: 'allow-same-environment', namespace: stage.namespace },
      spec: {
        podSelector: {},
        policyTypes: ['Ingress'],
        ingress: [
          {
            from: [
              {
                namespaceSelector: {
                  matchLabels: { environment: stage.environment },
                },
              },
            ],
          },
        ],
      },
    });
    sim.apply({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {
        name: 'feature-flags',
        namespace: stage.namespace,
        labels: { 'app.kubernetes.io/part-of': 'progression-demo' },
      },
      data: {
        'flags.json': JSON.stringify(
          {
            $schema: 'https://flagd.dev/schema/v0/flags.json',
            flags: Object.fromEntries(
              Object.entries(FLAGS[stage.namespace] ?? {}).map(([flag, on]) => [
                flag,
                {
                  state: 'ENABLED',
                  variants: { on: true, off: false },
                  defaultVariant: on ? 'on' : 'off',
                },
              ]),
            ),
          },
          null,
          2,
        ),
      },
    });
    for (const svc of DEMO_SERVICES) {
      const labels = { app: svc.name, 'backstage.io/kubernetes-id': svc.name };
      sim.apply({
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: {
          name: `${svc.name}-db-credentials`,
          namespace: stage.namespace,
        },
        stringData: {
          username: svc.name,
          password: `demo-${stage.namespace}-password`,
        },
      });
      sim.apply({
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: {
          name: svc.name,
          namespace: stage.namespace,
          labels,
          annotations: {
            'kubernetes.io/change-cause': `initial release ${svc.version}`,
          },
        },
        spec: {
          replicas:
            (svc.replicas as Record<string, number>)[stage.namespace] ?? 1,
          selector: { matchLabels: { app: svc.name } },
          template: {
            metadata: { labels },
            spec: {
              containers: [
                {
                  name: svc.name,
                  image: `${svc.image}:${svc.version}`,
                  ports: [{ containerPort: 8080 }],
                  env: [
                    { name: 'ENVIRONMENT', value: stage.environment },
                    {
                      name: 'DB_PASSWORD',
                      valueFrom: {
                        secretKeyRef: {
                          name: `${svc.name}-db-credentials`,
                          key: 'password',
                        },
                      },
                    },
                  ],
                },
              ],
            },
          },
        },
      });
      sim.apply({
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: svc.name, namespace: stage.namespace, labels },
        spec: {
          selector: { app: svc.name },
          ports: [{ port: 80, targetPort: 8080 }],
        },
      });
    }
  }

  const servers = await Promise.all(
    stages.map(async stage => {
      const server = new WorkloadServer(sim, stage.namespace);
      await server.listen(stage.port);
      return server;
    }),
  );

  // Light background traffic keeps request rates and latencies non-empty.
  const interval = setInterval(() => {
    for (const server of servers) {
      for (const svc of DEMO_SERVICES) {
        fetch(`${server.url}/${svc.name}/api/version`).then(
          r => r.arrayBuffer(),
          () => undefined,
        );
      }
    }
  }, options.trafficIntervalMs ?? 1000);
  interval.unref?.();

  return {
    servers,
    async stop() {
      clearInterval(interval);
      await Promise.all(servers.map(s => s.close()));
    },
  };
}
