/*
 * The REST API's shapes, under the names the plugins use. They are
 * generated from the contract, plugins/progression-backend/src/schema/openapi.yaml
 * (`yarn workspace @progression-io/backstage-plugin-progression-backend generate:openapi`);
 * to change one, change the contract.
 */
import type { PromotionState } from './schema/openapi/generated';

export type {
  Approval as ApprovalDto,
  DeliveryDay,
  DeliveryInsights,
  EntityEnvironments,
  EntityFlags,
  EntityMetrics,
  EntityValidation,
  FlagRow,
  GateResult,
  GateStatus,
  GetEntityInsightsQuery,
  GetEntityMetricsQuery,
  ListPromotionsQuery,
  ListPromotionsResponse,
  ListReleasesResponse,
  MetricPoint,
  NewApproval,
  NewPromotion,
  NewRelease,
  NewRollback,
  Pipeline,
  PreviewPromotionResponse,
  Promotion as PromotionDto,
  PromotionDetails as PromotionDetailsDto,
  PromotionState,
  PromotionStep as PromotionStepDto,
  PromotionSummary,
  Release as ReleaseDto,
  Stage,
  StageGitOps,
  StageDeliveryInsights,
  StageGateSummary,
  StageLive,
  StageMetrics,
  StageWindow,
  ValidateEntityRequest,
  WindowOverride,
} from './schema/openapi/generated';

/**
 * The states of a promotion, in the order of the backend's transition
 * table. The backend's schema test checks that they are the contract's.
 *
 * @public
 */
export const PROMOTION_STATES = [
  'queued',
  'pending',
  'waiting',
  'preflight',
  'awaiting-approval',
  'deploying',
  'verifying',
  'succeeded',
  'failed',
  'rejected',
  'cancelled',
  'rolling-back',
  'rolled-back',
  'skipped',
] as const satisfies readonly PromotionState[];

/**
 * The states a promotion ends in.
 *
 * @public
 */
export const TERMINAL_PROMOTION_STATES: readonly PromotionState[] = [
  'succeeded',
  'failed',
  'rejected',
  'cancelled',
  'rolled-back',
  'skipped',
];
