import { GateResult } from '@internal/backstage-plugin-progression-common';
import { StageConfig } from '@internal/backstage-plugin-progression-node';
import { Gate, GateContext, GatePhase, startGateResult } from './Gate';
import { MetricsGate } from './MetricsGate';

/** How long a release soaks in a stage before it may move on. */
export interface SoakGateConfig {
  durationMs: number;
}

declare module '@internal/backstage-plugin-progression-node' {
  interface StageGateConfigs {
    soak?: SoakGateConfig;
  }
}

/**
 * A release must stay healthy in the stage it leaves for that stage's
 * `soak` time: before it enters the next stage, one sample of the soaked
 * stage's verification metric checks must pass. (That the time has passed
 * is the pipeline's order rule, checked before any gate runs.)
 */
export class SoakGate extends Gate<SoakGateConfig> {
  readonly name = 'soak';
  readonly phases = ['preflight'] as const;
  readonly configuredOn = 'source';

  constructor(private readonly metrics: MetricsGate) {
    super();
  }

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
    return {
      ...health,
      gate: this.name,
      phase,
      reason: healthy
        ? `${source.stage.name}: ${health.reason}`
        : `${release?.version ?? 'the release'} is not healthy in ${
            source.stage.name
          }: ${health.reason}`,
    };
  }
}
