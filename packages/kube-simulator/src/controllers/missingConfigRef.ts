import { Store } from '../store/Store';

/**
 * Why the kubelet cannot make a container's environment, in its words
 * (makeEnvironmentVariables in pkg/kubelet/kubelet_pods.go): a ConfigMap or
 * Secret that `envFrom` or an env `valueFrom` refers to does not exist, or
 * lacks the key, and the reference is not `optional`. Undefined when every
 * reference resolves. The container then waits with
 * `CreateContainerConfigError` and this message.
 */
export function missingConfigRef(
  store: Store,
  namespace: string,
  container: any,
): string | undefined {
  const read = (kind: 'configmap' | 'secret', name: string) =>
    store.get(kind === 'configmap' ? 'configmaps' : 'secrets', namespace, name);
  for (const from of container.envFrom ?? []) {
    const ref = from.configMapRef ?? from.secretRef;
    if (!ref) continue;
    const kind = from.configMapRef ? 'configmap' : 'secret';
    if (!read(kind, ref.name) && !ref.optional)
      return `${kind} "${ref.name}" not found`;
  }
  for (const env of container.env ?? []) {
    const ref =
      env.valueFrom?.configMapKeyRef ??
      env.valueFrom?.secretKeyRef ??
      undefined;
    if (!ref) continue;
    const kind = env.valueFrom.configMapKeyRef ? 'configmap' : 'secret';
    const object = read(kind, ref.name);
    if (ref.optional) continue;
    if (!object) return `${kind} "${ref.name}" not found`;
    if (!Object.prototype.hasOwnProperty.call(object.data ?? {}, ref.key))
      return `couldn't find key ${ref.key} in ${
        kind === 'configmap' ? 'ConfigMap' : 'Secret'
      } ${namespace}/${ref.name}`;
  }
  return undefined;
}
