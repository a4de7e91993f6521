import { Config } from '@backstage/config';
import { GateResult } from '@progression-io/backstage-plugin-progression-common';
import {
  V1LabelSelector,
  V1NetworkPolicy,
  V1NetworkPolicyPeer,
} from '@kubernetes/client-node';
import {
  ProgressionConfigError,
  StageConfig,
} from '@progression-io/backstage-plugin-progression-node';
import {
  StageResources,
  describeKubeError,
  isLabelKey,
} from '../kubernetes/StageResources';
import { isDnsLabel } from '../kubernetes/names';
import { Gate, GateContext, GatePhase, startGateResult } from './Gate';
import type {
  IsolationEvidence,
  IsolationViolation,
  OtherNamespace,
} from '@progression-io/backstage-plugin-progression-common';

export type { IsolationEvidence, IsolationViolation, OtherNamespace };

/** The `gates.isolation` section of a stage. */
export interface IsolationGateConfig {
  /** The namespace label that says which environment a namespace is. */
  environmentLabel: string;
  /**
   * The namespace Backstage runs in, on the stage's cluster: its smoke and
   * load checks come from there, so the stage must admit it.
   */
  observerNamespace?: string;
}

/**
 * Reads and validates a stage's `gates.isolation` (`true`, or
 * `{ environmentLabel, observerNamespace }`), or undefined when the stage has none or it is
 * `false`. Throws ProgressionConfigError naming the bad key.
 */
declare module '@progression-io/backstage-plugin-progression-node' {
  interface StageGateConfigs {
    isolation?: IsolationGateConfig;
  }
}

export function readIsolationGateConfig(
  stage: Config,
  path: string,
): IsolationGateConfig | undefined {
  if (!stage.has('gates.isolation')) return undefined;
  const at = `${path}.gates.isolation`;
  const raw = stage.getOptional('gates.isolation');
  if (raw === false) return undefined;
  if (raw === true) return { environmentLabel: 'environment' };
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ProgressionConfigError(
      at,
      'must be true or an object { environmentLabel, observerNamespace }',
    );
  }
  for (const key of Object.keys(raw)) {
    if (key !== 'environmentLabel' && key !== 'observerNamespace') {
      throw new ProgressionConfigError(
        `${at}.${key}`,
        'unknown key; use environmentLabel or observerNamespace',
      );
    }
  }
  const { environmentLabel: label, observerNamespace: observer } = raw as {
    environmentLabel?: unknown;
    observerNamespace?: unknown;
  };
  if (
    label !== undefined &&
    (typeof label !== 'string' || !isLabelKey(label))
  ) {
    throw new ProgressionConfigError(
      `${at}.environmentLabel`,
      `${JSON.stringify(
        label,
      )} is not a label key such as 'environment' or 'example.com/environment'`,
    );
  }
  if (
    observer !== undefined &&
    (typeof observer !== 'string' || !isDnsLabel(observer))
  ) {
    throw new ProgressionConfigError(
      `${at}.observerNamespace`,
      `${JSON.stringify(
        observer,
      )} is not a namespace name (lowercase letters, digits and '-')`,
    );
  }
  return {
    environmentLabel: (label as string | undefined) ?? 'environment',
    ...(observer !== undefined && { observerNamespace: observer as string }),
  };
}

/**
 * Whether a label selector matches a set of labels
 * (k8s.io/apimachinery/pkg/apis/meta/v1 LabelSelectorAsSelector). An empty
 * selector matches everything. An unknown operator matches (so that a
 * policy this gate does not understand counts against it).
 */
export function selectorMatches(
  selector: V1LabelSelector,
  labels: Record<string, string>,
): boolean {
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) {
    if (labels[k] !== v) return false;
  }
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(labels, e.key);
    const values = e.values ?? [];
    switch (e.operator) {
      case 'In':
        if (!has || !values.includes(labels[e.key])) return false;
        break;
      case 'NotIn':
        if (has && values.includes(labels[e.key])) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
      default:
        break;
    }
  }
  return true;
}

const isEmptySelector = (s?: V1LabelSelector) =>
  !!s &&
  Object.keys(s.matchLabels ?? {}).length === 0 &&
  (s.matchExpressions ?? []).length === 0;

/** NetworkPolicy `policyTypes`, with the API server's default when absent. */
function policyTypes(p: V1NetworkPolicy): string[] {
  return (
    p.spec?.policyTypes ?? [
      'Ingress',
      ...(p.spec?.egress?.length ? ['Egress'] : []),
    ]
  );
}

