import { ProgressionApiClient } from './ProgressionApiClient';

const entity = { kind: 'Component', namespace: 'default', name: 'a/b' };

/** A client whose requests are recorded and answered by `answer`. */
function clientAnswering(
  answer: () => Response,
  options: { token?: string } = {},
) {
  const requests: { url: string; init: RequestInit }[] = [];
  const client = new ProgressionApiClient({
    baseUrl: async () => 'http://backstage.test/api/progression',
    fetch: async (url, init) => {
      requests.push({ url, init });
      return answer();
    },
    ...(options.token && { token: async () => options.token }),
  });
  return { client, requests };
}

const json = (body: unknown, status = 200) =>
  new Response(JSON.stringify(body), {
    status,
    headers: { 'Content-Type': 'application/json' },
  });

describe('ProgressionApiClient', () => {
  it('puts the encoded entity reference and the query in the URL', async () => {
    const { client, requests } = clientAnswering(() => json({ items: [] }));
    await client.listPromotions(entity, {
      stage: 'staging',
      status: undefined,
      limit: 5,
    });
    expect(requests[0].url).toBe(
      'http://backstage.test/api/progression/v1/entities/Component/default/a%2Fb/promotions?stage=staging&limit=5',
    );
    expect(requests[0].init.method).toBe('GET');
    expect(requests[0].init.body).toBeUndefined();
  });

  it('sends JSON, the token and the idempotency key', async () => {
    const { client, requests } = clientAnswering(
      () => json({ id: 'p1' }, 202),
      { token: 't0ken' },
    );
    expect(
      await client.requestPromotion(
        entity,
        { stage: 'staging' },
        { idempotencyKey: 'k1' },
      ),
    ).toEqual({ id: 'p1' });
    expect(requests[0].init).toMatchObject({
      method: 'POST',
      body: '{"stage":"staging"}',
      headers: {
        Authorization: 'Bearer t0ken',
        'Content-Type': 'application/json',
        'Idempotency-Key': 'k1',
      },
    });
  });

  it('tells a new release (201) from one registered before (200)', async () => {
    let status = 201;
    const { client } = clientAnswering(() => json({ id: 'r1' }, status));
    const release = { version: '1.0.0', image: 'registry.local/a:1.0.0' };
    expect(await client.registerRelease(entity, release)).toEqual({
      release: { id: 'r1' },
      created: true,
    });
    status = 200;
    expect(await client.registerRelease(entity, release)).toEqual({
      release: { id: 'r1' },
      created: false,
    });
  });

  it('answers undefined for an empty body', async () => {
    const { client } = clientAnswering(
      () => new Response(null, { status: 202 }),
    );
    expect(await client.cancelPromotion('p1')).toBeUndefined();
  });

  it("throws a ResponseError with the backend's error for a failure", async () => {
    const { client } = clientAnswering(() =>
      json(
        {
          error: { name: 'ConflictError', message: 'stage staging is busy' },
          request: { method: 'POST', url: '/x' },
          response: { statusCode: 409 },
        },
        409,
      ),
    );
    await expect(
      client.requestPromotion(entity, { stage: 'staging' }),
    ).rejects.toMatchObject({
      name: 'ResponseError',
      statusCode: 409,
      body: { error: { message: 'stage staging is busy' } },
    });
  });

  it('throws the error errorFromResponse makes, when given', async () => {
    const client = new ProgressionApiClient({
      baseUrl: async () => 'http://backstage.test/api/progression',
      fetch: async () => json({ error: { message: 'no' } }, 404),
      errorFromResponse: async response =>
        new Error(`answered ${response.status}`),
    });
    await expect(client.getPromotion('p1')).rejects.toThrow('answered 404');
  });
});
