import { Config } from '@backstage/config';
import { InputError } from '@backstage/errors';
import { GateResult } from '@progression-io/backstage-plugin-progression-common';
import {
  V1Container,
  V1Deployment,
  V1PodTemplateSpec,
} from '@kubernetes/client-node';
import {
  ProgressionConfigError,
  StageConfig,
} from '@progression-io/backstage-plugin-progression-node';
import { describeFlag, flagMatrix, readStageFlags } from '../flags/readFlags';
import {
  StageResources,
  describeKubeError,
} from '../kubernetes/StageResources';
import { Gate, GateContext, GatePhase, startGateResult } from './Gate';
import type {
  ParityEvidence,
  ParityWarning,
  ReferenceCheck,
  ResourceReference,
} from '@progression-io/backstage-plugin-progression-common';

export type {
  ParityEvidence,
  ParityWarning,
  ReferenceCheck,
  ResourceReference,
};

/** The `gates.parity` section of a stage (`true` or `{}`). */
// eslint-disable-next-line @typescript-eslint/no-empty-interface
export interface ParityGateConfig {
  /**
   * `keys` (the default): a Secret a container takes single keys of is read
   * whole, its key names kept and its values dropped, so that a missing key
   * is found before the deploy. `names`: every Secret is read as metadata
   * only, its values never leave the API server, and only its existence is
   * checked.
   */
  secrets: 'keys' | 'names';
}

/**
 * Reads and validates a stage's `gates.parity`, or undefined when the
 * stage has none or it is `false`. Throws ProgressionConfigError naming
 * the bad key.
 */
declare module '@progression-io/backstage-plugin-progression-node' {
  interface StageGateConfigs {
    parity?: ParityGateConfig;
  }
}

export function readParityGateConfig(
  stage: Config,
  path: string,
): ParityGateConfig | undefined {
  if (!stage.has('gates.parity')) return undefined;
  const raw = stage.getOptional('gates.parity');
  if (raw === false) return undefined;
  if (raw === true) return { secrets: 'keys' };
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ProgressionConfigError(
      `${path}.gates.parity`,
      'must be true or { secrets: keys | names }',
    );
  }
  for (const key of Object.keys(raw)) {
    if (key !== 'secrets') {
      throw new ProgressionConfigError(
        `${path}.gates.parity.${key}`,
        'unknown key; use secrets',
      );
    }
  }
  const secrets = (raw as { secrets?: unknown }).secrets ?? 'keys';
  if (secrets !== 'keys' && secrets !== 'names') {
    throw new ProgressionConfigError(
      `${path}.gates.parity.secrets`,
      `${JSON.stringify(
        secrets,
      )} is neither 'keys' (check the keys a container takes) nor 'names' (existence only, values never read)`,
    );
  }
  return { secrets };
}

/**
 * The Secrets and ConfigMaps a pod template references without
 * `optional: true`: env valueFrom, envFrom, volumes (secret, configMap,
 * projected sources) and imagePullSecrets.
 */
export function podTemplateReferences(
  template: V1PodTemplateSpec | undefined,
): ResourceReference[] {
  const refs = new Map<string, ResourceReference>();
  const add = (
    kind: ResourceReference['kind'],
    name: string | undefined,
    keys: (string | undefined)[],
    usedBy: string,
    optional?: boolean,
  ) => {
    if (!name || optional) return;
    const id = `${kind}/${name}`;
    let ref = refs.get(id);
    if (!ref) {
      ref = { kind, name, keys: [], usedBy: [] };
      refs.set(id, ref);
    }
    for (const key of keys) {
      if (key && !ref.keys.includes(key)) ref.keys.push(key);
    }
    if (!ref.usedBy.includes(usedBy)) ref.usedBy.push(usedBy);
  };
  const spec = template?.spec;
  const containers: [string, V1Container][] = [
    ...(spec?.initContainers ?? []).map(
      c => [`init container ${c.name}`, c] as [string, V1Container],
    ),
    ...(spec?.containers ?? []).map(
      c => [`container ${c.name}`, c] as [string, V1Container],
    ),
  ];
  for (const [where, c] of containers) {
    for (const e of c.env ?? []) {
      const s = e.valueFrom?.secretKeyRef;
      if (s)
        add('Secret', s.name, [s.key], `${where} env ${e.name}`, s.optional);
      const m = e.valueFrom?.configMapKeyRef;
      if (m)
        add('ConfigMap', m.name, [m.key], `${where} env ${e.name}`, m.optional);
    }
    for (const f of c.envFrom ?? []) {
      if (f.secretRef)
        add(
          'Secret',
          f.secretRef.name,
          [],
          `${where} envFrom`,
          f.secretRef.optional,
        );
      if (f.configMapRef)
        add(
          'ConfigMap',
          f.configMapRef.name,
          [],
          `${where} envFrom`,
          f.configMapRef.optional,
        );
    }
  }
  for (const v of spec?.volumes ?? []) {
    const where = `volume ${v.name}`;
    if (v.secret)
      add(
        'Secret',
        v.secret.secretName,
        (v.secret.items ?? []).map(i => i.key),
        where,
        v.secret.optional,
      );
    if (v.configMap)
      add(
        'ConfigMap',
        v.configMap.name,
        (v.configMap.items ?? []).map(i => i.key),
        where,
        v.configMap.optional,
      );
    for (const source of v.projected?.sources ?? []) {
      if (source.secret)
        add(
          'Secret',
          source.secret.name,
          (source.secret.items ?? []).map(i => i.key),
          where,
          source.secret.optional,
        );
      if (source.configMap)
        add(
          'ConfigMap',
          source.configMap.name,
          (source.configMap.items ?? []).map(i => i.key),
          where,
          source.configMap.optional,
        );
    }
  }
  for (const s of spec?.imagePullSecrets ?? []) {
    add('Secret', s.name, [], 'imagePullSecrets');
  }
  return [...refs.values()];
}

