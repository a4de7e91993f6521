import { ProgressionConfig, StageWindowPolicy } from '../config/types';
import { PrometheusClient } from '../prometheus/PrometheusClient';
import { alertNames, alertQuery, describeFiring } from './alertFreeze';
import {
  PromotionWindow,
  ReasonPart,
  WindowsState,
  because,
  evaluateWindows,
} from './promotionWindows';

/** Whether a stage takes promotions now, why, and when it opens next. */
export interface StageWindowState {
  open: boolean;
  /**
   * What decides: `always` (no window applies now), `allow-window`,
   * `deny-window`, `outside-allow-windows`, `alert` (a freeze alert
   * fires) or `prometheus-unavailable` (whether one fires is unknown, so
   * the stage counts as closed).
   */
  source:
    | 'always'
    | 'allow-window'
    | 'deny-window'
    | 'outside-allow-windows'
    | 'alert'
    | 'prometheus-unavailable';
  reason: string;
  /** The reason in pieces: text, and the times in it as dates. */
  reasonParts: ReasonPart[];
  /** While closed: when the windows open next; absent when that depends on alerts or lies beyond a year. */
  nextOpening?: Date;
  /** Whether on-demand rollbacks may enter while it is closed. */
  rollbacksWhenClosed: 'allow' | 'deny';
  /** Closed by alerts: open again only when a poll finds them resolved. */
  alerts?: boolean;
}

/** How long the alerting rules' names are reused. */
const RULES_CACHE_MS = 30_000;

/**
 * Evaluates stages' promotion windows and alert freezes. Alert queries are
 * reused for a couple of seconds, so the Environments tab's polling and
 * the engine's checks do not each ask Prometheus. An alert query that
 * fails closes the stage: a freeze fails closed.
 */
export class StageWindows {
  private readonly alertCache = new Map<
    string,
    { at: number; result: Promise<Record<string, string>[]> }
  >();
  private rulesCache?: { at: number; result: Promise<Set<string>> };
  /**
   * Each policy's windows, evaluated: reused until the state's
   * `validUntil` (a window opens or ends). An evaluation runs cron
   * arithmetic that takes milliseconds, and the Environments tab asks for
   * every stage on every poll.
   */
  private readonly windowCache = new WeakMap<
    readonly PromotionWindow[],
    { at: number; state: WindowsState }
  >();

  constructor(
    private readonly options: {
      config: ProgressionConfig;
      prometheus?: PrometheusClient;
      /** How long an alert query's answer is reused; default 2 s. */
      cacheMs?: number;
      now?: () => number;
    },
  ) {}

  private now() {
    return this.options.now?.() ?? Date.now();
  }

  policyOf(pipeline: string, stage: string): StageWindowPolicy | undefined {
    return this.options.config.pipelines.get(pipeline)?.windows.get(stage);
  }

  /**
   * The firing alerts' labels (reused for a moment unless `fresh`), or an
   * error: also when Prometheus answers with warnings (a partial answer
   * may leave out a firing alert), and when an entry that is an alert
   * name names no alerting rule Prometheus evaluates (a misspelt name
   * would never fire, and the freeze would never close the stage).
   */
  private firing(
    entries: readonly string[],
    fresh: boolean,
  ): Promise<Record<string, string>[]> {
    const query = alertQuery(entries);
    const now = this.now();
    const cached = this.alertCache.get(query);
    if (!fresh && cached && now - cached.at < (this.options.cacheMs ?? 2000)) {
      return cached.result;
    }
    const prometheus = this.options.prometheus;
    const names = alertNames(entries);
    const result = prometheus
      ? Promise.all([
          prometheus.query(query),
          names.length ? this.ruleNames(prometheus, fresh) : undefined,
        ]).then(([answer, rules]) => {
          if (answer.warnings.length) {
            throw new Error(
              `Prometheus answered with warnings: ${answer.warnings.join(
                '; ',
              )}`,
            );
          }
          const unknown = names.filter(n => !rules?.has(n));
          if (unknown.length) {
            throw new Error(
              `Prometheus has no alerting rule named ${unknown.join(', ')}`,
            );
          }
          return answer.samples.map(sample => sample.labels);
        })
      : Promise.reject(new Error('progression.prometheus is not configured'));
    result.catch(() => this.alertCache.delete(query));
    this.alertCache.set(query, { at: now, result });
    return result;
  }

  /** The alerting rules' names, reused for half a minute unless `fresh`. */
  private ruleNames(
    prometheus: PrometheusClient,
    fresh: boolean,
  ): Promise<Set<string>> {
    const now = this.now();
    const cached = this.rulesCache;
    if (!fresh && cached && now - cached.at < RULES_CACHE_MS) {
      return cached.result;
    }
    const result = prometheus.alertRuleNames();
    const entry = { at: now, result };
    result.catch(() => {
      if (this.rulesCache === entry) this.rulesCache = undefined;
    });
    this.rulesCache = entry;
    return result;
  }

  /** The windows' state now, from the cache while it holds. */
  private evaluate(windows: readonly PromotionWindow[]): WindowsState {
    const now = this.now();
    const cached = this.windowCache.get(windows);
    if (
      cached &&
      now >= cached.at &&
      cached.state.validUntil &&
      now < cached.state.validUntil.getTime()
    ) {
      return cached.state;
    }
    const state = evaluateWindows(windows, new Date(now));
    this.windowCache.set(windows, { at: now, state });
    return state;
  }

  /**
   * The stage's state now; undefined for a stage without windows or
   * freezes (always open). `fresh` asks Prometheus again rather than reuse
   * a recent answer: for the decision to let a promotion in.
   */
  async state(
    pipeline: string,
    stage: string,
    options: { fresh?: boolean } = {},
  ): Promise<StageWindowState | undefined> {
    const policy = this.policyOf(pipeline, stage);
    if (!policy) return undefined;
    const windows = this.evaluate(policy.windows);
    const base = { rollbacksWhenClosed: policy.rollbacksWhenClosed };
    let alert:
      | { source: 'alert' | 'prometheus-unavailable'; reason: string }
      | undefined;
    if (policy.freezeOnAlerts.length) {
      const names = policy.freezeOnAlerts.join(', ');
      try {
        const firing = await this.firing(
          policy.freezeOnAlerts,
          options.fresh ?? false,
        );
        if (firing.length) {
          alert = {
            source: 'alert',
            reason: `frozen while ${describeFiring(
              firing,
            )} fires; opens when it resolves`,
          };
        }
      } catch (e) {
        alert = {
          source: 'prometheus-unavailable',
          reason: `closed: cannot tell whether ${names} fire: ${
            (e as Error).message
          }`,
        };
      }
    }
    if (windows.open && !alert) {
      return {
        ...base,
        open: true,
        source: windows.source,
        ...because(
          policy.freezeOnAlerts.length
            ? [...windows.reasonParts, '; no freeze alert fires']
            : windows.reasonParts,
        ),
      };
    }
    if (!alert) {
      return {
        ...base,
        open: false,
        source: windows.source,
        ...because(windows.reasonParts),
        ...(windows.nextOpening && { nextOpening: windows.nextOpening }),
      };
    }
    return {
      ...base,
      open: false,
      alerts: true,
      source: windows.open ? alert.source : windows.source,
      ...because(
        windows.open
          ? [alert.reason]
          : [...windows.reasonParts, '; besides, ', alert.reason],
      ),
    };
  }
}
