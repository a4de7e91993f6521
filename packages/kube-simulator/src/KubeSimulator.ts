import { ApiServer } from './api/ApiServer';
import { selfSignedCertificate } from './api/tls';
import { Faults, FaultSettings } from './api/Faults';
import { ObjectService } from './api/ObjectService';
import { RbacAuthorizer } from './api/rbac';
import { RESOURCES } from './api/resources';
import { Controllers } from './controllers/Controllers';
import { PodLogs } from './controllers/PodLogs';
import { KubeObject, Store } from './store/Store';

export interface KubeSimulatorOptions {
  /** Port to listen on, 0 (the default) for any free port. */
  port?: number;
  /** Host to listen on; loopback only by default. */
  host?: string;
  /** The bearer token clients must send. */
  token?: string;
  /**
   * How long a pod takes to start and become ready (ms), default 300; a
   * crash-looping container runs as long before it exits.
   */
  podReadyDelayMs?: number;
  /**
   * The kubelet's first back-off (ms; 10 s on a real node), default 300: a
   * crash-looping container waits it, then twice it, … up to 30 times it
   * between restarts, and a failed image pull as long before the next pull.
   */
  backOffMs?: number;
  /** How long a Job's pod runs (ms), default 500. */
  jobRunMs?: number;
  /** How often watches that ask for bookmarks get one (ms), default 30 s. */
  bookmarkIntervalMs?: number;
  /** How many events are kept for watches that resume, default 20,000. */
  watchHistory?: number;
  /**
   * Serve HTTPS with a self-signed certificate (whose CA the kubeconfig
   * carries). Needed for kubectl, which sends no token over plain HTTP.
   */
  tls?: boolean;
  /**
   * Enforce RBAC on service-account tokens (Roles, ClusterRoles and their
   * bindings; 403 Forbidden otherwise). The admin token is never limited.
   */
  rbac?: boolean;
  /**
   * Users of other tokens, as a cluster's token webhook names them (EKS's
   * aws-iam-authenticator, GKE's and AKS's own): called with the bearer
   * token of a request that is neither the admin's nor a service
   * account's (undefined without one); a user lets the request in (and,
   * with `rbac`, through RBAC as that user), none answers 401.
   */
  authenticateToken?: (
    token: string | undefined,
  ) => { name: string; groups?: string[] } | undefined;
  /** Called when a pod of a ReplicaSet starts running. */
  onPodRunning?: (pod: KubeObject) => void;
  /** Called when a pod is deleted. */
  onPodDeleted?: (pod: KubeObject) => void;
}

export const DEFAULT_TOKEN = 'progression-demo-token';

/**
 * A Kubernetes API server for tests and the demo. Start it, point a client
 * at `url` (or write `kubeconfig()` to a file for kubectl), `stop()` it.
 */
export class KubeSimulator {
  readonly store: Store;
  readonly objects: ObjectService;
  readonly logs = new PodLogs();
  readonly faults = new Faults();
  private readonly controllers: Controllers;
  private readonly api: ApiServer;
  private readonly accounts: RbacAuthorizer;
  private started?: string;
  private readonly certificate?: { key: string; cert: string };

