import { LoggerService } from '@backstage/backend-plugin-api';
import { Config } from '@backstage/config';
import { GateResult } from '@progression-io/backstage-plugin-progression-common';
import {
  GATE_PHASES,
  GateContext,
  GateDefinition,
  GatePhase,
  ProgressionConfigError,
  StageConfig,
  readDurationMs,
  startGateResult,
} from '@progression-io/backstage-plugin-progression-node';

/** The phases a webhook may run in. */
export type WebhookPhase = 'preflight' | 'predeploy' | 'verification';

/** One webhook of a stage's `gates.webhook`. */
export interface WebhookConfig {
  /** Lowercase letters, digits and '-'; unique in the stage. */
  name: string;
  /** http or https, without credentials. */
  url: string;
  phase: WebhookPhase;
  timeoutMs: number;
  /** Secrets: sent, never recorded. */
  headers: Record<string, string>;
}

/** A stage's `gates.webhook`, as a list even when configured as one object. */
export type WebhookGateConfig = WebhookConfig[];

declare module '@progression-io/backstage-plugin-progression-node' {
  interface StageGateConfigs {
    webhook?: WebhookGateConfig;
  }
}

/** What one webhook call recorded: never the request's headers. */
export interface WebhookCallEvidence {
  name: string;
  /** The URL without user-info, query string or fragment, which may carry secrets. */
  url: string;
  outcome: 'passed' | 'failed' | 'error';
  /** The HTTP status, when the hook answered. */
  status?: number;
  durationMs: number;
  /** The first 2 KiB of the answer's body. */
  responseExcerpt?: string;
  failure?: string;
}

/** The webhook gate's evidence: the calls of one phase, in order. */
export interface WebhookGateEvidence {
  hooks: WebhookCallEvidence[];
}

/** What a webhook receives, as JSON. */
export interface WebhookPayload {
  entity: {
    entityRef: string;
    name: string;
    namespace: string;
    kubernetesId: string;
  };
  stage: { name: string; namespace: string; cluster: string; url?: string };
  phase: GatePhase;
  release: { id: string; version: string; image: string };
  promotionId: string;
  /** The gate results of this promotion so far, without their evidence. */
  results: { gate: string; phase: GatePhase; status: string; reason: string }[];
}

const WEBHOOK_PHASES: readonly WebhookPhase[] = [
  'preflight',
  'predeploy',
  'verification',
];
const HOOK_KEYS = ['name', 'url', 'phase', 'timeout', 'headers'];
const DEFAULT_TIMEOUT_MS = 10_000;
const MAX_TIMEOUT_MS = 2 * 60_000;
const EXCERPT_BYTES = 2048;
const NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
// RFC 9110 token characters.
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// The gate sends JSON and lets fetch frame the request; a configured value
// for these would contradict it.
const RESERVED_HEADERS = [
  'content-type',
  'content-length',
  'host',
  'transfer-encoding',
  'connection',
];

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The URL as evidence and logs may show it: no credentials, no query string. */
function displayUrl(url: string): string {
  const parsed = new URL(url);
  return `${parsed.protocol}//${parsed.host}${parsed.pathname}`;
}

function readUrl(hook: Config, hookPath: string): string {
  const at = `${hookPath}.url`;
  const value = hook.getOptional('url');
  if (value === undefined) {
    throw new ProgressionConfigError(
      at,
      'required: the http(s) URL to POST to',
    );
  }
  let parsed: URL;
  try {
    if (typeof value !== 'string') throw new Error('not a string');
    parsed = new URL(value);
  } catch {
    // The value itself is not repeated: it may carry a token.
    throw new ProgressionConfigError(at, 'not a valid URL');
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new ProgressionConfigError(
      at,
      `must be an http or https URL, not ${parsed.protocol.replace(/:$/, '')}`,
    );
  }
  if (parsed.username || parsed.password) {
    throw new ProgressionConfigError(
      at,
      'must not carry credentials; put them in headers (for example Authorization), which are kept secret',
    );
  }
  return value as string;
}

function readHeaders(hook: Config, hookPath: string): Record<string, string> {
  if (!hook.has('headers')) return {};
  const raw = hook.getOptional('headers');
  if (!isObject(raw)) {
    throw new ProgressionConfigError(
      `${hookPath}.headers`,
      'must be a map of header names to values',
    );
  }
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(raw)) {
    const at = `${hookPath}.headers.${name}`;
    if (!HEADER_NAME.test(name)) {
      throw new ProgressionConfigError(at, 'not a valid HTTP header name');
    }
    if (RESERVED_HEADERS.includes(name.toLowerCase())) {
      throw new ProgressionConfigError(
        at,
        'is set by the gate (it sends JSON); remove it',
      );
    }
    // The value is never repeated in a message: header values are secrets.
    if (typeof value !== 'string' && typeof value !== 'number') {
      throw new ProgressionConfigError(at, 'must be a string');
    }
    // What fetch would refuse at run time, with the value in its message.
    if (
      [...String(value)].some(
        c => '\r\n\0'.includes(c) || c.codePointAt(0)! > 0xff,
      )
    ) {
      throw new ProgressionConfigError(
        at,
        'must not contain line breaks, NUL or characters beyond Latin-1',
      );
    }
    headers[name] = String(value);
  }
  return headers;
}

