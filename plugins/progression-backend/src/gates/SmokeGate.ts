import {
  GateResult,
  SmokeCheckEvidence,
} from '@progression-io/backstage-plugin-progression-common';
import { Config } from '@backstage/config';
import {
  ProgressionConfigError,
  StageConfig,
  readDurationMs,
} from '@progression-io/backstage-plugin-progression-node';
import jsonata from 'jsonata';
import { Gate, GateContext, startGateResult } from './Gate';

/** One HTTP check of a stage's smoke gate. */
export interface SmokeCheckConfig {
  name: string;
  method: string;
  path: string;
  body?: string;
  headers: Record<string, string>;
  /** Acceptable HTTP statuses. */
  expectStatus: number[];
  /** JSONata expressions over the JSON body; each must be true. */
  assert: string[];
  timeoutMs: number;
  retries: number;
  retryDelayMs: number;
}

declare module '@progression-io/backstage-plugin-progression-node' {
  interface StageGateConfigs {
    smoke?: SmokeCheckConfig[];
  }
}

const BODY_EXCERPT = 2048;
// A JSONata expression may not run longer or recurse deeper than this.
const JSONATA_LIMITS = { timeout: 500, stack: 100 };

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>(resolve => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    });
  });

/** Joins the stage URL and a check path without losing the URL's own path. */
export function checkUrl(stageUrl: string, path: string): string {
  return `${stageUrl.replace(/\/+$/, '')}${path}`;
}

async function attempt(
  check: SmokeCheckConfig,
  url: string,
  signal?: AbortSignal,
): Promise<Omit<SmokeCheckEvidence, 'name' | 'request' | 'attempts'>> {
  const started = Date.now();
  let response: Response;
  let text: string;
  try {
    const timeout = AbortSignal.timeout(check.timeoutMs);
    response = await fetch(url, {
      method: check.method,
      headers: {
        ...(check.body !== undefined && { 'Content-Type': 'application/json' }),
        ...check.headers,
      },
      body: check.body,
      redirect: 'manual',
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
    });
    text = await response.text();
  } catch (e) {
    const error = e as Error;
    const cause = (error.cause as Error | undefined)?.message;
    return {
      passed: false,
      durationMs: Date.now() - started,
      failure:
        error.name === 'TimeoutError'
          ? `no answer within ${check.timeoutMs} ms`
          : `request failed: ${cause ?? error.message}`,
    };
  }
  const result = {
    status: response.status,
    durationMs: Date.now() - started,
    bodyExcerpt: text.slice(0, BODY_EXCERPT),
  };
  if (!check.expectStatus.includes(response.status)) {
    return {
      ...result,
      passed: false,
      failure: `answered ${response.status}, expected ${check.expectStatus.join(
        ' or ',
      )}`,
    };
  }
  if (check.assert.length > 0) {
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      return {
        ...result,
        passed: false,
        failure: 'the body is not JSON, so the assertions cannot run',
      };
    }
    for (const expression of check.assert) {
      let value: unknown;
      try {
        value = await jsonata(expression, JSONATA_LIMITS).evaluate(body);
      } catch (e) {
        return {
          ...result,
          passed: false,
          failure: `assertion '${expression}' could not be evaluated: ${
            (e as Error).message
          }`,
        };
      }
      if (value !== true) {
        return {
          ...result,
          passed: false,
          failure: `assertion '${expression}' is ${
            value === undefined ? 'undefined' : JSON.stringify(value)
          }, expected true`,
        };
      }
    }
  }
  return { ...result, passed: true };
}

/** A check's body as sent: strings as they are, anything else as JSON. */
function bodyText(body: unknown): string | undefined {
  if (body === undefined) return undefined;
  return typeof body === 'string' ? body : JSON.stringify(body);
}

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

