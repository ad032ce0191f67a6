/**
 * Rate limits (429 with body and Retry-After), forced throttling, injected server errors, connection resets (a create's
 * response lost after the prediction exists), generic failures, deterministic flagging, and the billing statistics
 * that expose duplicate paid predictions.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  flaggedError,
  flaggedErrorOf,
  genericFailureError,
  nsfwError,
  type RunningSimulator,
  startSimulator,
} from '../../src/sim/index.js';
import {
  authHeaders,
  clientFor,
  eventually,
  type FixtureServer,
  makePng,
  startFixtureServer,
  waitForEnd,
} from '../helpers/sim-fixtures.js';

const PRO = 'black-forest-labs/flux-depth-pro';
const DEV = 'black-forest-labs/flux-depth-dev';

let images: FixtureServer;
const started: RunningSimulator[] = [];

async function simulator(options: Parameters<typeof startSimulator>[0] = {}): Promise<RunningSimulator> {
  const sim = await startSimulator({
    startDelayMs: { min: 0, max: 10 },
    latencyMs: { min: 10, max: 30 },
    outputMaxSide: 64,
    createsPerMinute: 100_000,
    requestsPerMinute: 100_000,
    ...options,
  });
  started.push(sim);
  return sim;
}

function input(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { prompt: 'a loft', control_image: `${images.url}/room.png`, seed: 3, ...extra };
}

function create(sim: RunningSimulator, body: unknown = { input: input() }, headers: Record<string, string> = {}) {
  return fetch(`${sim.baseUrl}/models/${PRO}/predictions`, {
    method: 'POST',
    headers: { ...authHeaders(), ...headers },
    body: JSON.stringify(body),
  });
}

beforeAll(async () => {
  images = await startFixtureServer();
  images.set('/room.png', { contentType: 'image/png', body: await makePng() });
});

afterAll(async () => {
  await Promise.all(started.map((sim) => sim.close()));
  await images.close();
});

describe('rate limits', () => {
  it('throttles creates beyond the per-minute bucket with Replicate’s 429 body and a Retry-After header', async () => {
    const sim = await simulator({
      createsPerMinute: 1,
      burst: { creates: 1 },
      startDelayMs: { min: 60_000, max: 60_000 },
    });
    expect((await create(sim)).status).toBe(201);
    const throttled = await create(sim);
    expect(throttled.status).toBe(429);
    expect(throttled.headers.get('retry-after')).toBe('60');
    expect(await throttled.json()).toEqual({
      detail: 'Request was throttled. Your rate limit resets in ~60s.',
      status: 429,
      retry_after: 60,
    });
    // Other endpoints have their own bucket.
    expect((await fetch(`${sim.baseUrl}/predictions`, { headers: authHeaders() })).status).toBe(200);
    expect(sim.stats()).toMatchObject({ createRequests: 2, creates: 1, throttled: 1 });
  });

  it('throttles other requests beyond their own bucket', async () => {
    const sim = await simulator({ requestsPerMinute: 1, burst: { requests: 2 } });
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++)
      statuses.push((await fetch(`${sim.baseUrl}/predictions`, { headers: authHeaders() })).status);
    expect(statuses).toEqual([200, 200, 429]);
  });

  it('throttleNext(count, s) forces the next requests of any kind to 429, then lets them through', async () => {
    const sim = await simulator();
    sim.throttleNext(2, 7);
    const first = await fetch(`${sim.baseUrl}/predictions`, { headers: authHeaders() });
    expect(first.status).toBe(429);
    expect(first.headers.get('retry-after')).toBe('7');
    expect(((await first.json()) as { retry_after: number }).retry_after).toBe(7);
    expect((await create(sim)).status).toBe(429);
    expect((await create(sim)).status).toBe(201);
  });

  it('POST /_sim/throttle does the same for a simulator in another process; the replicate client retries 429s itself', async () => {
    const sim = await simulator();
    const response = await fetch(`${sim.url}/_sim/throttle`, {
      method: 'POST',
      body: JSON.stringify({ count: 2, retryAfterSeconds: 5 }),
    });
    expect(response.status).toBe(200);
    // The client re-sends a 429'd create at once (it ignores Retry-After): it lands on the third try, long before the
    // 10 s that honouring Retry-After would take (docs/stack-facts.md).
    const before = Date.now();
    const created = await clientFor(sim).predictions.create({ model: PRO, input: input() });
    expect(created.status).toBe('starting');
    // Half the honoured wait: a bound a loaded machine cannot reach by slowness alone.
    expect(Date.now() - before).toBeLessThan(5_000);
    expect(sim.stats()).toMatchObject({ throttled: 2, createRequests: 3, creates: 1 });
    const bad = await fetch(`${sim.url}/_sim/throttle`, { method: 'POST', body: JSON.stringify({ count: -1 }) });
    expect(bad.status).toBe(400);
  });
});

describe('injected faults', () => {
  it('serverErrorRate answers 500/502/503 RFC 7807 before anything is created', async () => {
    const sim = await simulator({ faults: { serverErrorRate: 1, seed: 1 } });
    const statuses = new Set<number>();
    for (let i = 0; i < 12; i++) {
      const response = await create(sim);
      statuses.add(response.status);
      expect(response.headers.get('content-type')).toBe('application/problem+json');
      const body = (await response.json()) as { status: number };
      expect(body.status).toBe(response.status);
    }
    expect([...statuses].every((status) => [500, 502, 503].includes(status))).toBe(true);
    expect(statuses.size).toBeGreaterThan(1);
    expect(sim.stats()).toMatchObject({ creates: 0, serverErrors: 12 });
    expect(sim.stats().predictions.starting).toBe(0);
  });

  it('connectionResetRate drops a create’s response after creating it; listing recovers it by its input', async () => {
    const sim = await simulator({ faults: { connectionResetRate: 1 } });
    const sent = input({ prompt: 'lost response' });
    await expect(create(sim, { input: sent })).rejects.toThrow();
    expect(sim.stats()).toMatchObject({ creates: 1, resets: 1 });
    // GETs are reset too, before answering.
    await expect(fetch(`${sim.baseUrl}/predictions`, { headers: authHeaders() })).rejects.toThrow();
    expect(sim.stats()).toMatchObject({ resets: 2, lists: 0 });

    sim.setFaults({ connectionResetRate: 0 });
    const page = await clientFor(sim).predictions.list();
    const recovered = page.results.filter((prediction) => JSON.stringify(prediction.input) === JSON.stringify(sent));
    expect(recovered).toHaveLength(1);
    const done = await waitForEnd(clientFor(sim), recovered[0]?.id ?? '');
    expect(done.status).toBe('succeeded');
  });

  it('exposes the replicate client’s silent re-send of a create whose response was lost: duplicates billed', async () => {
    const sim = await simulator({ faults: { connectionResetRate: 1 } });
    const before = Date.now();
    await expect(
      clientFor(sim).predictions.create({ model: PRO, input: input({ prompt: 'resent' }) }),
    ).rejects.toThrow();
    // Six sends back to back: its nominal backoff (0.5 s, doubling) would take 15 s (docs/stack-facts.md); half of that
    // is a bound a loaded machine cannot reach by slowness alone.
    expect(Date.now() - before).toBeLessThan(7_500);
    expect(sim.stats()).toMatchObject({ createRequests: 6, creates: 6 });
    sim.setFaults({ connectionResetRate: 0 });
    const stats = await eventually(() => {
      const current = sim.stats();
      return current.predictions.succeeded === current.creates ? current : undefined;
    });
    expect(stats.inputsBilledMoreThanOnce).toBe(1);
    expect(stats.duplicateBilledInputs[0]?.count).toBe(stats.creates);
  });

  it('failureRate ends predictions `failed` with a generic CUDA error, not billed', async () => {
    const sim = await simulator({ faults: { failureRate: 1 } });
    const client = clientFor(sim);
    const done = await waitForEnd(client, (await client.predictions.create({ model: PRO, input: input() })).id);
    expect(done.status).toBe('failed');
    expect(done.error).toBe(genericFailureError);
    expect(done.error).toMatch(/^Prediction failed: CUDA error/);
    expect(sim.stats()).toMatchObject({ billedPredictions: 0, billedImages: 0 });
  });

  it('draws the same faults in the same order for the same seed', async () => {
    async function pattern(): Promise<string[]> {
      const sim = await simulator({ faults: { failureRate: 0.5, serverErrorRate: 0.3, seed: 2024 } });
      const outcomes: string[] = [];
      for (let i = 0; i < 16; i++) {
        const response = await create(sim, { input: input({ seed: i }) }, { Prefer: 'wait=10' });
        outcomes.push(
          response.status === 201 ? ((await response.json()) as { status: string }).status : String(response.status),
        );
      }
      return outcomes;
    }
    const first = await pattern();
    expect(await pattern()).toEqual(first);
    expect(new Set(first).size).toBeGreaterThanOrEqual(3);
  });

  it('POST /_sim/faults changes rates at run time and refuses bad values', async () => {
    const sim = await simulator({ faults: { flaggedRate: 0.25 } });
    const response = await fetch(`${sim.url}/_sim/faults`, {
      method: 'POST',
      body: JSON.stringify({ failureRate: 1 }),
    });
    expect(response.status).toBe(200);
    // Settings not named keep their values.
    expect(sim.faults()).toMatchObject({ failureRate: 1, flaggedRate: 0.25, serverErrorRate: 0 });
    const bad = await fetch(`${sim.url}/_sim/faults`, { method: 'POST', body: JSON.stringify({ failureRate: 2 }) });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { detail: string }).detail).toContain('failureRate');
  });
});

describe('flagging (E005)', () => {
  it('flags by content: the same input is flagged again, even through a re-presigned URL', async () => {
    const sim = await simulator({ faults: { flaggedRate: 0.5, seed: 7 } });
    const client = clientFor(sim);
    const verdicts = new Map<string, string>();
    for (let i = 0; i < 12; i++) {
      const created = await client.predictions.create({ model: PRO, input: input({ prompt: `room ${i}` }), wait: 10 });
      const done =
        created.status === 'succeeded' || created.status === 'failed' ? created : await waitForEnd(client, created.id);
      verdicts.set(`room ${i}`, done.status);
      if (done.status === 'failed') expect(done.error).toBe(flaggedError);
    }
    const statuses = [...verdicts.values()];
    expect(statuses).toContain('failed');
    expect(statuses).toContain('succeeded');
    expect(sim.stats().flagged).toBe(statuses.filter((status) => status === 'failed').length);

    for (const [prompt, status] of verdicts) {
      const retried = await client.predictions.create({
        model: PRO,
        input: input({ prompt, control_image: `${images.url}/room.png?X-Amz-Signature=${prompt.length}` }),
        wait: 10,
      });
      const done =
        retried.status === 'succeeded' || retried.status === 'failed' ? retried : await waitForEnd(client, retried.id);
      expect(done.status).toBe(status);
    }
  });
});

describe('flagging per model', () => {
  it('flux-depth-dev refuses a flagged input with its own NSFW message, not E005; flux-depth-pro with E005', async () => {
    expect(flaggedErrorOf(DEV)).toBe(nsfwError);
    expect(flaggedErrorOf(PRO)).toBe(flaggedError);
    const sim = await simulator({ faults: { flaggedRate: 1 } });
    const client = clientFor(sim);
    const dev = await waitForEnd(client, (await client.predictions.create({ model: DEV, input: input() })).id);
    expect(dev).toMatchObject({
      status: 'failed',
      error: 'NSFW content detected. Try running it again, or try a different prompt.',
    });
    expect(dev.error).not.toContain('E005');
    const pro = await waitForEnd(client, (await client.predictions.create({ model: PRO, input: input() })).id);
    expect(pro).toMatchObject({ status: 'failed', error: flaggedError });
    expect(sim.stats()).toMatchObject({ flagged: 2, billedPredictions: 0, billedImages: 0 });
  });
});

describe('billing statistics', () => {
  it('counts a second paid prediction of the same content (another URL, same bytes) as billed more than once', async () => {
    const sim = await simulator();
    const client = clientFor(sim);
    const ids: string[] = [];
    for (const query of ['?X-Amz-Signature=one', '?X-Amz-Signature=two']) {
      const created = await client.predictions.create({
        model: PRO,
        input: input({ control_image: `${images.url}/room.png${query}` }),
        wait: 10,
      });
      ids.push((await waitForEnd(client, created.id)).id);
    }
    await waitForEnd(client, (await client.predictions.create({ model: PRO, input: input({ seed: 99 }) })).id);

    const stats = sim.stats();
    expect(stats).toMatchObject({
      billedPredictions: 3,
      billedImages: 3,
      billedInputs: 2,
      inputsBilledMoreThanOnce: 1,
    });
    expect(stats.duplicateBilledInputs).toEqual([
      { key: expect.stringMatching(/^[0-9a-f]{64}$/), count: 2, predictionIds: ids },
    ]);
    expect(stats.predictions).toMatchObject({ succeeded: 3, starting: 0, processing: 0 });

    const served = (await (await fetch(`${sim.url}/_sim/stats`)).json()) as Record<string, unknown>;
    expect(served).toMatchObject({ billedImages: 3, inputsBilledMoreThanOnce: 1 });
  });
});