  private constructor(private readonly options: KubeSimulatorOptions) {
    this.store = new Store(options.watchHistory);
    this.objects = new ObjectService(this.store);
    this.controllers = new Controllers(this.objects, this.logs, {
      podReadyDelayMs: options.podReadyDelayMs ?? 300,
      backOffMs: options.backOffMs ?? 300,
      jobRunMs: options.jobRunMs ?? 500,
      onPodRunning: options.onPodRunning,
      onPodDeleted: options.onPodDeleted,
    });
    this.certificate = options.tls ? selfSignedCertificate() : undefined;
    this.accounts = new RbacAuthorizer(this.store);
    this.api = new ApiServer({
      tls: this.certificate,
      objects: this.objects,
      logs: this.logs,
      faults: this.faults,
      token: options.token ?? DEFAULT_TOKEN,
      accounts: this.accounts,
      enforceRbac: options.rbac,
      authenticateToken: options.authenticateToken,
      bookmarkIntervalMs: options.bookmarkIntervalMs,
    });
    for (const ns of ['default', 'kube-system', 'kube-public']) {
      this.apply({
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: ns },
      });
    }
  }

  static async start(
    options: KubeSimulatorOptions = {},
  ): Promise<KubeSimulator> {
    const sim = new KubeSimulator(options);
    sim.started = await sim.api.listen(
      options.port ?? 0,
      options.host ?? '127.0.0.1',
    );
    return sim;
  }

  /** The API server's base URL, for example `http://127.0.0.1:43121`. */
  get url(): string {
    if (!this.started) throw new Error('the simulator is not started');
    return this.started;
  }

  /** The PEM certificate of the HTTPS server (its own CA), when `tls` is set. */
  get caCertificate(): string | undefined {
    return this.certificate?.cert;
  }

  get token(): string {
    return this.options.token ?? DEFAULT_TOKEN;
  }

  /**
   * A bearer token for an existing ServiceAccount, as `kubectl create token`
   * gets one; with `rbac`, its requests are checked against the bindings.
   */
  serviceAccountToken(namespace: string, name: string): string {
    return this.accounts.issueToken(namespace, name);
  }

  /**
   * Resource requests made with service-account tokens (the last 10,000),
   * as RBAC sees them (verb, API group, resource, subresource, namespace,
   * name) and whether they were allowed.
   */
  get access() {
    return this.api.access;
  }

  /** A kubeconfig (JSON, which kubectl and client-node read as YAML) for this server. */
  kubeconfig(contextName = 'simulator', token = this.token): string {
    return JSON.stringify(
      {
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [
          {
            name: contextName,
            cluster: this.certificate
              ? {
                  server: this.url,
                  'certificate-authority-data': Buffer.from(
                    this.certificate.cert,
                  ).toString('base64'),
                }
              : // client-node 1.x refuses plain HTTP unless TLS verification is off.
                { server: this.url, 'insecure-skip-tls-verify': true },
          },
        ],
        users: [{ name: contextName, user: { token } }],
        contexts: [
          {
            name: contextName,
            context: {
              cluster: contextName,
              user: contextName,
              namespace: 'default',
            },
          },
        ],
        'current-context': contextName,
      },
      null,
      2,
    );
  }

  /** Creates or replaces an object directly, without HTTP. */
  apply(obj: KubeObject): KubeObject {
    const type = RESOURCES.find(
      r =>
        r.kind === obj.kind &&
        `${r.group ? `${r.group}/` : ''}${r.version}` === obj.apiVersion,
    );
    if (!type)
      throw new Error(`unsupported kind ${obj.apiVersion}/${obj.kind}`);
    if (type.derive) {
      // Computed from other objects on each read (PodMetrics from pods); it
      // shares its plural with a stored kind, so storing it would overwrite that.
      throw new Error(
        `${obj.apiVersion}/${obj.kind} is computed by the simulator and cannot be applied`,
      );
    }
    const existing = this.store.get(
      type.plural,
      type.namespaced ? obj.metadata.namespace ?? 'default' : undefined,
      obj.metadata.name,
    );
    if (!existing)
      return this.objects.create(
        type,
        obj,
        type.namespaced ? obj.metadata.namespace ?? 'default' : undefined,
      );
    return this.objects.update(
      type,
      {
        ...obj,
        metadata: {
          ...obj.metadata,
          resourceVersion: existing.metadata.resourceVersion,
        },
      },
      existing.metadata.namespace,
      obj.metadata.name,
    );
  }

  /** Injects API faults; see {@link FaultSettings}. */
  injectFaults(settings: FaultSettings) {
    this.faults.set(settings);
  }

  clearFaults() {
    this.faults.clear();
  }

  /** Cuts every open watch connection now. */
  dropWatches() {
    this.api.dropWatches();
  }

  get openWatches() {
    return this.api.openWatches;
  }

  async stop(): Promise<void> {
    this.controllers.stop();
    await this.api.close();
  }
}