/** A default-deny ingress policy: every pod, Ingress, no ingress rules. */
export function isDefaultDenyIngress(p: V1NetworkPolicy): boolean {
  return (
    isEmptySelector(p.spec?.podSelector) &&
    policyTypes(p).includes('Ingress') &&
    (p.spec?.ingress ?? []).length === 0
  );
}

function describeLabels(
  labels: Record<string, string> | undefined,
  key: string,
): string {
  if (!labels) return '';
  if (labels[key] !== undefined) return ` (${key}=${labels[key]})`;
  return '';
}

/**
 * A policy's ingress rules with their peers, numbered as in the policy;
 * none unless the policy governs ingress.
 */
function ingressRules(policy: V1NetworkPolicy) {
  if (!policyTypes(policy).includes('Ingress')) return [];
  return (policy.spec?.ingress ?? []).map((rule, index) => ({
    index,
    // client-node names the field `_from` (`from` in the JSON); accept
    // either, for policies built by hand.
    from: rule._from ?? (rule as { from?: V1NetworkPolicyPeer[] }).from ?? [],
  }));
}

/**
 * The violations of one policy's ingress rules: rules that admit every
 * source, ipBlock peers, and namespace selectors that match another
 * stage's namespace (or, when empty, every namespace).
 */
export function ingressViolations(
  policy: V1NetworkPolicy,
  others: OtherNamespace[],
  environmentLabel: string,
): IsolationViolation[] {
  const name = policy.metadata?.name ?? '(unnamed)';
  const violations: IsolationViolation[] = [];
  const add = (v: Omit<IsolationViolation, 'description'>) =>
    violations.push({
      ...v,
      description: `policy ${v.policy} rule ${v.rule} admits ${v.admits}`,
    });
  for (const { index: i, from } of ingressRules(policy)) {
    if (from.length === 0) {
      add({
        policy: name,
        rule: i,
        admits: 'every source (the rule has no from)',
      });
      continue;
    }
    for (const peer of from) {
      if (peer.ipBlock) {
        const except = peer.ipBlock.except?.length
          ? ` except ${peer.ipBlock.except.join(', ')}`
          : '';
        add({
          policy: name,
          rule: i,
          peer,
          admits: `ipBlock ${peer.ipBlock.cidr}${except}, which can include pods of other environments`,
        });
        continue;
      }
      if (!peer.namespaceSelector) continue; // pods of the policy's own namespace
      if (isEmptySelector(peer.namespaceSelector)) {
        add({
          policy: name,
          rule: i,
          peer,
          admits: 'every namespace (empty namespaceSelector)',
        });
        continue;
      }
      for (const other of others) {
        if (!other.labels) continue;
        if (selectorMatches(peer.namespaceSelector, other.labels)) {
          add({
            policy: name,
            rule: i,
            peer,
            namespace: other.namespace,
            stage: other.stage,
            admits: `namespace ${other.namespace}${describeLabels(
              other.labels,
              environmentLabel,
            )}`,
          });
        }
      }
    }
  }
  return violations;
}

/**
 * The ingress rules of `policies` that admit pods of a namespace with
 * `labels` (a peer whose namespaceSelector matches them, or a rule without
 * `from`), as 'policy rule i'.
 */
export function rulesAdmitting(
  policies: V1NetworkPolicy[],
  labels: Record<string, string>,
): string[] {
  return policies.flatMap(policy =>
    ingressRules(policy)
      .filter(
        ({ from }) =>
          from.length === 0 ||
          from.some(
            peer =>
              peer.namespaceSelector &&
              selectorMatches(peer.namespaceSelector, labels),
          ),
      )
      .map(
        ({ index }) => `${policy.metadata?.name ?? '(unnamed)'} rule ${index}`,
      ),
  );
}

/**
 * Before the approval: the target stage's namespace must deny ingress by
 * default and admit nothing from the other stages' namespaces (the ones on
 * the same cluster, which namespace selectors can reach).
 */
export class IsolationGate extends Gate<IsolationGateConfig> {
  readonly name = 'isolation';
  readonly preview = true;

  readonly phases = ['preflight'] as const;

  readConfig(
    stage: Config,
    { path }: { path: string; policy: Omit<StageConfig, 'gates'> },
  ): IsolationGateConfig | undefined {
    return readIsolationGateConfig(stage, path);
  }

