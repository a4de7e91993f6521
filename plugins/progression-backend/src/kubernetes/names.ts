/*
 * The Kubernetes name rules, checked before a name goes into a URL path,
 * a selector or a resource.
 */

// k8s.io/apimachinery/pkg/util/validation: IsDNS1123Label, IsDNS1123Subdomain,
// IsValidLabelValue, IsQualifiedName, IsConfigMapKey.
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN =
  /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const CONFIG_MAP_KEY = /^[-._a-zA-Z0-9]+$/;

/** Whether `value` is an RFC 1123 label (namespaces, Job names). */
export function isDnsLabel(value: string): boolean {
  return value.length <= 63 && DNS_LABEL.test(value);
}

/** Whether `value` is an RFC 1123 subdomain (ConfigMap, Secret names). */
export function isDnsSubdomain(value: string): boolean {
  return value.length <= 253 && DNS_SUBDOMAIN.test(value);
}

/** Whether `value` may be a label value. */
export function isLabelValue(value: string): boolean {
  return value.length <= 63 && LABEL_VALUE.test(value);
}

/** Whether `value` may be a label key (`[prefix/]name`). */
export function isLabelKey(value: string): boolean {
  const slash = value.lastIndexOf('/');
  const prefix = slash >= 0 ? value.slice(0, slash) : undefined;
  const name = slash >= 0 ? value.slice(slash + 1) : value;
  if (prefix !== undefined && !isDnsSubdomain(prefix)) return false;
  return name.length <= 63 && QUALIFIED_NAME.test(name);
}

/** Whether `value` may be a key of a ConfigMap or Secret. */
export function isConfigMapKey(value: string): boolean {
  return (
    value.length <= 253 &&
    CONFIG_MAP_KEY.test(value) &&
    value !== '.' &&
    value !== '..'
  );
}
