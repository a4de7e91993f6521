import { AuthService, DiscoveryService } from '@backstage/backend-plugin-api';
import { stringifyEntityRef } from '@backstage/catalog-model';
import { InputError } from '@backstage/errors';
import { createTemplateAction } from '@backstage/plugin-scaffolder-node';
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { examples } from './promote.examples';
import {
  ProgressionClient,
  PromotionDetailsDto,
  PromotionDto,
  TERMINAL_STATES,
  checkStage,
  checkVersion,
  formatDuration,
  isTransient,
  parseEntityRefInput,
  readDurationInput,
} from './progressionClient';

const DEFAULT_TIMEOUT_MS = 30 * 60_000;
const DEFAULT_POLL_INTERVAL_MS = 5_000;

/** How the step's failure names each unsuccessful end. */
const ENDED: Record<string, string> = {
  failed: 'failed',
  rejected: 'was rejected',
  cancelled: 'was cancelled',
  'rolled-back': 'was rolled back',
};

/**
 * The promotion request's Idempotency-Key: the task, the step and what it
 * asks for, so that a retried task (or a resumed one) gets the promotion it
 * asked for the first time instead of a second one, while the iterations
 * of a step with `each` stay apart. Printable ASCII of at most 255
 * characters, as the API requires.
 */
export function promotionIdempotencyKey(parts: {
  taskId: string;
  stepId?: string;
  stage: string;
  version?: string;
}): string {
  const printable = (s: string) => s.replace(/[^\x21-\x7e]/g, '_');
  const key = printable(
    `scaffolder:${parts.taskId}:${parts.stepId ?? 'promote'}:${parts.stage}${
      parts.version ? `:${parts.version}` : ''
    }`,
  );
  if (key.length <= 255) return key;
  return `scaffolder:sha256:${createHash('sha256').update(key).digest('hex')}`;
}

function describePromotion(p: PromotionDto): string {
  return `promotion ${p.id} of ${p.release.version} to ${p.stage}`;
}

/**
 * `progression:promote`: requests a promotion of a release to a stage, as
 * the user who runs the task, and optionally waits for its end.
 *
 * @public
 */
export function createPromoteAction(options: {
  discovery: DiscoveryService;
  auth: AuthService;
}) {
  const { discovery, auth } = options;
  return createTemplateAction({
    id: 'progression:promote',
    description:
      "Requests a promotion of an entity's release to a stage of its Progression pipeline, on behalf of the user running the task (their permissions apply). " +
      'The request is idempotent per task and step: a retried task gets the same promotion. ' +
      "With wait, polls until the promotion ends and fails the step unless it succeeded, with the promotion's error.",
    examples,
    supportsDryRun: true,
    schema: {
      input: {
        entityRef: z =>
          z
            .string()
            .min(1)
            .describe(
              'The entity to promote, for example component:default/payments-api (kind defaults to component, namespace to default)',
            ),
        stage: z =>
          z
            .string()
            .min(1)
            .describe(
              "The stage to promote to, a stage name of the entity's pipeline such as staging",
            ),
        version: z =>
          z
            .string()
            .optional()
            .describe(
              'The release version to promote; the newest registered release when absent',
            ),
        reason: z =>
          z
            .string()
            .max(1000)
            .optional()
            .describe('Why, recorded with the promotion'),
        wait: z =>
          z
            .boolean()
            .optional()
            .describe(
              'Wait until the promotion ends and fail the step unless it succeeded. Default: false',
            ),
        timeout: z =>
          z
            .union([z.string(), z.number()])
            .optional()
            .describe(
              "With wait: how long to wait, as seconds or a duration such as '30m', '1h' or 'PT30M'. The promotion goes on after a timeout. Default: 30m",
            ),
        pollInterval: z =>
          z
            .union([z.string(), z.number()])
            .optional()
            .describe(
              "With wait: how often to read the promotion, as seconds or a duration such as '10s'. Default: 5s",
            ),
      },
      output: {
        promotionId: z =>
          z.string().describe('The promotion id ("dry-run" in a dry run)'),
        state: z =>
          z
            .string()
            .describe(
              'The promotion state: when it was requested, or how it ended with wait',
            ),
        version: z =>
          z.string().optional().describe('The release version being promoted'),
      },
    },
    async handler(ctx) {
      const ref = parseEntityRefInput(ctx.input.entityRef);
      const entityRef = stringifyEntityRef(ref);
      const stage = ctx.input.stage.trim();
      const version = ctx.input.version?.trim() || undefined;
      const reason = ctx.input.reason?.trim() || undefined;
      const wait = ctx.input.wait ?? false;
      checkStage(stage);
      if (version !== undefined) checkVersion(version);
      if (reason !== undefined && reason.length > 1000) {
        throw new InputError('reason must be at most 1000 characters');
      }
      const timeoutMs = readDurationInput(
        ctx.input.timeout,
        'timeout',
        DEFAULT_TIMEOUT_MS,
      );
      const pollMs = Math.max(
        10,
        readDurationInput(
          ctx.input.pollInterval,
          'pollInterval',
          DEFAULT_POLL_INTERVAL_MS,
        ),
      );
      const idempotencyKey = promotionIdempotencyKey({
        taskId: ctx.task.id,
        stepId: ctx.step?.id,
        stage,
        version,
      });
      const what = `${
        version ? `release ${version}` : 'the newest release'
      } of ${entityRef} to ${stage}`;

      if (ctx.isDryRun) {
        ctx.logger.info(
          `Dry run: would request a promotion of ${what} (Idempotency-Key ${idempotencyKey})${
            wait ? ` and wait up to ${formatDuration(timeoutMs)} for it` : ''
          }`,
        );
        ctx.output('promotionId', 'dry-run');
        ctx.output('state', 'pending');
        if (version) ctx.output('version', version);
        return;
      }

      const client = new ProgressionClient({
        discovery,
        auth,
        credentials: await ctx.getInitiatorCredentials(),
        signal: ctx.signal,
      });
      const promotion = await client.requestPromotion(
        ref,
        { stage, ...(version && { version }), ...(reason && { reason }) },
        idempotencyKey,
      );
      ctx.logger.info(
        `Requested ${describePromotion(promotion)} (${entityRef}): ${
          promotion.state
        }`,
      );
      ctx.output('promotionId', promotion.id);
      ctx.output('version', promotion.release.version);
      if (!wait) {
        ctx.output('state', promotion.state);
        return;
      }

      const final = await waitForEnd(
        client,
        promotion,
        { timeoutMs, pollMs, signal: ctx.signal },
        ctx.logger,
      );
      ctx.output('state', final.state);
      if (final.state !== 'succeeded') {
        throw new Error(
          `${describePromotion(final)} ${ENDED[final.state] ?? final.state}${
            final.error ? `: ${final.error}` : ''
          }`,
        );
      }
      ctx.logger.info(`${describePromotion(final)} succeeded`);
    },
  });
}

