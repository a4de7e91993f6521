import {
  ConflictError,
  NotAllowedError,
  NotFoundError,
  ServiceUnavailableError,
} from '@backstage/errors';

/** An Argo CD instance, as the Backstage Argo CD plugins configure it. */
export interface ArgoCdInstance {
  name: string;
  url: string;
  token: string;
}

/** The parts of an Application (argoproj.io/v1alpha1) Progression reads. */
export interface Application {
  metadata: { name: string; namespace?: string };
  spec: {
    source?: { repoURL: string; path?: string; targetRevision?: string };
    destination?: { server?: string; name?: string; namespace?: string };
    syncPolicy?: {
      automated?: { prune?: boolean; selfHeal?: boolean } | null;
    };
  };
  status?: {
    sync?: { status?: string; revision?: string };
    health?: { status?: string; message?: string };
    reconciledAt?: string;
    operationState?: {
      phase?: string;
      message?: string;
      startedAt?: string;
      finishedAt?: string;
      syncResult?: { revision?: string };
      operation?: {
        initiatedBy?: { username?: string; automated?: boolean };
      };
    };
    summary?: { images?: string[] };
    conditions?: { type: string; message?: string }[];
  };
  operation?: unknown;
}

const DNS_SUBDOMAIN =
  /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Whether a name can be an Application's (a DNS-1123 subdomain). */
export function isApplicationName(name: string) {
  return name.length <= 253 && DNS_SUBDOMAIN.test(name);
}

/**
 * Argo CD's REST API, the calls Progression makes: read an Application
 * (refreshing it), and sync it to a revision. Every call is bounded; the
 * token goes in the Authorization header only, never in a message.
 */
export class ArgoCdClient {
  constructor(
    readonly instance: ArgoCdInstance,
    private readonly timeoutMs = 30_000,
  ) {}

  private async call<T>(
    method: 'GET' | 'POST',
    pathAndQuery: string,
    what: string,
    body?: unknown,
  ): Promise<T> {
    let response: Response;
    try {
      response = await fetch(
        new URL(pathAndQuery, this.instance.url.replace(/\/*$/, '/')),
        {
          method,
          headers: {
            Authorization: `Bearer ${this.instance.token}`,
            Accept: 'application/json',
            ...(body !== undefined && { 'Content-Type': 'application/json' }),
          },
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: AbortSignal.timeout(this.timeoutMs),
        },
      );
    } catch (e: any) {
      throw new ServiceUnavailableError(
        `Argo CD instance ${this.instance.name}: ${what} failed: ${
          e?.name === 'TimeoutError'
            ? `no answer in ${this.timeoutMs / 1000} s`
            : e?.cause?.code ?? e?.message
        }`,
      );
    }
    const text = await response.text();
    let json: any;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (response.ok) return json as T;
    const said = String(json?.message ?? json?.error ?? text).slice(0, 300);
    const message = `Argo CD instance ${this.instance.name}: ${what}: ${response.status} ${said}`;
    switch (response.status) {
      case 401:
        // Another attempt with the same token gets the same answer.
        throw new NotAllowedError(
          `${message} (check the instance's token in argocd.appLocatorMethods)`,
        );
      case 403:
        throw new NotAllowedError(message);
      case 404:
        throw new NotFoundError(message);
      case 400:
      case 409:
        throw new ConflictError(message);
      default:
        throw new ServiceUnavailableError(message);
    }
  }

  /** The Application; with `refresh`, after Argo CD compared it with Git again. */
  getApplication(
    name: string,
    options: { refresh?: 'normal' | 'hard'; appNamespace?: string } = {},
  ): Promise<Application> {
    const query = new URLSearchParams();
    if (options.refresh) query.set('refresh', options.refresh);
    if (options.appNamespace) query.set('appNamespace', options.appNamespace);
    const q = query.toString();
    return this.call(
      'GET',
      `api/v1/applications/${encodeURIComponent(name)}${q ? `?${q}` : ''}`,
      `read Application ${name}`,
    );
  }

  /** Starts a sync of the Application to `revision`. */
  sync(
    name: string,
    options: { revision: string; appNamespace?: string },
  ): Promise<Application> {
    return this.call(
      'POST',
      `api/v1/applications/${encodeURIComponent(name)}/sync`,
      `sync Application ${name} to ${options.revision.slice(0, 7)}`,
      {
        revision: options.revision,
        ...(options.appNamespace && { appNamespace: options.appNamespace }),
      },
    );
  }
}
