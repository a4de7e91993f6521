import {
  PipelineConfig,
  ProgressionConfig,
  StageConfig,
} from '../config/types';
import {
  KubernetesWorkloads,
  StageLocation,
} from '../kubernetes/KubernetesWorkloads';
import { GateContext } from './Gate';

/**
 * Where a stage's workload runs; throws for a cluster that is not configured
 * (or not, or not yet, in the catalog).
 */
export function stageLocation(
  config: ProgressionConfig,
  stage: StageConfig,
): StageLocation {
  const cluster = config.clusters.get(stage.cluster);
  if (!cluster) {
    throw new Error(
      `cluster ${stage.cluster} is not configured${[
        config.clustersFromCatalog &&
          `, and the catalog has no usable Resource of type kubernetes-cluster named ${stage.cluster} (read every minute)`,
        config.gkeLocators.length > 0 &&
          `, and no GKE cluster of the gke locators is named ${stage.cluster} (listed every minute)`,
      ]
        .filter(Boolean)
        .join('')}`,
    );
  }
  return { cluster, namespace: stage.namespace };
}

/**
 * What a gate gets to measure `stage` of `pipeline`: where it and its
 * neighbours run, and the cluster access. The engine adds the promotion's
 * own parts (release, id, baselines); a preview leaves them out.
 */
export function gateContext(options: {
  config: ProgressionConfig;
  pipeline: PipelineConfig;
  stage: StageConfig;
  workloads: KubernetesWorkloads;
  entity: NonNullable<GateContext['entity']>;
  stageUrl?: string;
  signal?: AbortSignal;
}): GateContext {
  const { config, pipeline, stage } = options;
  const index = pipeline.stages.findIndex(s => s.name === stage.name);
  const located = (s: StageConfig) => ({
    stage: s,
    location: stageLocation(config, s),
  });
  return {
    stage,
    stageUrl: options.stageUrl,
    signal: options.signal,
    entity: options.entity,
    location: stageLocation(config, stage),
    ...(index > 0 && { source: located(pipeline.stages[index - 1]) }),
    otherStages: pipeline.stages
      .filter(s => s.name !== stage.name)
      .map(located),
    workloads: options.workloads,
  };
}
