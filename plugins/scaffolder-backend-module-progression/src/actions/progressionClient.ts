import {
  AuthService,
  BackstageCredentials,
  DiscoveryService,
} from '@backstage/backend-plugin-api';
import {
  CompoundEntityRef,
  Entity,
  parseEntityRef,
  stringifyEntityRef,
} from '@backstage/catalog-model';
import { ConfigReader, readDurationFromConfig } from '@backstage/config';
import {
  AuthenticationError,
  ConflictError,
  InputError,
  NotAllowedError,
  NotFoundError,
} from '@backstage/errors';
import { durationToMilliseconds } from '@backstage/types';
import {
  EntityValidation,
  ProgressionApiClient,
  PromotionDetailsDto,
  PromotionDto,
  ReleaseDto,
  TERMINAL_PROMOTION_STATES,
} from '@progression-io/backstage-plugin-progression-common';

/*
 * What the three actions share: the calls to Progression's REST API, made
 * on behalf of the user who runs the task, and the parsing of their inputs.
 */

export type { PromotionDetailsDto, PromotionDto, ReleaseDto };

/** The states a promotion ends in. */
export const TERMINAL_STATES: readonly string[] = TERMINAL_PROMOTION_STATES;

/** The API's rules for a release, checked before anything is sent. */
export const VERSION_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._+-]*$/;
export const IMAGE_PATTERN = /^[a-z0-9][a-z0-9._/:@-]*[a-zA-Z0-9]$/;
export const COMMIT_PATTERN = /^[0-9a-f]{7,64}$/;
export const STAGE_PATTERN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/**
 * An entity reference as the actions take it: `kind:namespace/name`, the
 * kind defaulting to `component` and the namespace to `default`.
 */
export function parseEntityRefInput(entityRef: string): CompoundEntityRef {
  try {
    return parseEntityRef(entityRef.trim(), {
      defaultKind: 'component',
      defaultNamespace: 'default',
    });
  } catch (e) {
    throw new InputError(
      `entityRef '${entityRef}' is not an entity reference such as component:default/payments-api: ${
        (e as Error).message
      }`,
    );
  }
}

export function checkVersion(version: string): void {
  if (version.length > 128 || !VERSION_PATTERN.test(version)) {
    throw new InputError(
      `version '${version}' is not a valid release version: use at most 128 letters, digits and '. _ + -', starting with a letter or digit`,
    );
  }
}

export function checkStage(stage: string): void {
  if (stage.length > 63 || !STAGE_PATTERN.test(stage)) {
    throw new InputError(
      `stage '${stage}' is not a valid stage name: lowercase letters, digits and '-'`,
    );
  }
}

/**
 * A duration input in milliseconds: a number of seconds, or a string such
 * as `90` (seconds), `30m`, `1h`, `500ms` or `PT30M`.
 */
export function readDurationInput(
  value: string | number | undefined,
  name: string,
  fallbackMs: number,
): number {
  if (value === undefined) return fallbackMs;
  const invalid = () =>
    new InputError(
      `${name} must be a number of seconds or a duration such as '30m', '1h' or 'PT30M', got '${value}'`,
    );
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0) throw invalid();
    return value * 1000;
  }
  const text = value.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text) * 1000;
  let ms: number;
  try {
    ms = durationToMilliseconds(
      readDurationFromConfig(new ConfigReader({ value: text }), {
        key: 'value',
      }),
    );
  } catch {
    throw invalid();
  }
  if (!Number.isFinite(ms) || ms < 0) throw invalid();
  return ms;
}

/** `90 s`, `30 min`, `1 h 30 min`: for messages. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  const seconds = Math.round(ms / 1000);
  if (seconds < 60) return `${seconds} s`;
  const hours = Math.floor(seconds / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  const rest = seconds % 60;
  return [
    hours ? `${hours} h` : '',
    minutes ? `${minutes} min` : '',
    rest ? `${rest} s` : '',
  ]
    .filter(Boolean)
    .join(' ');
}

/** The backend's error message, from Backstage's `{ error: { message } }`. */
async function errorMessage(response: Response): Promise<string> {
  const text = await response.text().catch(() => '');
  try {
    const message = JSON.parse(text)?.error?.message;
    if (typeof message === 'string' && message) return message;
  } catch {
    // not JSON: use the text
  }
  return text.trim() || `${response.status} ${response.statusText}`;
}

