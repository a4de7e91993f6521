import { isError } from '@backstage/errors';

/**
 * A step stopped without an outcome: the backend shuts down, the worker
 * lost its claim, or someone else moved the promotion (a cancel). Nothing
 * is recorded; whoever holds the promotion next carries on from what was.
 */
export class StepInterrupted extends Error {
  name = 'StepInterrupted';
}

/**
 * Someone else moved the promotion while a step ran (a cancel, a
 * rejection): the work the step started is no longer wanted, and what it
 * left running (a Job) is stopped. Unlike a shutdown or a lost claim, after
 * which the next holder adopts that work. Gates and deployers tell it by
 * its name, with `isPromotionMoved` from the node package.
 */
export class PromotionMoved extends StepInterrupted {
  name = 'PromotionMoved';
}

/** A step ran longer than the worker allows: a failed attempt. */
export class StepTimeoutError extends Error {
  name = 'StepTimeoutError';
}

// Backstage's errors for what another attempt will not change: a missing
// entity or Deployment, a bad name, two workloads with one label, a refusal.
const LASTING = new Set([
  'NotFoundError',
  'InputError',
  'NotAllowedError',
  'ConflictError',
  'ProgressionConfigError',
]);

/**
 * Whether trying again cannot help: the promotion should fail at once with
 * the reason, rather than retry until its budget is spent. A cluster that
 * answers 4xx (other than timeouts, conflicts and throttling) will answer
 * the same again; 5xx, timeouts and lost connections may heal.
 */
export function cannotHeal(e: unknown): boolean {
  if (!isError(e)) return false;
  if (LASTING.has(e.name)) return true;
  const code = (e as { code?: unknown }).code;
  return (
    typeof code === 'number' &&
    code >= 400 &&
    code < 500 &&
    ![408, 409, 429].includes(code)
  );
}
