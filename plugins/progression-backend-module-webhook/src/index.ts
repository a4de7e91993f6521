/**
 * The `webhook` gate for Progression: a promotion goes on only when the
 * stage's webhooks answer 2xx (Flagger's confirm-promotion).
 *
 * @packageDocumentation
 */

export { progressionModuleWebhook as default } from './module';
export { WebhookGate } from './WebhookGate';
export type {
  WebhookCallEvidence,
  WebhookConfig,
  WebhookGateConfig,
  WebhookGateEvidence,
  WebhookPayload,
  WebhookPhase,
} from './WebhookGate';
