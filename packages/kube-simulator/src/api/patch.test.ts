import { jsonPatch, mergePatch, strategicMergePatch } from './patch';

const deployment = {
  metadata: { name: 'web', labels: { app: 'web', tier: 'front' } },
  spec: {
    replicas: 2,
    template: {
      spec: {
        containers: [
          {
            name: 'web',
            image: 'web:1',
            env: [
              { name: 'A', value: '1' },
              { name: 'B', value: '2' },
            ],
          },
          { name: 'sidecar', image: 'proxy:1' },
        ],
      },
    },
  },
};

describe('strategicMergePatch', () => {
  it('merges containers by name, as kubectl set image expects', () => {
    const patched = strategicMergePatch(deployment, {
      spec: {
        template: { spec: { containers: [{ name: 'web', image: 'web:2' }] } },
      },
    });
    expect(patched.spec.template.spec.containers).toEqual([
      {
        name: 'web',
        image: 'web:2',
        env: [
          { name: 'A', value: '1' },
          { name: 'B', value: '2' },
        ],
      },
      { name: 'sidecar', image: 'proxy:1' },
    ]);
    expect(deployment.spec.template.spec.containers[0].image).toBe('web:1');
  });

  it('merges env by name and deletes with $patch: delete and null', () => {
    const patched = strategicMergePatch(deployment, {
      metadata: { labels: { tier: null } },
      spec: {
        template: {
          spec: {
            containers: [
              {
                name: 'web',
                env: [
                  { name: 'B', value: '3' },
                  { name: 'A', $patch: 'delete' },
                  { name: 'C', value: '4' },
                ],
              },
              { name: 'sidecar', $patch: 'delete' },
            ],
          },
        },
      },
    });
    expect(patched.metadata.labels).toEqual({ app: 'web' });
    expect(patched.spec.template.spec.containers).toEqual([
      {
        name: 'web',
        image: 'web:1',
        env: [
          { name: 'B', value: '3' },
          { name: 'C', value: '4' },
        ],
      },
    ]);
  });

  it('honours $patch: replace, $retainKeys and $setElementOrder', () => {
    const patched = strategicMergePatch(deployment, {
      metadata: { labels: { $patch: 'replace', only: 'this' } },
      spec: {
        $retainKeys: ['template'],
        template: {
          spec: {
            '$setElementOrder/containers': [
              { name: 'sidecar' },
              { name: 'web' },
            ],
          },
        },
      },
    });
    expect(patched.metadata.labels).toEqual({ only: 'this' });
    expect(Object.keys(patched.spec)).toEqual(['template']);
    expect(
      patched.spec.template.spec.containers.map((c: any) => c.name),
    ).toEqual(['sidecar', 'web']);
  });

  it('replaces lists without a merge key', () => {
    expect(
      strategicMergePatch(
        { spec: { args: ['a', 'b'] } },
        { spec: { args: ['c'] } },
      ),
    ).toEqual({ spec: { args: ['c'] } });
  });
});

describe('mergePatch (RFC 7386)', () => {
  it('merges maps, replaces lists and deletes nulls', () => {
    expect(
      mergePatch(
        { a: { b: 1, c: 2 }, l: [1, 2] },
        { a: { c: null, d: 3 }, l: [3] },
      ),
    ).toEqual({ a: { b: 1, d: 3 }, l: [3] });
  });
});

describe('jsonPatch (RFC 6902)', () => {
  it('applies operations and refuses a failing test', () => {
    expect(
      jsonPatch({ a: [1] }, [{ op: 'add', path: '/a/-', value: 2 }]),
    ).toEqual({ a: [1, 2] });
    expect(() =>
      jsonPatch({ a: 1 }, [{ op: 'test', path: '/a', value: 2 }]),
    ).toThrow(/rejected/);
  });
});
