/**
 * The promotion state machine of docs/design: a pure transition table, so
 * that every decision about where a promotion goes next is a plain function
 * over data, tested without a database or a cluster.
 *
 * ```
 *                 waiting (a closed stage) ◄──────────────────┐
 *                 ▲     │ opens / overridden                   │
 *                 │     ▼                                      ▼
 * queued ──► pending ──► preflight ──► awaiting-approval ──► deploying ──► verifying ──► succeeded
 *    │            │                │                  │             │
 *    └────────────┴── failed / rejected / cancelled ◄─┴─────────────┤
 *                                                                   ▼
 *                                                     rolling-back ──► rolled-back
 * ```
 */
import { ConflictError } from '@backstage/errors';
import {
  PROMOTION_STATES,
  PromotionState,
  TERMINAL_PROMOTION_STATES,
} from '@progression-io/backstage-plugin-progression-common';

// The states are part of the REST contract, so they live in -common.
export { PROMOTION_STATES };
export type { PromotionState };

export const TERMINAL_STATES: ReadonlySet<PromotionState> = new Set(
  TERMINAL_PROMOTION_STATES,
);

export function isTerminal(state: PromotionState): boolean {
  return TERMINAL_STATES.has(state);
}

export type PromotionEvent =
  | 'dequeue'
  | 'supersede'
  | 'start'
  | 'preflight-passed'
  | 'preflight-failed'
  | 'approved'
  | 'rejected'
  | 'approval-expired'
  | 'evidence-changed'
  | 'window-closed'
  | 'window-opened'
  | 'window-overridden'
  | 'deployed'
  | 'deploy-failed'
  | 'predeploy-failed'
  | 'verified'
  | 'verify-failed'
  | 'cancel'
  | 'rollback-succeeded'
  | 'rollback-failed';

/** What the transitions depend on besides the current state. */
export interface TransitionContext {
  /** The stage needs an approval before the deploy. */
  approvalRequired: boolean;
  /** Roll back automatically when the deploy or verification fails. */
  automaticRollback: boolean;
  /**
   * The promotion waited for its stage to open just before its deploy
   * (after any approval), not when it started.
   */
  waitedBeforeDeploy?: boolean;
}

type Rule = (context: TransitionContext) => PromotionState;

const TABLE: Partial<
  Record<PromotionState, Partial<Record<PromotionEvent, Rule>>>
> = {
  // A release that flows in by itself waits for a busy stage; the newest
  // waiting one starts when it frees, the older ones are superseded.
  queued: {
    dequeue: () => 'pending',
    supersede: () => 'skipped',
    cancel: () => 'cancelled',
  },
  pending: {
    start: () => 'preflight',
    // The stage is closed (a window, a freeze alert): wait for it.
    'window-closed': () => 'waiting',
    cancel: () => 'cancelled',
  },
  // Nothing is deployed while it waits. When the stage opens (or someone
  // overrides the window) it goes on where it stopped: a promotion that
  // waited before its deploy deploys, after the approval's recheck.
  waiting: {
    'window-opened': c => (c.waitedBeforeDeploy ? 'deploying' : 'preflight'),
    'window-overridden': c =>
      c.waitedBeforeDeploy ? 'deploying' : 'preflight',
    // A step that cannot go on (the stage gone from the configuration).
    'preflight-failed': () => 'failed',
    cancel: () => 'cancelled',
  },
  preflight: {
    'preflight-passed': c =>
      c.approvalRequired ? 'awaiting-approval' : 'deploying',
    'preflight-failed': () => 'failed',
    cancel: () => 'cancelled',
  },
  'awaiting-approval': {
    approved: () => 'deploying',
    rejected: () => 'rejected',
    'approval-expired': () => 'rejected',
    cancel: () => 'cancelled',
  },
  deploying: {
    deployed: () => 'verifying',
    // Checked again after the approval, before anything is deployed.
    'window-closed': () => 'waiting',
    // The read-only gates ran again just before the deploy and said
    // something else than what was approved: the approvals are void.
    'evidence-changed': () => 'awaiting-approval',
    // A Job before the deploy (a migration) failed: nothing was deployed.
    'predeploy-failed': () => 'failed',
    // The workload may already run part of the new release: undo it.
    'deploy-failed': c => (c.automaticRollback ? 'rolling-back' : 'failed'),
    cancel: () => 'rolling-back',
  },
  verifying: {
    verified: () => 'succeeded',
    'verify-failed': c => (c.automaticRollback ? 'rolling-back' : 'failed'),
    cancel: () => 'rolling-back',
  },
  'rolling-back': {
    'rollback-succeeded': () => 'rolled-back',
    'rollback-failed': () => 'failed',
  },
};

/**
 * Thrown for an event the current state does not accept: a conflict with
 * the promotion's state, so a 409 at the API.
 */
export class InvalidTransitionError extends ConflictError {
  constructor(readonly state: PromotionState, readonly event: PromotionEvent) {
    super(describeRefusal(state, event));
  }
}

/** The events people send through the API, as what they do to a promotion. */
const PEOPLE_EVENTS: Partial<Record<PromotionEvent, string>> = {
  approved: 'approved',
  rejected: 'rejected',
  cancel: 'cancelled',
  'window-overridden': 'let past its promotion window',
};

/**
 * Why the event does not apply, in the words of the person who sent it:
 * `a promotion that is deploying cannot be approved; only one that is
 * awaiting-approval can`. An event of the engine's own names the event.
 */
function describeRefusal(state: PromotionState, event: PromotionEvent) {
  const done = PEOPLE_EVENTS[event];
  if (!done) return `a promotion that is ${state} cannot take '${event}'`;
  const accepting = (Object.keys(TABLE) as PromotionState[]).filter(
    s => TABLE[s]?.[event],
  );
  const list =
    accepting.length > 1
      ? `${accepting.slice(0, -1).join(', ')} or ${accepting.at(-1)}`
      : accepting[0];
  return `a promotion that is ${state} cannot be ${done}; only one that is ${list} can`;
}

/** The state after `event`, or InvalidTransitionError. */
export function nextState(
  state: PromotionState,
  event: PromotionEvent,
  context: TransitionContext,
): PromotionState {
  const rule = TABLE[state]?.[event];
  if (!rule) throw new InvalidTransitionError(state, event);
  return rule(context);
}

/** The events the state accepts, for example to enable buttons. */
export function acceptedEvents(state: PromotionState): PromotionEvent[] {
  return Object.keys(TABLE[state] ?? {}) as PromotionEvent[];
}