/**
 * Polls a promotion until it ends, logging each state change and the steps
 * behind it. Throws when the timeout passes first (the promotion goes on).
 */
async function waitForEnd(
  client: ProgressionClient,
  requested: PromotionDto,
  options: { timeoutMs: number; pollMs: number; signal?: AbortSignal },
  logger: { info(m: string): void; warn(m: string): void },
): Promise<PromotionDto> {
  const deadline = Date.now() + options.timeoutMs;
  let promotion = requested;
  let lastStepId = -1;
  let lastError: unknown;
  const log = (details: PromotionDetailsDto) => {
    for (const step of details.steps) {
      if (step.id <= lastStepId) continue;
      lastStepId = step.id;
      const transition =
        step.fromState && step.toState && step.fromState !== step.toState
          ? ` (${step.fromState} → ${step.toState})`
          : '';
      logger.info(
        `${step.kind} ${step.name}: ${step.status}${transition}${
          step.reason ? `: ${step.reason}` : ''
        }`,
      );
    }
    if (details.promotion.state !== promotion.state) {
      logger.info(
        `${describePromotion(details.promotion)} is now ${
          details.promotion.state
        }`,
      );
    }
    promotion = details.promotion;
  };

  const cancelled = () =>
    new Error(
      `Stopped waiting for ${describePromotion(promotion)}, which is ${
        promotion.state
      }: the task was cancelled; the promotion goes on in Progression`,
    );

  for (;;) {
    try {
      log(await client.getPromotion(promotion.id));
      lastError = undefined;
    } catch (e) {
      if ((e as Error).name === 'AbortError') throw cancelled();
      // A restarting backend or a network blip: read again next time.
      if (!isTransient(e)) throw e;
      lastError = e;
      logger.warn(`Could not read ${describePromotion(promotion)}: ${e}`);
    }
    if (TERMINAL_STATES.includes(promotion.state)) return promotion;
    const left = deadline - Date.now();
    if (left <= 0) {
      throw new Error(
        `${describePromotion(promotion)} is still ${
          promotion.state
        } after ${formatDuration(
          options.timeoutMs,
        )}; it goes on in Progression, this step stopped waiting${
          lastError ? ` (last read failed: ${lastError})` : ''
        }`,
      );
    }
    try {
      await sleep(Math.min(options.pollMs, left), undefined, {
        signal: options.signal,
      });
    } catch (e) {
      if ((e as Error).name !== 'AbortError') throw e;
      throw cancelled();
    }
  }
}
