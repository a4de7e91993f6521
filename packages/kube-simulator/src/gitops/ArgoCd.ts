import { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { KubeSimulator } from '../KubeSimulator';
import { KubeObject } from '../store/Store';
import { ApplicationController } from './ApplicationController';
import { ArgoCdApi } from './ArgoCdApi';
import { RepositoryCredentials, Repositories } from './Repositories';
import { killAll } from './run';

export interface ArgoCdOptions {
  /** The bearer token of the REST API (also accepted as the `argocd.token` cookie). */
  token: string;
  /** The REST server's port, default 0: any free port. */
  port?: number;
  /** Default 127.0.0.1: loopback only. */
  host?: string;
  /** Where Applications live, default `argocd` (created if absent). */
  namespace?: string;
  /**
   * Credentials to fetch repositories, by URL prefix (the longest match
   * wins), as Argo CD's repository credentials:
   * `{ [gitServer.url]: { username: 'argocd', password: token } }`.
   */
  repositories?: Record<string, RepositoryCredentials>;
  /** The periodic refresh (Argo CD's timeout.reconciliation, 180 s); default 3000. */
  reconcileMs?: number;
  /** The first self-heal back-off, doubling per consecutive attempt; default 2000. */
  selfHealBackoffMs?: number;
  /** The self-heal back-off's cap, default 300000 (Argo CD's 5 min). */
  maxSelfHealBackoffMs?: number;
  /**
   * Not Argo CD's behaviour, for the demo: how long a drift stays before
   * the first self-heal, so that it can be seen (default 0: at once, as
   * Argo CD when its last sync is older than the back-off).
   */
  selfHealDelayMs?: number;
  /** The kubectl that renders Kustomize sources, default `kubectl` on PATH. */
  kubectl?: string;
}

/**
 * A stand-in for Argo CD against the simulator: its application controller
 * (Git → kustomize → compare → sync, automated sync, prune and self-heal)
 * and the REST API to read, refresh and sync Applications. The README says
 * what it leaves out.
 */
export class ArgoCdStandIn {
  private address = '';

  private constructor(
    private readonly server: http.Server,
    private readonly controller: ApplicationController,
    private readonly children: Set<ChildProcess>,
    private readonly workDir: string,
  ) {}

  static async start(
    sim: KubeSimulator,
    options: ArgoCdOptions,
  ): Promise<ArgoCdStandIn> {
    if (!options.token) throw new Error('the Argo CD stand-in needs a token');
    const namespace = options.namespace ?? 'argocd';
    if (!sim.store.get('namespaces', undefined, namespace)) {
      sim.apply({
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: namespace },
      });
    }
    const workDir = await fs.promises.mkdtemp(
      path.join(os.tmpdir(), 'argocd-'),
    );
    const children = new Set<ChildProcess>();
    const repositories = new Repositories(
      workDir,
      options.repositories ?? {},
      options.kubectl ?? 'kubectl',
      children,
    );
    const controller = new ApplicationController(sim.objects, repositories, {
      namespace,
      reconcileMs: options.reconcileMs ?? 3000,
      selfHealBackoffMs: options.selfHealBackoffMs ?? 2000,
      maxSelfHealBackoffMs: options.maxSelfHealBackoffMs ?? 300_000,
      selfHealDelayMs: options.selfHealDelayMs,
    });
    const api = new ArgoCdApi({
      token: options.token,
      namespace,
      objects: sim.objects,
      controller,
    });
    const server = http.createServer((req, res) => api.handle(req, res));
    const argo = new ArgoCdStandIn(server, controller, children, workDir);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () =>
          resolve(),
        );
      });
    } catch (e) {
      await argo.stop();
      throw e;
    }
    const { address, port } = server.address() as AddressInfo;
    argo.address = `http://${
      address.includes(':') ? `[${address}]` : address
    }:${port}`;
    return argo;
  }

  /** The REST API's base URL, for example `http://127.0.0.1:40123`. */
  get url(): string {
    return this.address;
  }

  /**
   * Refreshes an app now, as `?refresh=hard` does, and resolves with it
   * once that reconcile (and any automated sync it started) is recorded.
   */
  refresh(name: string): Promise<KubeObject> {
    return this.controller.refresh(name, 'hard');
  }

  /** Stops the controller, its git and kubectl processes and the REST server. */
  async stop(): Promise<void> {
    // The controller stops starting work first, then its processes die.
    const stopping = this.controller.stop();
    killAll(this.children);
    await stopping;
    killAll(this.children);
    await new Promise<void>(resolve => {
      if (!this.server.listening) {
        resolve();
        return;
      }
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    await fs.promises.rm(this.workDir, { recursive: true, force: true });
  }
}
