import { V1ContainerStatus, V1Pod } from '@kubernetes/client-node';
import { podFailure } from './podFailure';

const NOW = Date.parse('2026-01-01T12:00:00Z');
const secondsAgo = (s: number) => new Date(NOW - s * 1000);

function pod(
  name: string,
  statuses: Array<Partial<V1ContainerStatus>>,
  extra: Partial<V1Pod['metadata']> = {},
): V1Pod {
  return {
    metadata: { name, creationTimestamp: secondsAgo(120), ...extra },
    spec: {
      containers: statuses.map(s => ({
        name: s.name ?? 'api',
        image: `registry.local/${s.name ?? 'api'}:2.0.0`,
      })),
    },
    status: {
      phase: 'Running',
      containerStatuses: statuses.map(s => ({
        name: 'api',
        image: 'registry.local/api:2.0.0',
        imageID: '',
        ready: false,
        restartCount: 0,
        ...s,
      })),
      conditions: [
        {
          type: 'ContainersReady',
          status: 'False',
          reason: 'ContainersNotReady',
          message: 'containers with unready status: [api]',
        },
      ],
    },
  };
}

const waiting = (reason: string, message?: string, restartCount = 0) => ({
  restartCount,
  state: { waiting: { reason, message } },
});
const running = (startedSecondsAgo: number, ready = false) => ({
  ready,
  state: { running: { startedAt: secondsAgo(startedSecondsAgo) } },
});

const judge = (pods: V1Pod[], readyTimeoutMs?: number) =>
  podFailure(pods, { now: NOW, readyTimeoutMs });

describe('podFailure', () => {
  it('fails a crash loop once it restarted twice, with the last exit', () => {
    const crashing = (restarts: number) =>
      pod('api-7d9f-abcde', [
        {
          ...waiting(
            'CrashLoopBackOff',
            'back-off 20s restarting failed container=api pod=api-7d9f-abcde_staging(u)',
            restarts,
          ),
          lastState: { terminated: { exitCode: 1, reason: 'Error' } },
        },
      ]);
    expect(judge([crashing(1)])).toBeUndefined();
    expect(judge([crashing(3)])).toEqual({
      message:
        'pod api-7d9f-abcde: container api is in CrashLoopBackOff after 3 restarts (last exit code 1, Error)',
      pod: {
        name: 'api-7d9f-abcde',
        container: 'api',
        reason: 'CrashLoopBackOff',
        message:
          'back-off 20s restarting failed container=api pod=api-7d9f-abcde_staging(u)',
        restartCount: 3,
      },
    });
  });

  it.each(['ErrImagePull', 'ImagePullBackOff'])(
    'fails an image that cannot be pulled (%s), naming the image',
    reason => {
      expect(
        judge([pod('api-1-a', [waiting(reason, 'Back-off pulling image')])]),
      ).toMatchObject({
        message: `pod api-1-a: container api cannot pull image "registry.local/api:2.0.0" (${reason}: Back-off pulling image)`,
        pod: { reason, container: 'api' },
      });
    },
  );

  it.each([
    ['CreateContainerConfigError', 'configmap "settings" not found'],
    ['CreateContainerError', 'failed to reserve container name'],
    ['InvalidImageName', 'couldn\'t parse image reference "API:1"'],
  ])('fails a container that cannot start (%s)', (reason, message) => {
    expect(judge([pod('api-1-a', [waiting(reason, message)])])).toMatchObject({
      message: `pod api-1-a: container api cannot start (${reason}: ${message})`,
      pod: { reason, message },
    });
  });

  it('waits on reasons that heal by themselves', () => {
    for (const reason of ['ContainerCreating', 'PodInitializing'])
      expect(judge([pod('api-1-a', [waiting(reason)])], 1_000)).toBeUndefined();
  });

  it('fails a container unready for longer than the ready timeout since it started', () => {
    expect(judge([pod('api-1-a', [running(30)])], 60_000)).toBeUndefined();
    expect(
      judge([pod('api-1-a', [running(90, true)])], 60_000),
    ).toBeUndefined();
    expect(judge([pod('api-1-a', [running(61)])], 60_000)).toEqual({
      message:
        'pod api-1-a: container api has not been ready for 61 s since it started (readyTimeout 60 s; its readiness probe is failing)',
      pod: {
        name: 'api-1-a',
        container: 'api',
        reason: 'NotReady',
        message: 'containers with unready status: [api]',
        restartCount: 0,
      },
    });
    // Without a ready timeout, readiness is left to the progress deadline.
    expect(judge([pod('api-1-a', [running(3600)])])).toBeUndefined();
  });

  it('reads string timestamps as well as dates', () => {
    const p = pod('api-1-a', [
      {
        state: {
          running: { startedAt: secondsAgo(90).toISOString() as any },
        },
      },
    ]);
    expect(judge([p], 60_000)?.pod.reason).toBe('NotReady');
  });

  it('names the oldest failing pod, skipping terminating ones and healthy containers', () => {
    const result = judge([
      pod('api-1-new', [waiting('ErrImagePull')], {
        creationTimestamp: secondsAgo(10),
      }),
      pod('api-1-gone', [waiting('ErrImagePull')], {
        creationTimestamp: secondsAgo(300),
        deletionTimestamp: secondsAgo(1),
      }),
      pod(
        'api-1-old',
        [
          running(100, true),
          { name: 'sidecar', ...waiting('ImagePullBackOff') },
        ],
        { creationTimestamp: secondsAgo(60) },
      ),
    ]);
    expect(result?.pod).toMatchObject({
      name: 'api-1-old',
      container: 'sidecar',
      reason: 'ImagePullBackOff',
    });
    expect(result?.message).toContain('"registry.local/sidecar:2.0.0"');
  });

  it('looks at init containers too', () => {
    const p = pod('api-1-a', []);
    p.status!.initContainerStatuses = [
      {
        name: 'migrate',
        image: 'registry.local/migrate:1',
        imageID: '',
        ready: false,
        restartCount: 4,
        state: { waiting: { reason: 'CrashLoopBackOff' } },
      },
    ];
    expect(judge([p])?.message).toBe(
      'pod api-1-a: container migrate is in CrashLoopBackOff after 4 restarts',
    );
  });

  it('keeps long kubelet messages short', () => {
    const result = judge([
      pod('api-1-a', [waiting('ErrImagePull', 'x'.repeat(1000))]),
    ]);
    expect(result!.pod.message!.length).toBe(300);
  });
});