function readHook(hook: Config, hookPath: string): WebhookConfig {
  for (const key of hook.keys()) {
    if (!HOOK_KEYS.includes(key)) {
      throw new ProgressionConfigError(
        `${hookPath}.${key}`,
        `unknown key; use ${HOOK_KEYS.join(', ')}`,
      );
    }
  }
  const name = hook.getOptional('name');
  if (typeof name !== 'string' || name.length > 63 || !NAME.test(name)) {
    throw new ProgressionConfigError(
      `${hookPath}.name`,
      name === undefined
        ? 'required: a name for the webhook, such as change-freeze'
        : 'must be at most 63 lowercase letters, digits and -, starting and ending with a letter or digit',
    );
  }
  const phase = hook.getOptional('phase') ?? 'preflight';
  if (!WEBHOOK_PHASES.includes(phase as WebhookPhase)) {
    throw new ProgressionConfigError(
      `${hookPath}.phase`,
      `'${String(phase)}' is not one of ${WEBHOOK_PHASES.join(', ')}`,
    );
  }
  const timeoutMs =
    readDurationMs(hook, 'timeout', hookPath) ?? DEFAULT_TIMEOUT_MS;
  if (timeoutMs <= 0 || timeoutMs > MAX_TIMEOUT_MS) {
    throw new ProgressionConfigError(
      `${hookPath}.timeout`,
      'must be more than 0 and at most 2m',
    );
  }
  return {
    name,
    url: readUrl(hook, hookPath),
    phase: phase as WebhookPhase,
    timeoutMs,
    headers: readHeaders(hook, hookPath),
  };
}

/**
 * Reads a stage's `gates.webhook` (one object or a list of them); `path`
 * is the stage's. Undefined when the stage has none.
 */
function readWebhookGateConfig(
  stage: Config,
  path: string,
): WebhookGateConfig | undefined {
  if (!stage.has('gates.webhook')) return undefined;
  const at = `${path}.gates.webhook`;
  const raw = stage.getOptional('gates.webhook');
  let hooks: [Config, string][];
  if (Array.isArray(raw)) {
    if (raw.length === 0) {
      throw new ProgressionConfigError(
        at,
        'lists no webhooks; remove it or add one',
      );
    }
    raw.forEach((hook, i) => {
      if (!isObject(hook)) {
        throw new ProgressionConfigError(
          `${at}[${i}]`,
          'must be an object with a name and a url',
        );
      }
    });
    hooks = stage
      .getConfigArray('gates.webhook')
      .map((hook, i) => [hook, `${at}[${i}]`]);
  } else if (isObject(raw)) {
    hooks = [[stage.getConfig('gates.webhook'), at]];
  } else {
    throw new ProgressionConfigError(
      at,
      'must be a webhook { name, url } or a list of them',
    );
  }
  const seen = new Set<string>();
  return hooks.map(([hook, hookPath]) => {
    const read = readHook(hook, hookPath);
    if (seen.has(read.name)) {
      throw new ProgressionConfigError(
        `${hookPath}.name`,
        `duplicate webhook name '${read.name}'`,
      );
    }
    seen.add(read.name);
    return read;
  });
}

/** Reads at most the first `limit` bytes of a body and drops the rest. */
async function excerptOf(response: Response, limit: number): Promise<string> {
  if (!response.body) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < limit) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.length;
    }
  } finally {
    // A hook that answers with a large body must not hold the promotion.
    await reader.cancel().catch(() => undefined);
  }
  return Buffer.concat(chunks).subarray(0, limit).toString('utf8');
}

/**
 * An error message with the hook's secrets taken out, should the HTTP
 * client ever quote a header value or the full URL in one.
 */
function redact(message: string, hook: WebhookConfig): string {
  let text = message.split(hook.url).join(displayUrl(hook.url));
  for (const value of Object.values(hook.headers)) {
    if (value) text = text.split(value).join('[redacted]');
  }
  return text;
}

