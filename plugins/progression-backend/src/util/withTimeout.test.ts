import { withTimeout } from './withTimeout';

const never = (signal: AbortSignal, seen: AbortSignal[]) => {
  seen.push(signal);
  return new Promise<string>(() => {});
};

describe('withTimeout', () => {
  it('answers what the work answers, and its errors', async () => {
    await expect(
      withTimeout(async () => 'answer', 1_000, 'slow'),
    ).resolves.toBe('answer');
    await expect(
      withTimeout(
        async () => {
          throw new Error('refused');
        },
        1_000,
        'slow',
      ),
    ).rejects.toThrow('refused');
  });

  it('fails work that never answers with the message, and aborts it', async () => {
    const seen: AbortSignal[] = [];
    await expect(
      withTimeout(s => never(s, seen), 20, 'read Deployment x: no answer'),
    ).rejects.toMatchObject({
      name: 'TimeoutError',
      message: 'read Deployment x: no answer',
    });
    expect(seen[0].aborted).toBe(true);
  });

  it("rejects with the caller's abort reason, before or during the work", async () => {
    const reason = new Error('stopping');
    const controller = new AbortController();
    const seen: AbortSignal[] = [];
    const pending = withTimeout(
      s => never(s, seen),
      10_000,
      'slow',
      controller.signal,
    );
    controller.abort(reason);
    await expect(pending).rejects.toBe(reason);
    expect(seen[0].aborted).toBe(true);
    await expect(
      withTimeout(async () => 'late', 10_000, 'slow', controller.signal),
    ).rejects.toBe(reason);
  });
});
