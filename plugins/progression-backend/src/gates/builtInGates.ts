import { GateDefinition } from '@progression-io/backstage-plugin-progression-node';
import { PrometheusClient } from '../prometheus/PrometheusClient';
import { IsolationGate } from './IsolationGate';
import { JobGate } from './JobGate';
import { LoadGate } from './LoadGate';
import { MetricsGate } from './MetricsGate';
import { ParityGate } from './ParityGate';
import { SmokeGate } from './SmokeGate';
import { SoakGate } from './SoakGate';

/**
 * The gates Progression brings, in the order they run within a phase
 * (soak before the other preflight gates, smoke first after the deploy).
 * Modules' gates run after them. Without `prometheus`, a stage's metric
 * checks are refused at start-up unless they are `optional`.
 */
export function builtInGates(
  options: { prometheus?: PrometheusClient } = {},
): GateDefinition<any>[] {
  const metrics = new MetricsGate(options.prometheus);
  return [
    new SoakGate(metrics),
    new IsolationGate(),
    new ParityGate(),
    new JobGate(),
    new SmokeGate(),
    metrics,
    new LoadGate(),
  ];
}