/** Reads `gates.smoke.checks`; `path` is the stage's. */
export function readSmokeChecks(
  stage: Config,
  path: string,
): SmokeCheckConfig[] {
  const checks = stage.getOptionalConfigArray('gates.smoke.checks') ?? [];
  return checks.map((check, i) => {
    const checkPath = `${path}.gates.smoke.checks[${i}]`;
    const method = (check.getOptionalString('method') ?? 'GET').toUpperCase();
    if (!METHODS.includes(method)) {
      throw new ProgressionConfigError(
        `${checkPath}.method`,
        `'${method}' is not one of ${METHODS.join(', ')}`,
      );
    }
    const requestPath = check.getString('path');
    if (!requestPath.startsWith('/') || /[\s\\]/.test(requestPath)) {
      throw new ProgressionConfigError(
        `${checkPath}.path`,
        `'${requestPath}' must start with '/' and contain no spaces`,
      );
    }
    const expect = check.has('expectStatus')
      ? ([] as number[]).concat(
          check.getOptional('expectStatus') as number | number[],
        )
      : [200];
    if (!expect.every(n => Number.isInteger(n) && n >= 100 && n <= 599)) {
      throw new ProgressionConfigError(
        `${checkPath}.expectStatus`,
        'must be an HTTP status code or a list of them',
      );
    }
    const asserts = check.has('assert')
      ? ([] as string[]).concat(
          check.getOptional('assert') as string | string[],
        )
      : [];
    asserts.forEach((expression, j) => {
      try {
        jsonata(String(expression));
      } catch (e) {
        throw new ProgressionConfigError(
          `${checkPath}.assert${asserts.length > 1 ? `[${j}]` : ''}`,
          `not a valid JSONata expression: ${(e as Error).message}`,
        );
      }
    });
    const body = check.getOptional('body');
    const retries = check.getOptionalNumber('retries') ?? 0;
    if (!Number.isInteger(retries) || retries < 0 || retries > 20) {
      throw new ProgressionConfigError(
        `${checkPath}.retries`,
        'must be a whole number from 0 to 20',
      );
    }
    return {
      name: check.getOptionalString('name') ?? `${method} ${requestPath}`,
      method,
      path: requestPath,
      body: bodyText(body),
      headers: (check.getOptional('headers') as Record<string, string>) ?? {},
      expectStatus: expect,
      assert: asserts.map(String),
      timeoutMs: readDurationMs(check, 'timeout', checkPath) ?? 5000,
      retries,
      retryDelayMs: readDurationMs(check, 'retryDelay', checkPath) ?? 1000,
    };
  });
}

/**
 * HTTP checks against the stage's own URL: method, path, body, expected
 * status, JSONata assertions (with a time and depth limit), a timeout per
 * attempt and retries. The checks run in order; all must pass.
 */
export class SmokeGate extends Gate<SmokeCheckConfig[]> {
  readonly name = 'smoke';
  /** After the deploy, and again after a rollback. */
  readonly phases = ['verification', 'rollback'] as const;

  readConfig(
    stage: Config,
    { path, policy }: { path: string; policy: Omit<StageConfig, 'gates'> },
  ): SmokeCheckConfig[] | undefined {
    const checks = readSmokeChecks(stage, path);
    if (!checks.length) return undefined;
    if (policy.url === undefined) {
      throw new ProgressionConfigError(
        `${path}.url`,
        'the stage has smoke checks but no url to run them against',
      );
    }
    return checks;
  }

  async run(
    context: GateContext,
    phase: GateResult['phase'],
  ): Promise<GateResult> {
    const result = startGateResult(this.name, phase);
    const { stage, stageUrl, signal } = context;
    if (!stageUrl) {
      return result('error', `stage ${stage.name} has no URL to check`, {
        checks: [],
      });
    }
    const checks: SmokeCheckEvidence[] = [];
    for (const check of stage.gates.smoke ?? []) {
      const url = checkUrl(stageUrl, check.path);
      let outcome = await attempt(check, url, signal);
      let attempts = 1;
      while (!outcome.passed && attempts <= check.retries && !signal?.aborted) {
        await sleep(check.retryDelayMs, signal);
        outcome = await attempt(check, url, signal);
        attempts++;
      }
      checks.push({
        name: check.name,
        request: { method: check.method, url },
        attempts,
        ...outcome,
      });
    }
    const failed = checks.filter(c => !c.passed);
    return result(
      failed.length ? 'failed' : 'passed',
      failed.length
        ? `${failed[0].name} failed: ${failed[0].failure}${
            failed.length > 1 ? ` (and ${failed.length - 1} more)` : ''
          }`
        : `${checks.length} of ${checks.length} checks passed`,
      { checks },
    );
  }
}