const code = (s: string) => `\`${s}\``;

function compareWorkloads(
  source: V1Deployment,
  target: V1Deployment,
  names: { source: string; target: string },
): ParityWarning[] {
  const warnings: ParityWarning[] = [];
  const sr = source.spec?.replicas ?? 1;
  const tr = target.spec?.replicas ?? 1;
  if (sr !== tr) {
    warnings.push({
      kind: 'replicas',
      message: `replicas differ: ${sr} in ${names.source}, ${tr} in ${names.target}`,
    });
  }
  const byName = (d: V1Deployment) =>
    new Map((d.spec?.template.spec?.containers ?? []).map(c => [c.name, c]));
  const sc = byName(source);
  const tc = byName(target);
  for (const [name, s] of sc) {
    const t = tc.get(name);
    if (!t) {
      warnings.push({
        kind: 'containers',
        message: `container ${name} is in ${names.source} but not in ${names.target}`,
      });
      continue;
    }
    const envNames = (c: V1Container) =>
      new Set([...(c.env ?? []).map(e => e.name)]);
    const se = envNames(s);
    const te = envNames(t);
    const onlySource = [...se].filter(n => !te.has(n));
    const onlyTarget = [...te].filter(n => !se.has(n));
    if (onlySource.length) {
      warnings.push({
        kind: 'env',
        message: `container ${name}: env ${onlySource.join(', ')} only in ${
          names.source
        }`,
      });
    }
    if (onlyTarget.length) {
      warnings.push({
        kind: 'env',
        message: `container ${name}: env ${onlyTarget.join(', ')} only in ${
          names.target
        }`,
      });
    }
    const res = (c: V1Container) =>
      JSON.stringify({
        requests: sortKeys(c.resources?.requests),
        limits: sortKeys(c.resources?.limits),
      });
    if (res(s) !== res(t)) {
      warnings.push({
        kind: 'resources',
        message: `container ${name}: resources differ: ${res(s)} in ${
          names.source
        }, ${res(t)} in ${names.target}`,
      });
    }
  }
  for (const name of tc.keys()) {
    if (!sc.has(name)) {
      warnings.push({
        kind: 'containers',
        message: `container ${name} is in ${names.target} but not in ${names.source}`,
      });
    }
  }
  return warnings;
}

function sortKeys(o?: Record<string, string>) {
  return o
    ? Object.fromEntries(
        Object.entries(o).sort(([a], [b]) => a.localeCompare(b)),
      )
    : undefined;
}

/**
 * Before the approval: what the release's workload needs in the stage it
 * comes from must be there in the target. Every Secret and ConfigMap (and
 * key) the source Deployment's pod template references must exist in the
 * target namespace; differences in env names, resources, replicas and
 * feature flags are warnings.
 */
export class ParityGate extends Gate<ParityGateConfig> {
  readonly name = 'parity';
  readonly preview = true;

  readonly phases = ['preflight'] as const;

  readConfig(
    stage: Config,
    { path }: { path: string; policy: Omit<StageConfig, 'gates'> },
  ): ParityGateConfig | undefined {
    return readParityGateConfig(stage, path);
  }

