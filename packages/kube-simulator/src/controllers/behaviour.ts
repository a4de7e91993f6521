/**
 * How a simulated container behaves, from its image reference. The tag (the
 * part after the last ':') carries the demo conventions documented in the
 * package README, so tests and demos can produce every failure:
 *
 * - `unready`: the pod runs but never becomes ready (a rollout hits its deadline);
 * - `failing-migration` (or any tag with `fail`): a Job's pod exits 1;
 * - `unhealthy`, `errors`, `slow`: served by the demo workload's HTTP server.
 */
export interface ContainerBehaviour {
  becomesReady: boolean;
  jobSucceeds: boolean;
}

export function imageTag(image: string | undefined): string {
  if (!image) return '';
  const at = image.indexOf('@');
  const ref = at === -1 ? image : image.slice(0, at);
  const lastSlash = ref.lastIndexOf('/');
  const colon = ref.indexOf(':', lastSlash + 1);
  return colon === -1 ? 'latest' : ref.slice(colon + 1);
}

export function behaviourOf(
  images: Array<string | undefined>,
): ContainerBehaviour {
  const tags = images.map(imageTag);
  return {
    becomesReady: !tags.some(t => t.includes('unready')),
    jobSucceeds: !tags.some(t => t.includes('fail')),
  };
}