  async run(context: GateContext, phase: GatePhase): Promise<GateResult> {
    const result = startGateResult(this.name, phase);
    const config = context.stage.gates.isolation ?? {
      environmentLabel: 'environment',
    };
    const { location, workloads } = context;
    if (!location || !workloads) {
      return result(
        'error',
        'cannot check isolation without the stage location and cluster access',
        {},
      );
    }
    const resources = new StageResources(workloads);
    const key = config.environmentLabel;
    let labels: Record<string, string> | undefined;
    let policies: V1NetworkPolicy[];
    const others: OtherNamespace[] = [];
    let observerLabels: Record<string, string> | undefined;
    try {
      labels = await resources.namespaceLabels(location);
      if (!labels) {
        return result(
          'error',
          `namespace ${location.namespace} does not exist in cluster ${location.cluster.name}`,
          { cluster: location.cluster.name, namespace: location.namespace },
        );
      }
      policies = await resources.listNetworkPolicies(location);
      for (const other of context.otherStages ?? []) {
        const entry: OtherNamespace = {
          stage: other.stage.name,
          cluster: other.location.cluster.name,
          namespace: other.location.namespace,
        };
        others.push(entry);
        if (other.location.cluster.name !== location.cluster.name) {
          entry.note =
            'on another cluster: namespace selectors cannot reach it (ipBlock peers can)';
          continue;
        }
        const otherLabels = await resources.namespaceLabels(other.location);
        if (otherLabels) entry.labels = otherLabels;
        else entry.note = 'the namespace does not exist';
      }
      if (config.observerNamespace) {
        observerLabels = await resources.namespaceLabels({
          ...location,
          namespace: config.observerNamespace,
        });
      }
    } catch (e) {
      return result(
        'error',
        `cannot read the namespaces and NetworkPolicies: ${describeKubeError(
          e,
        )}`,
        { cluster: location.cluster.name, namespace: location.namespace },
      );
    }

    const warnings: string[] = [];
    const environment = labels[key];
    if (environment === undefined) {
      warnings.push(
        `namespace ${location.namespace} has no ${key} label, so policies cannot select it by environment`,
      );
    }
    const violations: IsolationViolation[] = [];
    for (const other of others) {
      if (
        other.cluster === location.cluster.name &&
        other.namespace === location.namespace
      ) {
        violations.push({
          policy: '(none)',
          rule: -1,
          namespace: other.namespace,
          stage: other.stage,
          admits: `stage ${other.stage}, which shares the namespace`,
          description: `stage ${other.stage} runs in the same namespace ${location.namespace}, so no policy can isolate them`,
        });
      } else if (
        other.labels &&
        environment !== undefined &&
        other.labels[key] === environment
      ) {
        warnings.push(
          `namespace ${other.namespace} of stage ${other.stage} has the same ${key}=${environment} label`,
        );
      }
    }
    const sameCluster = others.filter(
      o =>
        o.cluster === location.cluster.name &&
        o.namespace !== location.namespace,
    );
    for (const policy of policies) {
      violations.push(...ingressViolations(policy, sameCluster, key));
    }
    const defaultDeny = policies.find(isDefaultDenyIngress);
    const observer = config.observerNamespace
      ? {
          namespace: config.observerNamespace,
          ...(observerLabels && { labels: observerLabels }),
          admittedBy: observerLabels
            ? rulesAdmitting(policies, observerLabels)
            : [],
        }
      : undefined;
    const evidence: IsolationEvidence = {
      cluster: location.cluster.name,
      namespace: location.namespace,
      labels,
      environmentLabel: key,
      ...(environment !== undefined && { environment }),
      policiesChecked: policies.map(p => p.metadata?.name ?? '(unnamed)'),
      defaultDeny: defaultDeny?.metadata?.name ?? null,
      otherStages: others,
      violations,
      warnings,
      ...(observer && { observer }),
    };
    const problems = [
      ...(defaultDeny
        ? []
        : [
            `namespace ${location.namespace} has no default-deny ingress policy (podSelector {}, policyTypes [Ingress], no ingress rules)`,
          ]),
      ...violations.map(v => v.description),
      ...(!observer || observer.admittedBy.length || !defaultDeny
        ? []
        : [
            observer.labels
              ? `namespace ${location.namespace} admits nothing from the observer namespace ${observer.namespace}, where Backstage's smoke and load checks come from; add an ingress rule whose namespaceSelector matches it`
              : `the observer namespace ${observer.namespace} does not exist in cluster ${location.cluster.name}`,
          ]),
    ];
    if (problems.length) {
      return result(
        'failed',
        `${problems[0]}${
          problems.length > 1 ? ` (and ${problems.length - 1} more)` : ''
        }`,
        evidence,
      );
    }
    return result(
      'passed',
      `namespace ${location.namespace} denies ingress by default (${
        evidence.defaultDeny
      }) and admits none of ${sameCluster.length} other stage namespace(s)${
        observer
          ? `, but admits the observer namespace ${
              observer.namespace
            } (${observer.admittedBy.join(', ')})`
          : ''
      }; ${policies.length} policies checked`,
      evidence,
    );
  }
}
