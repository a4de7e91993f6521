import { rolloutStatus } from './rolloutStatus';

const deployment = (status: object, generation = 2, replicas = 3) => ({
  metadata: { name: 'web', generation },
  spec: { replicas, selector: {}, template: {} },
  status: { observedGeneration: 2, ...status },
});

describe('rolloutStatus', () => {
  it.each([
    [{ observedGeneration: 1 }, false, 'spec update to be observed'],
    [
      { updatedReplicas: 1, replicas: 3, availableReplicas: 3 },
      false,
      '1 out of 3 new replicas have been updated',
    ],
    [
      { updatedReplicas: 3, replicas: 4, availableReplicas: 3 },
      false,
      '1 old replicas are pending termination',
    ],
    [
      { updatedReplicas: 3, replicas: 3, availableReplicas: 2 },
      false,
      '2 of 3 updated replicas are available',
    ],
    [
      { updatedReplicas: 3, replicas: 3, availableReplicas: 3 },
      true,
      'deployment "web" successfully rolled out',
    ],
  ])('%j → done %s', (status, done, message) => {
    const result = rolloutStatus(deployment(status) as any);
    expect(result.done).toBe(done);
    expect(result.message).toContain(message);
  });

  it('fails on ProgressDeadlineExceeded', () => {
    const result = rolloutStatus(
      deployment({
        updatedReplicas: 1,
        conditions: [
          {
            type: 'Progressing',
            status: 'False',
            reason: 'ProgressDeadlineExceeded',
          },
        ],
      }) as any,
    );
    expect(result).toEqual({
      done: false,
      failed: true,
      message: 'deployment "web" exceeded its progress deadline',
    });
  });
});
