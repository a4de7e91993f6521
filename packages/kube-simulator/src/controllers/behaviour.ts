/**
 * How a simulated container behaves, from its image reference. The tag (the
 * part after the last ':') carries the demo conventions documented in the
 * package README, so tests and demos can produce every failure, reported as
 * the kubelet reports it:
 *
 * - `badimage`: the image cannot be pulled: the container waits with
 *   `ErrImagePull`, then `ImagePullBackOff` (`Back-off pulling image "…"`),
 *   retried with back-off, and never runs; the pod stays `Pending`;
 * - `crashloop`: the container starts, exits 1 (reason `Error`, a crash line
 *   in its log) soon after, is restarted at once the first time and then
 *   after a doubling back-off, waiting with `CrashLoopBackOff`
 *   (`back-off 10s restarting failed container=…`) in between; its
 *   `restartCount` grows and it is never ready;
 * - `unready`: the pod runs but its readiness probe keeps failing: never
 *   ready, `ContainersReady`/`Ready` False with `ContainersNotReady`, so a
 *   rollout hits its progress deadline;
 * - `failing-migration` (or any tag with `fail`): a Job's pod fails, its
 *   containers exit 1 (99 for k6, below);
 * - `unhealthy`, `errors`, `slow`: served by the demo workload's HTTP server.
 *
 * Not from the tag: a container whose `env` or `envFrom` refers to a
 * ConfigMap or Secret (or key) that does not exist waits with
 * `CreateContainerConfigError` until it does (see `missingConfigRef`).
 *
 * A Job's container whose repository ends in `k6` (`grafana/k6:0.52.0`) is a
 * load test: it logs k6's end-of-test summary instead of a migration's lines,
 * and with `fail` in its tag (`grafana/k6:0.52.0-failing`) its thresholds are
 * crossed and it exits 99, k6's exit code for that.
 */
export interface ContainerBehaviour {
  /** `badimage`: every pull of the image fails. */
  pullFails: boolean;
  /** `crashloop`: the container exits 1 soon after each start. */
  crashes: boolean;
  /** Not `unready` (nor crashing): its readiness probe passes. */
  becomesReady: boolean;
  /** A Job's container exits 0: no `fail` in the tag. */
  jobSucceeds: boolean;
}

/** What a Job's container writes when it exits, and its exit code. */
export interface JobContainerExit {
  exitCode: number;
  log: string[];
}

function parseImage(image: string): { repository: string; tag: string } {
  const at = image.indexOf('@');
  const ref = at === -1 ? image : image.slice(0, at);
  const lastSlash = ref.lastIndexOf('/');
  const colon = ref.indexOf(':', lastSlash + 1);
  return colon === -1
    ? { repository: ref, tag: 'latest' }
    : { repository: ref.slice(0, colon), tag: ref.slice(colon + 1) };
}

export function imageTag(image: string | undefined): string {
  return image ? parseImage(image).tag : '';
}

export function behaviourOf(image: string | undefined): ContainerBehaviour {
  const tag = imageTag(image);
  const crashes = tag.includes('crashloop');
  return {
    pullFails: tag.includes('badimage'),
    crashes,
    becomesReady: !crashes && !tag.includes('unready'),
    jobSucceeds: !tag.includes('fail'),
  };
}

/** A metric line of k6's end-of-test summary, which pads names with dots. */
const k6Metric = (name: string, value: string) =>
  `${name.padEnd(31, '.')}: ${value}`;

/**
 * How a Job's container ends, once its pod's tags have decided whether the
 * Job succeeds (see {@link behaviourOf}).
 */
export function jobContainerExit(
  image: string | undefined,
  succeeded: boolean,
): JobContainerExit {
  if (image && parseImage(image).repository.endsWith('k6')) {
    return succeeded
      ? {
          exitCode: 0,
          log: [
            k6Metric('checks', '100.00% ✓ 600 ✗ 0'),
            k6Metric('http_req_duration', 'avg=12ms p(95)=25ms'),
            k6Metric('http_req_failed', '0.00%'),
            k6Metric('http_reqs', '600 20/s'),
            k6Metric('iterations', '600 20/s'),
          ],
        }
      : {
          exitCode: 99,
          log: [
            k6Metric('checks', '96.50% ✓ 579 ✗ 21'),
            k6Metric('http_req_duration', 'avg=480ms p(95)=1.2s'),
            k6Metric('http_req_failed', '3.50%'),
            k6Metric('http_reqs', '600 20/s'),
            k6Metric('iterations', '600 20/s'),
            "ERRO[0031] thresholds on metrics 'http_req_duration' have been crossed",
          ],
        };
  }
  return succeeded
    ? {
        exitCode: 0,
        log: ['applying migrations... done', 'completed successfully'],
      }
    : {
        exitCode: 1,
        log: [
          `ERROR: migration failed: relation "orders" is locked (the image's tag asks for a failing job)`,
        ],
      };
}