async function callHook(
  hook: WebhookConfig,
  body: string,
  signal?: AbortSignal,
): Promise<WebhookCallEvidence> {
  const started = Date.now();
  const evidence: WebhookCallEvidence = {
    name: hook.name,
    url: displayUrl(hook.url),
    outcome: 'error',
    durationMs: 0,
  };
  const timeout = AbortSignal.timeout(hook.timeoutMs);
  try {
    const response = await fetch(hook.url, {
      method: 'POST',
      headers: { ...hook.headers, 'Content-Type': 'application/json' },
      body,
      // A redirect could carry the headers' secrets elsewhere; it fails.
      redirect: 'manual',
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
    });
    evidence.status = response.status;
    evidence.responseExcerpt = await excerptOf(response, EXCERPT_BYTES);
    evidence.durationMs = Date.now() - started;
    if (response.status >= 200 && response.status < 300) {
      evidence.outcome = 'passed';
    } else {
      evidence.outcome = 'failed';
      evidence.failure =
        response.status >= 300 && response.status < 400
          ? `answered ${response.status}, a redirect, which is not followed`
          : `answered ${response.status}, expected 2xx`;
    }
  } catch (e) {
    evidence.durationMs = Date.now() - started;
    const cause = ((e as Error).cause as Error | undefined)?.message;
    if (signal?.aborted) {
      evidence.failure = 'interrupted: the promotion was cancelled or stopped';
    } else if (timeout.aborted) {
      evidence.failure = `no ${
        evidence.status === undefined ? 'answer' : 'complete body'
      } within ${hook.timeoutMs} ms`;
    } else {
      evidence.failure = redact(
        `request failed: ${cause ?? (e as Error).message}`,
        hook,
      );
    }
  }
  return evidence;
}

/**
 * Flagger's confirm-promotion for Progression: POSTs the promotion (entity,
 * stage, release, the gate results so far) as JSON to each webhook the
 * stage configures for the phase. A 2xx answer lets the promotion go on;
 * any other answer (a redirect too) fails the gate; no answer in time or a
 * connection error is `error`, which does not pass either. Header values
 * are sent and never recorded: neither in evidence nor in logs.
 */
export class WebhookGate implements GateDefinition<WebhookGateConfig> {
  readonly name = 'webhook';
  readonly phases = WEBHOOK_PHASES;
  // A hook may have effects (a ticket, a message), so the promote dialog's
  // preview does not call it.
  readonly preview = false;

  constructor(private readonly options: { logger?: LoggerService } = {}) {}

  readConfig(
    stage: Config,
    { path }: { path: string; policy: Omit<StageConfig, 'gates'> },
  ): WebhookGateConfig | undefined {
    return readWebhookGateConfig(stage, path);
  }

  phasesOf(config: WebhookGateConfig): readonly GatePhase[] {
    return GATE_PHASES.filter(p => config.some(hook => hook.phase === p));
  }

  async run(context: GateContext, phase: GatePhase): Promise<GateResult> {
    const result = startGateResult(this.name, phase);
    const hooks = (context.stage.gates.webhook ?? []).filter(
      hook => hook.phase === phase,
    );
    const evidence: WebhookGateEvidence = { hooks: [] };
    if (!hooks.length) {
      return result(
        'skipped',
        `the stage has no webhooks for ${phase}`,
        evidence,
      );
    }
    const { entity, release, promotionId, stage, signal } = context;
    if (!entity || !release || !promotionId) {
      const missing = [
        !entity && 'entity',
        !release && 'release',
        !promotionId && 'promotion id',
      ].filter(Boolean);
      return result(
        'error',
        `cannot call the webhooks without ${missing.join(', ')}`,
        evidence,
      );
    }
    const payload: WebhookPayload = {
      entity: {
        entityRef: entity.entityRef,
        name: entity.name,
        namespace: entity.namespace,
        kubernetesId: entity.kubernetesId,
      },
      stage: {
        name: stage.name,
        namespace: stage.namespace,
        cluster: stage.cluster,
        ...(context.stageUrl && { url: context.stageUrl }),
      },
      phase,
      release: {
        id: release.id,
        version: release.version,
        image: release.image,
      },
      promotionId,
      results: (context.results ?? []).map(r => ({
        gate: r.gate,
        phase: r.phase,
        status: r.status,
        reason: r.reason,
      })),
    };
    const body = JSON.stringify(payload);
    for (const hook of hooks) {
      if (signal?.aborted) break;
      const call = await callHook(hook, body, signal);
      evidence.hooks.push(call);
      this.options.logger?.info(
        `Webhook ${hook.name} (${call.url}) for promotion ${promotionId}: ${
          call.failure ?? `answered ${call.status}`
        }`,
      );
    }
    if (signal?.aborted) {
      return result(
        'error',
        'interrupted: the promotion was cancelled or stopped before the webhooks answered',
        evidence,
      );
    }
    const failed = evidence.hooks.filter(h => h.outcome === 'failed');
    const errored = evidence.hooks.filter(h => h.outcome === 'error');
    const first = failed[0] ?? errored[0];
    if (first) {
      const others = failed.length + errored.length - 1;
      return result(
        failed.length ? 'failed' : 'error',
        `${first.name}: ${first.failure}${
          others > 0 ? ` (and ${others} more)` : ''
        }`,
        evidence,
      );
    }
    return result(
      'passed',
      hooks.length === 1
        ? `${hooks[0].name} answered ${evidence.hooks[0].status}`
        : `${hooks.length} of ${hooks.length} webhooks answered 2xx`,
      evidence,
    );
  }
}
