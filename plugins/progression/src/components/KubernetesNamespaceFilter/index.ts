export {
  KubernetesNamespaceFilter,
  kubernetesScopeQuery,
  scopeObjects,
} from './KubernetesNamespaceFilter';
export type { KubernetesScope } from './KubernetesNamespaceFilter';
