import { PromotionStep } from '../database/PromotionStore';

/** What a promotion's steps say about its promotion windows. */
export interface WindowFacts {
  /** A break-glass override was recorded: it holds for the rest of the promotion. */
  overridden: boolean;
  /** It last began to wait after its approval, before the deploy. */
  waitedBeforeDeploy: boolean;
  /** The reason of its last window step (closed, opened, override). */
  lastWindowReason?: string;
}

/** Reads {@link WindowFacts} from a promotion's steps, oldest first. */
export function windowFacts(steps: PromotionStep[]): WindowFacts {
  const facts: WindowFacts = { overridden: false, waitedBeforeDeploy: false };
  for (const step of steps) {
    if (step.kind === 'window') {
      facts.lastWindowReason = step.reason;
      if (step.name === 'override') facts.overridden = true;
    }
    if (step.toState === 'waiting') {
      facts.waitedBeforeDeploy = step.fromState === 'deploying';
    }
  }
  return facts;
}
