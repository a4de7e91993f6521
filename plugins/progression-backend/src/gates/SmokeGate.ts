import {
  GateResult,
  SmokeCheckEvidence,
} from '@internal/backstage-plugin-progression-common';
import jsonata from 'jsonata';
import { SmokeCheckConfig, StageConfig } from '../config/readProgressionConfig';
import { Gate, GateContext, GatePhase, startGateResult } from './Gate';

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

/**
 * HTTP checks against the stage's own URL: method, path, body, expected
 * status, JSONata assertions (with a time and depth limit), a timeout per
 * attempt and retries. The checks run in order; all must pass.
 */
export class SmokeGate implements Gate {
  readonly name = 'smoke';

  /** After the deploy, and again after a rollback. */
  appliesTo(stage: StageConfig, phase: GatePhase): boolean {
    return (
      stage.smoke.length > 0 &&
      (phase === 'verification' || phase === 'rollback')
    );
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
    for (const check of stage.smoke) {
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
