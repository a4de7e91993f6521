import { LoggerService } from '@backstage/backend-plugin-api';
import { SignalsService } from '@backstage/plugin-signals-node';
import { PromotionState } from '../engine/transitions';

/** A promotion's state change, as the engine reports it. */
export interface PromotionTransition {
  promotionId: string;
  entityRef: string;
  stage: string;
  from: PromotionState;
  to: PromotionState;
  reason?: string;
}

/**
 * Publishes every promotion state change on a signals channel per entity
 * (`progression:<entityRef>`), for live progress in the Environments tab.
 * A failed publish is logged, never a promotion's problem.
 */
export class PromotionSignals {
  constructor(
    private readonly signals: SignalsService,
    private readonly logger: LoggerService,
  ) {}

  publish(change: PromotionTransition): void {
    this.signals
      .publish({
        recipients: { type: 'broadcast' },
        channel: `progression:${change.entityRef}`,
        message: { ...change, reason: change.reason ?? null },
      })
      .catch(e => this.logger.warn(`could not publish progress: ${e}`));
  }
}
