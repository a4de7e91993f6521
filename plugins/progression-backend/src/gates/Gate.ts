import { Config } from '@backstage/config';
import { GateResult } from '@progression-io/backstage-plugin-progression-common';
import {
  GateContext,
  GateDefinition,
  GatePhase,
  StageConfig,
  configuredPhases,
} from '@progression-io/backstage-plugin-progression-node';

export type {
  GateContext,
  GatePhase,
} from '@progression-io/backstage-plugin-progression-node';
export { startGateResult } from '@progression-io/backstage-plugin-progression-node';

/**
 * The built-in gates' common part: whether a stage runs one in a phase
 * follows from its definition, as it does for a module's gate.
 */
export abstract class Gate<TConfig = unknown>
  implements GateDefinition<TConfig>
{
  abstract readonly name: string;
  abstract readonly phases: readonly GatePhase[];

  abstract readConfig(
    stage: Config,
    options: { path: string; policy: Omit<StageConfig, 'gates'> },
  ): TConfig | undefined;

  abstract run(context: GateContext, phase: GatePhase): Promise<GateResult>;

  /** Whether the stage configures this gate for this phase. */
  appliesTo(stage: StageConfig, phase: GatePhase): boolean {
    return configuredPhases(this, stage).includes(phase);
  }
}