/**
 * A failed response as the Backstage error of its status, with the
 * backend's message after what was attempted.
 */
async function responseError(
  response: Response,
  attempted: string,
): Promise<Error> {
  const message = `${attempted}: ${await errorMessage(response)}`;
  switch (response.status) {
    case 400:
    case 413:
      return new InputError(message);
    case 401:
      return new AuthenticationError(message);
    case 403:
      return new NotAllowedError(message);
    case 404:
      return new NotFoundError(message);
    case 409:
      return new ConflictError(message);
    default: {
      const error = new Error(
        `${attempted}: Progression answered ${response.status} ${response.statusText}: ${message}`,
      );
      error.name = 'ProgressionApiError';
      return error;
    }
  }
}

/** True for errors worth polling again after: the network, a 5xx. */
export function isTransient(error: unknown): boolean {
  const name = (error as Error)?.name;
  return !(
    [
      'InputError',
      'AuthenticationError',
      'NotAllowedError',
      'NotFoundError',
      'ConflictError',
      'AbortError',
    ] as Array<string | undefined>
  ).includes(name);
}

/**
 * Progression's REST API (`/api/progression/v1`), called with a token that
 * acts on behalf of the given credentials: the task's initiator, so that
 * Progression applies their permissions, not the scaffolder's.
 */
export class ProgressionClient {
  constructor(
    private readonly options: {
      discovery: DiscoveryService;
      auth: AuthService;
      credentials: BackstageCredentials;
      signal?: AbortSignal;
    },
  ) {}

  /**
   * Makes one call with the shared client, its errors saying what was
   * attempted: a failed response as the Backstage error of its status, an
   * unreachable backend in words.
   */
  private async call<T>(
    attempted: string,
    request: (api: ProgressionApiClient) => Promise<T>,
  ): Promise<T> {
    const { discovery, auth, credentials, signal } = this.options;
    const baseUrl = await discovery.getBaseUrl('progression');
    const { token } = await auth.getPluginRequestToken({
      onBehalfOf: credentials,
      targetPluginId: 'progression',
    });
    return request(
      new ProgressionApiClient({
        baseUrl: async () => baseUrl,
        token: async () => token,
        signal,
        fetch: async (url, init) => {
          try {
            return await fetch(url, init);
          } catch (e) {
            if ((e as Error).name === 'AbortError') throw e;
            throw new Error(
              `${attempted}: Progression at ${baseUrl} cannot be reached: ${
                (e as Error).message
              }${(e as any).cause ? ` (${(e as any).cause.message})` : ''}`,
            );
          }
        },
        errorFromResponse: response => responseError(response, attempted),
      }),
    );
  }

  /** The kind in lower case, as Progression's paths spell it. */
  private static lowerKind(ref: CompoundEntityRef): CompoundEntityRef {
    return { ...ref, kind: ref.kind.toLocaleLowerCase('en-US') };
  }

  /** Registers a release: created (201) or the same one again (200). */
  async registerRelease(
    ref: CompoundEntityRef,
    release: { version: string; image: string; commit?: string; url?: string },
  ): Promise<{ release: ReleaseDto; created: boolean }> {
    return this.call(
      `Could not register release ${release.version} of ${stringifyEntityRef(
        ref,
      )}`,
      api => api.registerRelease(ProgressionClient.lowerKind(ref), release),
    );
  }

  /** Requests a promotion (202); the same key returns the same one. */
  async requestPromotion(
    ref: CompoundEntityRef,
    request: { stage: string; version?: string; reason?: string },
    idempotencyKey: string,
  ): Promise<PromotionDto> {
    return this.call(
      `Could not promote ${
        request.version ? `release ${request.version}` : 'the newest release'
      } of ${stringifyEntityRef(ref)} to ${request.stage}`,
      api =>
        api.requestPromotion(ProgressionClient.lowerKind(ref), request, {
          idempotencyKey,
        }),
    );
  }

  /** Progression's verdict on an entity and its pipeline. */
  async validateEntity(entity: Entity): Promise<EntityValidation> {
    return this.call(`Could not validate ${stringifyEntityRef(entity)}`, api =>
      api.validateEntity({ entity }),
    );
  }

  async getPromotion(id: string): Promise<PromotionDetailsDto> {
    return this.call(`Could not read promotion ${id}`, api =>
      api.getPromotion(id),
    );
  }
}
