import http from 'node:http';
import { AddressInfo } from 'node:net';
import { KubeSimulator } from '../KubeSimulator';
import { KubeObject } from '../store/Store';
import { imageTag } from '../controllers/behaviour';
import { RequestMetrics } from './metrics';

const KUBERNETES_ID = 'backstage.io/kubernetes-id';

/** What a demo pod does, from its image tag (see the package README). */
export function workloadBehaviour(tag: string) {
  return {
    healthy: !tag.includes('unhealthy'),
    errorRate: tag.includes('errors') ? 0.3 : 0,
    extraLatencyMs: tag.includes('slow') ? 600 : 0,
    dbUp: !tag.includes('db-down'),
  };
}

/**
 * The demo workloads of one namespace, served over real HTTP on one port:
 * `http://127.0.0.1:<port>/<kubernetes-id>/<path>` goes to a ready pod of
 * the Deployment labelled `backstage.io/kubernetes-id=<kubernetes-id>` in
 * that namespace, which answers according to its image tag. Stage URLs in
 * app-config point here: `url: http://127.0.0.1:7102/{{ kubernetesId }}`.
 *
 * `/metrics` (all workloads) and `/<kubernetes-id>/metrics` are Prometheus
 * text with `http_requests_total{status}` and `http_request_duration_seconds`.
 */
export class WorkloadServer {
  private server?: http.Server;
  private readonly metrics = new RequestMetrics();
  private roundRobin = 0;
  url = '';

  constructor(
    private readonly sim: KubeSimulator,
    readonly namespace: string,
  ) {}

  async listen(port = 0, host = '127.0.0.1') {
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch(() => {
        if (!res.headersSent) res.writeHead(500);
        res.end();
      });
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, host, () => resolve());
    });
    this.url = `http://${host}:${(this.server.address() as AddressInfo).port}`;
    return this.url;
  }

  async close() {
    if (!this.server) return;
    this.server.closeAllConnections?.();
    await new Promise<void>(resolve => this.server!.close(() => resolve()));
  }

  private readyPods(kubernetesId: string): KubeObject[] {
    const deployments = this.sim.store.list(
      'deployments',
      this.namespace,
      d => d.metadata.labels?.[KUBERNETES_ID] === kubernetesId,
    );
    if (!deployments.length) return [];
    const selectors = deployments.map(d => d.spec.selector?.matchLabels ?? {});
    return this.sim.store.list(
      'pods',
      this.namespace,
      p =>
        selectors.some(sel =>
          Object.entries(sel).every(([k, v]) => p.metadata.labels?.[k] === v),
        ) &&
        (p.status?.conditions ?? []).some(
          (c: any) => c.type === 'Ready' && c.status === 'True',
        ),
    );
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse) {
    const started = process.hrtime.bigint();
    const url = new URL(req.url ?? '/', 'http://localhost');
    const [id, ...rest] = url.pathname.split('/').filter(Boolean);
    const send = (status: number, body: unknown, type = 'application/json') => {
      const text = typeof body === 'string' ? body : JSON.stringify(body);
      res.writeHead(status, {
        'Content-Type': type,
        'Content-Length': Buffer.byteLength(text),
      });
      res.end(text);
    };
    if (!id || id === 'metrics') {
      if (id === 'metrics')
        return send(
          200,
          this.metrics.render({ namespace: this.namespace }),
          'text/plain; version=0.0.4',
        );
      return send(200, {
        namespace: this.namespace,
        workloads: 'GET /<kubernetes-id>/healthz',
      });
    }
    const path = `/${rest.join('/')}`;
    if (path === '/metrics') {
      return send(
        200,
        this.metrics.render({ namespace: this.namespace, app: id }),
        'text/plain; version=0.0.4',
      );
    }
    const pods = this.readyPods(id);
    if (!pods.length) {
      return send(503, {
        error: `no ready pod of '${id}' in namespace '${this.namespace}'`,
      });
    }
    const pod = pods[this.roundRobin++ % pods.length];
    const container = pod.spec.containers?.[0] ?? {};
    const tag = imageTag(container.image);
    const behaviour = workloadBehaviour(tag);
    if (behaviour.extraLatencyMs)
      await new Promise(r => setTimeout(r, behaviour.extraLatencyMs));

    let status = 200;
    let body: unknown;
    if (behaviour.errorRate && Math.random() < behaviour.errorRate) {
      status = 500;
      body = { error: 'internal error (the image tag asks for errors)' };
    } else if (req.method === 'GET' && path === '/healthz') {
      status = behaviour.healthy ? 200 : 503;
      body = behaviour.healthy
        ? { status: 'ok' }
        : {
            status: 'unhealthy',
            reason: 'the image tag asks for an unhealthy pod',
          };
    } else if (req.method === 'GET' && path === '/api/version') {
      body = {
        version: tag,
        image: container.image,
        pod: pod.metadata.name,
        namespace: this.namespace,
      };
    } else if (req.method === 'GET' && path === '/api/db-status') {
      status = behaviour.dbUp ? 200 : 503;
      body = { connected: behaviour.dbUp, database: `${id}-${this.namespace}` };
    } else if (req.method === 'POST' && path === '/api/test-action') {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      let input: unknown = null;
      try {
        input = chunks.length
          ? JSON.parse(Buffer.concat(chunks).toString('utf8'))
          : null;
      } catch {
        status = 400;
      }
      body =
        status === 400
          ? { error: 'body is not JSON' }
          : { ok: true, received: input, pod: pod.metadata.name };
      if (status === 200) status = 201;
    } else {
      status = 404;
      body = { error: `no route ${req.method} ${path}` };
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    this.metrics.observe(
      { namespace: this.namespace, app: id, version: tag },
      status,
      seconds,
    );
    return send(status, body);
  }
}
