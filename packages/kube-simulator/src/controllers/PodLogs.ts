/** What the simulated containers wrote, by namespace, pod and container. */
export class PodLogs {
  private readonly logs = new Map<string, string>();

  private static key(namespace: string, pod: string, container?: string) {
    return `${namespace}/${pod}/${container ?? ''}`;
  }

  append(namespace: string, pod: string, container: string, line: string) {
    const key = PodLogs.key(namespace, pod, container);
    const stamped = `${line}\n`;
    this.logs.set(key, (this.logs.get(key) ?? '') + stamped);
  }

  read(namespace: string, pod: string, container?: string): string {
    if (container)
      return this.logs.get(PodLogs.key(namespace, pod, container)) ?? '';
    const prefix = `${namespace}/${pod}/`;
    return [...this.logs.entries()]
      .filter(([k]) => k.startsWith(prefix))
      .map(([, v]) => v)
      .join('');
  }

  remove(namespace: string, pod: string) {
    const prefix = `${namespace}/${pod}/`;
    for (const key of [...this.logs.keys()]) {
      if (key.startsWith(prefix)) this.logs.delete(key);
    }
  }
}
