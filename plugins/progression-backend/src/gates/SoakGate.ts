import { GateResult } from '@progression-io/backstage-plugin-progression-common';
import { StageConfig } from '@progression-io/backstage-plugin-progression-node';
import { Gate, GateContext, GatePhase, startGateResult } from './Gate';
import { MetricsGate } from './MetricsGate';

/** How long a release soaks in a stage before it may move on. */
export interface SoakGateConfig {
  durationMs: number;
}

declare module '@progression-io/backstage-plugin-progression-node' {
  interface StageGateConfigs {
    soak?: SoakGateConfig;
  }
}

/**
 * A release must stay healthy in the stage it leaves for that stage's
 * `soak` time: before it enters the next stage, one sample of the soaked
 * stage's verification metric checks must pass. (That the time has passed
 * is the pipeline's order rule, checked before any gate runs.) Checks
 * that are optional on a backend without Prometheus leave it `skipped` as
 * not measured, like the metrics gate.
 */
export class SoakGate extends Gate<SoakGateConfig> {
  readonly name = 'soak';
  readonly phases = ['preflight'] as const;
  readonly configuredOn = 'source';

  constructor(private readonly metrics: MetricsGate) {
    super();
  }

  // Nothing to refuse here without a Prometheus: the metric checks soak
  // samples are the stage's own, which the metrics gate's readConfig
  // refuses unless they are optional.
  readConfig(
    _stage: unknown,
    { policy }: { policy: Omit<StageConfig, 'gates'> },
  ): SoakGateConfig | undefined {
    return policy.soakMs > 0 ? { durationMs: policy.soakMs } : undefined;
  }

  async run(context: GateContext, phase: GatePhase): Promise<GateResult> {
    const { source, release } = context;
    const result = startGateResult(this.name, phase);
    if (!source) {
      return result('skipped', 'the first stage has nothing to soak in', {});
    }
    const health = await this.metrics.health({
      ...context,
      stage: source.stage,
      location: source.location,
      stageUrl: undefined,
    });
    if (!health) {
      return result(
        'skipped',
        `${source.stage.name} has no verification metric checks to judge its health by`,
        {},
      );
    }
    const healthy = health.status === 'passed' || health.status === 'skipped';
    const notMeasured =
      health.status === 'skipped' &&
      (health.evidence as { optional?: boolean } | undefined)?.optional ===
        true;
    let reason: string;
    if (notMeasured) {
      // Kept first, so the result reads as not measured wherever it is shown.
      reason = `${health.reason}, so ${source.stage.name}'s health after its soak is not known`;
    } else if (healthy) {
      reason = `${source.stage.name}: ${health.reason}`;
    } else {
      reason = `${release?.version ?? 'the release'} is not healthy in ${
        source.stage.name
      }: ${health.reason}`;
    }
    return { ...health, gate: this.name, phase, reason };
  }
}