  async run(context: GateContext, phase: GatePhase): Promise<GateResult> {
    const result = startGateResult(this.name, phase);
    const { source, location, workloads, entity, stage } = context;
    const secretsMode = stage.gates.parity?.secrets ?? 'keys';
    if (!source) {
      return result(
        'skipped',
        `stage ${stage.name} has no previous stage to compare with`,
        {},
      );
    }
    if (!location || !workloads || !entity) {
      return result(
        'error',
        'cannot compare stages without the location, cluster access and entity',
        {},
      );
    }
    const resources = new StageResources(workloads);
    const names = { source: source.stage.name, target: stage.name };
    const evidence: ParityEvidence = {
      source: {
        stage: source.stage.name,
        namespace: source.location.namespace,
      },
      target: { stage: stage.name, namespace: location.namespace },
      references: [],
      failures: [],
      warnings: [],
    };
    let sourceDeployment: V1Deployment | undefined;
    let targetDeployment: V1Deployment | undefined;
    try {
      sourceDeployment = await resources.findDeployment(
        source.location,
        entity.kubernetesId,
      );
      if (!sourceDeployment) {
        return result(
          'error',
          `no Deployment labelled backstage.io/kubernetes-id=${entity.kubernetesId} in ${source.location.namespace} (stage ${source.stage.name}) to compare with`,
          evidence,
        );
      }
      evidence.source.deployment = sourceDeployment.metadata?.name;
      targetDeployment = await resources.findDeployment(
        location,
        entity.kubernetesId,
      );
      evidence.target.deployment = targetDeployment?.metadata?.name;

      for (const ref of podTemplateReferences(
        sourceDeployment.spec?.template,
      )) {
        let keys: string[] | undefined;
        let exists = false;
        // A Secret is read whole only for the keys a container takes;
        // otherwise (or in `names` mode) as metadata, its values left on
        // the server.
        const secretNamesOnly =
          ref.kind === 'Secret' &&
          (secretsMode === 'names' || ref.keys.length === 0);
        try {
          if (secretNamesOnly) {
            exists = await resources.secretExists(location, ref.name);
          } else {
            keys =
              ref.kind === 'Secret'
                ? await resources.secretKeys(location, ref.name)
                : await resources.configMapKeys(location, ref.name);
            exists = keys !== undefined;
          }
        } catch (e) {
          // A name the API would refuse cannot exist in the target either.
          if (!(e instanceof InputError)) throw e;
        }
        const check: ReferenceCheck = {
          ...ref,
          exists,
          missingKeys: keys ? ref.keys.filter(k => !keys.includes(k)) : [],
          ...(secretNamesOnly && ref.keys.length > 0 && { keysChecked: false }),
        };
        evidence.references.push(check);
        const kind = ref.kind === 'Secret' ? 'secret' : 'configMap';
        if (!check.exists) {
          evidence.failures.push(
            `references ${kind} ${code(
              ref.name,
            )}, which does not exist in ${code(location.namespace)}`,
          );
        } else {
          for (const key of check.missingKeys) {
            evidence.failures.push(
              `references ${kind} ${code(ref.name)}, which has no key ${code(
                key,
              )} in ${code(location.namespace)}`,
            );
          }
        }
      }
    } catch (e) {
      return result(
        'error',
        `cannot compare the workloads: ${describeKubeError(e)}`,
        evidence,
      );
    }

    if (targetDeployment) {
      evidence.warnings.push(
        ...compareWorkloads(sourceDeployment, targetDeployment, names),
      );
    } else {
      evidence.warnings.push({
        kind: 'containers',
        message: `no Deployment labelled backstage.io/kubernetes-id=${entity.kubernetesId} in ${location.namespace} yet: env, resources and replicas not compared`,
      });
    }

    const matrix = flagMatrix(
      await Promise.all([
        readStageFlags(
          resources,
          source.stage.name,
          source.location,
          source.stage.flags,
        ),
        readStageFlags(resources, stage.name, location, stage.flags),
      ]),
    );
    evidence.flags = matrix;
    for (const [s, error] of Object.entries(matrix.errors)) {
      evidence.warnings.push({
        kind: 'flags',
        message: `flags of ${s} not compared: ${error}`,
      });
    }
    for (const flag of matrix.flags.filter(f => f.differs)) {
      evidence.warnings.push({
        kind: 'flag',
        message: `flag ${flag.key} is ${describeFlag(
          flag.values[names.source],
        )} in ${names.source} and ${describeFlag(
          flag.values[names.target],
        )} in ${names.target}`,
      });
    }

    const w = evidence.warnings.length;
    const warningText = `${w} warning${w === 1 ? '' : 's'}`;
    if (evidence.failures.length) {
      const f = evidence.failures;
      return result(
        'failed',
        `${entity.kubernetesId} in ${names.source} ${f[0]}${
          f.length > 1 ? ` (and ${f.length - 1} more)` : ''
        }; ${warningText}`,
        evidence,
      );
    }
    const n = evidence.references.length;
    return result(
      'passed',
      `the ${n} Secret and ConfigMap reference${n === 1 ? '' : 's'} of ${
        entity.kubernetesId
      } in ${names.source} exist in ${location.namespace}; ${warningText}`,
      evidence,
    );
  }
}
