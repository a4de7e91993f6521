/**
 * What is said about a promotion that waits for people or ended.
 *
 * @public
 */
export interface PromotionOutcomeInput {
  /** The promotion's state, for example `succeeded` or `rolled-back`. */
  state: string;
  /** The version of the release. */
  version: string;
  /** The stage as people read it, for example `Staging`. */
  stageTitle: string;
  /** A promotion (the default) or an on-demand rollback to an earlier release. */
  kind?: 'promotion' | 'rollback';
  /** Why it did not succeed, as the backend recorded it. */
  error?: string;
  /**
   * The entity's name, where the reader does not already look at the
   * entity (a notification); the Environments tab leaves it out.
   */
  entityName?: string;
}

/**
 * The words for a promotion's outcome.
 *
 * @public
 */
export interface PromotionOutcome {
  /** What happened, one sentence without its reason or full stop. */
  summary: string;
  /** Why, when the promotion did not succeed and the backend said why. */
  reason?: string;
  /** The summary and its reason as one sentence: the tab's notice. */
  text: string;
  /** How good the news is, in the severities of an alert. */
  tone: 'success' | 'info' | 'warning' | 'error';
}

/**
 * The one wording of a promotion's outcome, so that the Environments tab's
 * notice and the notification about the same promotion say the same thing,
 * for example "The promotion of 1.1.0 to Staging succeeded." or "The
 * promotion of 1.2.0 to Development failed and was rolled back: smoke: …".
 *
 * @public
 */
export function promotionOutcome(
  input: PromotionOutcomeInput,
): PromotionOutcome {
  const entity = input.entityName;
  const subject =
    input.kind === 'rollback'
      ? `The rollback of ${entity ? `${entity} in ` : ''}${
          input.stageTitle
        } to ${input.version}`
      : `The promotion of ${entity ? `${entity} ` : ''}${input.version} to ${
          input.stageTitle
        }`;
  const [what, tone]: [string, PromotionOutcome['tone']] = (() => {
    switch (input.state) {
      case 'succeeded':
        return ['succeeded', 'success'];
      case 'awaiting-approval':
        return ['awaits approval', 'info'];
      case 'waiting':
        return ['waits for the stage to open', 'info'];
      case 'rolled-back':
        return ['failed and was rolled back', 'warning'];
      case 'failed':
        return ['failed', 'error'];
      case 'rejected':
        return ['was rejected', 'warning'];
      case 'cancelled':
        return ['was cancelled', 'warning'];
      default:
        return [`ended ${input.state}`, 'warning'];
    }
  })();
  const summary = `${subject} ${what}`;
  // A success has no reason to give, whatever an earlier attempt recorded.
  const reason =
    input.state === 'succeeded' ? undefined : input.error || undefined;
  return {
    summary,
    reason,
    text: reason ? `${summary}: ${reason}` : `${summary}.`,
    tone,
  };
}
