/**
 * The simulator's prediction API through the official `replicate` client: create (both routes), get, cancel, list with
 * cursor pagination, models.get, the webhook secret, auth, `Prefer: wait` and `Cancel-After`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fluxDepthPro } from '../../src/core/models.js';
import { type RunningSimulator, startSimulator } from '../../src/sim/index.js';
import {
  apiErrorOf,
  authHeaders,
  clientFor,
  type FixtureServer,
  makePng,
  startFixtureServer,
  waitForEnd,
} from '../helpers/sim-fixtures.js';

const PRO = 'black-forest-labs/flux-depth-pro';
const DEV = 'black-forest-labs/flux-depth-dev';

let images: FixtureServer;
let fast: RunningSimulator;
const started: RunningSimulator[] = [];

async function simulator(options: Parameters<typeof startSimulator>[0]): Promise<RunningSimulator> {
  const sim = await startSimulator({
    outputMaxSide: 64,
    createsPerMinute: 100_000,
    requestsPerMinute: 100_000,
    ...options,
  });
  started.push(sim);
  return sim;
}

function proInput(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { prompt: 'a quiet room at night', control_image: `${images.url}/room.png`, seed: 7, ...extra };
}

beforeAll(async () => {
  images = await startFixtureServer();
  images.set('/room.png', { contentType: 'image/png', body: await makePng() });
  fast = await simulator({ startDelayMs: { min: 10, max: 30 }, latencyMs: { min: 30, max: 60 } });
});

afterAll(async () => {
  await Promise.all(started.map((sim) => sim.close()));
  await images.close();
});

describe('create', () => {
  it('creates through POST /v1/models/{owner}/{name}/predictions and answers 201 with a Replicate-shaped prediction', async () => {
    const input = proInput();
    const response = await fetch(`${fast.baseUrl}/models/${PRO}/predictions`, {
      method: 'POST',
      headers: authHeaders(),
      body: JSON.stringify({ input }),
    });
    expect(response.status).toBe(201);
    const prediction = (await response.json()) as Record<string, unknown>;
    expect(prediction).toMatchObject({
      model: PRO,
      version: 'hidden',
      input,
      output: null,
      error: null,
      status: 'starting',
      source: 'api',
      data_removed: false,
    });
    expect(prediction.id).toMatch(/^[0-9a-z]{26}$/);
    expect(Date.parse(String(prediction.created_at))).not.toBeNaN();
    expect(prediction.urls).toEqual({
      get: `${fast.baseUrl}/predictions/${prediction.id}`,
      cancel: `${fast.baseUrl}/predictions/${prediction.id}/cancel`,
      web: `${fast.url}/p/${prediction.id}`,
    });
  });

  it('runs starting → processing → succeeded, with timestamps and metrics', async () => {
    const client = clientFor(fast);
    const created = await client.predictions.create({ model: PRO, input: proInput() });
    const done = await waitForEnd(client, created.id);
    expect(done.status).toBe('succeeded');
    expect(done.output).toBe(`${fast.url}/files/${created.id}/output-0.jpg`);
    const createdAt = Date.parse(done.created_at);
    const startedAt = Date.parse(String(done.started_at));
    const completedAt = Date.parse(String(done.completed_at));
    expect(startedAt).toBeGreaterThanOrEqual(createdAt);
    expect(completedAt).toBeGreaterThanOrEqual(startedAt);
    expect(done.metrics?.predict_time).toBeCloseTo((completedAt - startedAt) / 1000, 2);
    expect(done.metrics).toMatchObject({ image_count: 1 });
  });

  it('creates through POST /v1/predictions with version "owner/name", "owner/name:hash" or the bare version id', async () => {
    const client = clientFor(fast);
    const model = await client.models.get('black-forest-labs', 'flux-depth-pro');
    const versionId = model.latest_version?.id ?? '';
    expect(versionId).toMatch(/^[0-9a-f]{64}$/);
    for (const version of [PRO, `${PRO}:${versionId}`, versionId]) {
      const prediction = await client.predictions.create({ version, input: proInput() });
      expect(prediction.model).toBe(PRO);
      expect(prediction.status).toBe('starting');
    }
  });

  it('answers 404 RFC 7807 for an unknown model and 422 for an unknown version', async () => {
    const client = clientFor(fast);
    const unknownModel = await apiErrorOf(client.predictions.create({ model: 'acme/nothing', input: proInput() }));
    expect(unknownModel.status).toBe(404);
    expect(unknownModel.body).toMatchObject({ status: 404, title: 'Not found' });
    expect(String(unknownModel.body.detail)).toContain('acme/nothing');

    const unknownVersion = await apiErrorOf(client.predictions.create({ version: 'acme/nothing', input: proInput() }));
    expect(unknownVersion.status).toBe(422);
    expect(unknownVersion.body).toMatchObject({ status: 422, title: 'Invalid version or not permitted' });
  });

  it('answers 404 for an unknown prediction id', async () => {
    const missing = await apiErrorOf(clientFor(fast).predictions.get('doesnotexist0000000000000'));
    expect(missing.status).toBe(404);
    expect(missing.body).toMatchObject({ status: 404 });
  });
});

describe('auth', () => {
  it('answers 401 RFC 7807 without a bearer token or with an empty one', async () => {
    for (const headers of [{}, { Authorization: 'Bearer ' }, { Authorization: 'Basic abc' }]) {
      const response = await fetch(`${fast.baseUrl}/predictions`, { headers });
      expect(response.status).toBe(401);
      expect(response.headers.get('content-type')).toBe('application/problem+json');
      expect(await response.json()).toMatchObject({ status: 401, title: 'Unauthenticated' });
    }
  });

  it('accepts only the configured token when apiToken is set', async () => {
    const locked = await simulator({ apiToken: 'r8_right' });
    const wrong = await apiErrorOf(clientFor(locked, 'r8_wrong').predictions.list());
    expect(wrong.status).toBe(401);
    const page = await clientFor(locked, 'r8_right').predictions.list();
    expect(page.results).toEqual([]);
  });
});

describe('models and webhook secret', () => {
  it('GET /v1/models/{owner}/{name} publishes the registry input schema in latest_version.openapi_schema', async () => {
    const client = clientFor(fast);
    const model = await client.models.get('black-forest-labs', 'flux-depth-pro');
    expect(model).toMatchObject({ owner: 'black-forest-labs', name: 'flux-depth-pro', visibility: 'public' });
    expect(model.run_count).toBeGreaterThan(0);
    const schema = model.latest_version?.openapi_schema as {
      openapi: string;
      paths: Record<string, unknown>;
      components: { schemas: { Input: Record<string, unknown>; Output: Record<string, unknown> } };
    };
    expect(schema.openapi).toMatch(/^3\./);
    expect(Object.keys(schema.paths)).toContain('/predictions');
    const input = schema.components.schemas.Input as { required: string[]; properties: Record<string, unknown> };
    expect(input.required.sort()).toEqual(['control_image', 'prompt']);
    expect(input.properties.steps).toMatchObject({ type: 'integer', minimum: 15, maximum: 50, default: 50 });
    expect(input.properties.output_format).toMatchObject({ enum: ['jpg', 'png'] });
    expect(Object.keys(input.properties).sort()).toEqual(Object.keys(fluxDepthPro.inputs).sort());
    expect(schema.components.schemas.Output).toMatchObject({ type: 'string', format: 'uri' });

    const dev = await client.models.get('black-forest-labs', 'flux-depth-dev');
    const devSchema = dev.latest_version?.openapi_schema as { components: { schemas: { Output: unknown } } };
    expect(devSchema.components.schemas.Output).toMatchObject({ type: 'array' });

    expect((await apiErrorOf(client.models.get('acme', 'nothing'))).status).toBe(404);
  });

  it('GET /v1/webhooks/default/secret returns the whsec_ signing secret', async () => {
    const secret = await clientFor(fast).webhooks.default.secret.get();
    expect(secret.key).toBe(fast.webhookSecret);
    expect(secret.key).toMatch(/^whsec_[A-Za-z0-9+/]+=*$/);
  });
});

describe('cancel', () => {
  it('cancels a starting prediction and returns a terminal one unchanged', async () => {
    const slow = await simulator({ startDelayMs: { min: 60_000, max: 60_000 } });
    const client = clientFor(slow);
    const created = await client.predictions.create({ model: PRO, input: proInput() });
    const canceled = await client.predictions.cancel(created.id);
    expect(canceled.status).toBe('canceled');
    expect(canceled.completed_at).toBeDefined();
    const again = await client.predictions.cancel(created.id);
    expect(again).toEqual(canceled);
    expect(slow.stats().canceledWhileRunning).toBe(0);
    expect(slow.stats().cancels).toBe(2);
  });

  it('cancels a processing prediction and records it as canceled while running (billed)', async () => {
    const running = await simulator({ startDelayMs: { min: 0, max: 0 }, latencyMs: { min: 60_000, max: 60_000 } });
    const client = clientFor(running);
    const created = await client.predictions.create({ model: PRO, input: proInput() });
    const processing = await waitForStatus(client, created.id, 'processing');
    expect(processing.started_at).toBeDefined();
    // The content key needs the control image's bytes; they are fetched as the prediction starts.
    const canceled = await client.predictions.cancel(created.id);
    expect(canceled.status).toBe('canceled');
    const stats = await eventuallyStats(running, (s) => s.billedPredictions === 1);
    expect(stats.canceledWhileRunning).toBe(1);
    expect(stats.billedImages).toBe(0);
  });
});

async function waitForStatus(client: ReturnType<typeof clientFor>, id: string, status: string) {
  for (let i = 0; i < 500; i++) {
    const prediction = await client.predictions.get(id);
    if (prediction.status === status) return prediction;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`prediction ${id} never reached ${status}`);
}

async function eventuallyStats(
  sim: RunningSimulator,
  check: (stats: ReturnType<RunningSimulator['stats']>) => boolean,
) {
  for (let i = 0; i < 500; i++) {
    const stats = sim.stats();
    if (check(stats)) return stats;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`stats never matched: ${JSON.stringify(sim.stats())}`);
}

describe('list', () => {
  it('lists newest first, 100 a page, following `next` full URLs through the client paginate()', async () => {
    const idle = await simulator({ startDelayMs: { min: 60_000, max: 60_000 } });
    const client = clientFor(idle);
    const ids: string[] = [];
    for (let i = 0; i < 205; i++) {
      ids.push((await client.predictions.create({ model: PRO, input: proInput({ seed: i }) })).id);
    }
    const first = await client.predictions.list();
    expect(first.results).toHaveLength(100);
    expect(first.previous).toBeNull();
    expect(first.next).toMatch(new RegExp(`^${idle.baseUrl}/predictions\\?cursor=`));
    expect(first.results[0]?.id).toBe(ids[204]);
    // Each result carries its input: what a worker matches to recover a prediction whose create response was lost.
    expect(first.results[0]?.input).toEqual(proInput({ seed: 204 }));

    const pages: string[][] = [];
    for await (const page of client.paginate(client.predictions.list)) pages.push(page.map((p) => p.id));
    expect(pages.map((page) => page.length)).toEqual([100, 100, 5]);
    expect(pages.flat()).toEqual([...ids].reverse());

    const second = (await (await fetch(String(first.next), { headers: authHeaders() })).json()) as {
      previous: string;
      results: Array<{ id: string }>;
    };
    const back = (await (await fetch(second.previous, { headers: authHeaders() })).json()) as {
      results: Array<{ id: string }>;
    };
    expect(back.results.map((p) => p.id)).toEqual(first.results.map((p) => p.id));
  });

  it('filters by created_after / created_before and keeps the filter in `next`', async () => {
    const idle = await simulator({ startDelayMs: { min: 60_000, max: 60_000 } });
    const client = clientFor(idle);
    const before = await client.predictions.create({ model: PRO, input: proInput({ seed: 1 }) });
    await new Promise((resolve) => setTimeout(resolve, 30));
    const since = new Date().toISOString();
    await new Promise((resolve) => setTimeout(resolve, 5));
    const after = await client.predictions.create({ model: DEV, input: proInput({ seed: 2 }) });

    const list = async (query: string) =>
      (await (await fetch(`${idle.baseUrl}/predictions?${query}`, { headers: authHeaders() })).json()) as {
        results: Array<{ id: string }>;
      };
    expect((await list(`created_after=${since}`)).results.map((p) => p.id)).toEqual([after.id]);
    expect((await list(`created_before=${since}`)).results.map((p) => p.id)).toEqual([before.id]);
    const bad = await fetch(`${idle.baseUrl}/predictions?created_after=yesterday`, { headers: authHeaders() });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { detail: string }).detail).toContain('created_after');

    for (let i = 0; i < 120; i++) await client.predictions.create({ model: PRO, input: proInput({ seed: 100 + i }) });
    const filtered = (await (
      await fetch(`${idle.baseUrl}/predictions?created_after=${encodeURIComponent(since)}`, { headers: authHeaders() })
    ).json()) as { next: string; results: unknown[] };
    expect(filtered.results).toHaveLength(100);
    expect(new URL(filtered.next).searchParams.get('created_after')).toBe(since);
    const rest = (await (await fetch(filtered.next, { headers: authHeaders() })).json()) as { results: unknown[] };
    expect(rest.results).toHaveLength(21);
  });
});

describe('Prefer: wait', () => {
  it('answers at once with `starting` when no Prefer header is sent', async () => {
    const created = await clientFor(fast).predictions.create({ model: PRO, input: proInput() });
    expect(created.status).toBe('starting');
  });

  it('holds the create until the prediction ends', async () => {
    const created = await clientFor(fast).predictions.create({ model: PRO, input: proInput(), wait: 30 });
    expect(created.status).toBe('succeeded');
    expect(created.output).toMatch(/output-0\.jpg$/);
  });

  it('comes back `starting` when the wait ends before a GPU picked it up', async () => {
    const queued = await simulator({ startDelayMs: { min: 60_000, max: 60_000 } });
    const created = await clientFor(queued).predictions.create({ model: PRO, input: proInput(), wait: 1 });
    expect(created.status).toBe('starting');
  });

  it('comes back `processing` when the wait ends while it runs (Prefer: wait=1)', async () => {
    const busy = await simulator({ startDelayMs: { min: 0, max: 10 }, latencyMs: { min: 60_000, max: 60_000 } });
    const created = await clientFor(busy).predictions.create({ model: PRO, input: proInput(), wait: 1 });
    expect(created.status).toBe('processing');
    expect(created.logs).toContain('Using seed: 7');
  });

  it('caps wait above 60 s and refuses a malformed value', async () => {
    const capped = await fetch(`${fast.baseUrl}/models/${PRO}/predictions`, {
      method: 'POST',
      headers: { ...authHeaders(), Prefer: 'wait=600' },
      body: JSON.stringify({ input: proInput() }),
    });
    expect(capped.status).toBe(201);
    expect(((await capped.json()) as { status: string }).status).toBe('succeeded');
    const malformed = await fetch(`${fast.baseUrl}/models/${PRO}/predictions`, {
      method: 'POST',
      headers: { ...authHeaders(), Prefer: 'wait=soon' },
      body: JSON.stringify({ input: proInput() }),
    });
    expect(malformed.status).toBe(400);
    expect(((await malformed.json()) as { detail: string }).detail).toContain('wait');
  });
});

describe('Cancel-After', () => {
  async function createWith(sim: RunningSimulator, cancelAfter: string): Promise<Response> {
    return fetch(`${sim.baseUrl}/models/${PRO}/predictions`, {
      method: 'POST',
      headers: { ...authHeaders(), 'Cancel-After': cancelAfter },
      body: JSON.stringify({ input: proInput() }),
    });
  }

  it('aborts a prediction that has not started by its deadline (not billed)', async () => {
    const queued = await simulator({ startDelayMs: { min: 60_000, max: 60_000 } });
    const response = await createWith(queued, '200ms');
    expect(response.status).toBe(201);
    const created = (await response.json()) as { id: string; deadline: string; created_at: string };
    expect(Date.parse(created.deadline) - Date.parse(created.created_at)).toBe(200);
    const done = await waitForEnd(clientFor(queued), created.id);
    expect(done.status).toBe('aborted');
    expect(done.started_at).toBeUndefined();
    expect(queued.stats()).toMatchObject({ billedPredictions: 0, canceledWhileRunning: 0 });
  });

  it('cancels a running prediction at its deadline and records it as canceled while running', async () => {
    const busy = await simulator({ startDelayMs: { min: 0, max: 0 }, latencyMs: { min: 60_000, max: 60_000 } });
    const created = (await (await createWith(busy, '0.3s')).json()) as { id: string };
    const done = await waitForEnd(clientFor(busy), created.id);
    expect(done.status).toBe('canceled');
    expect(done.started_at).toBeDefined();
    expect(busy.stats().canceledWhileRunning).toBe(1);
  });

  it('accepts Go-style durations and refuses others with 400 naming the header', async () => {
    for (const good of ['30s', '1m', '1h30m', '500ms']) expect((await createWith(fast, good)).status).toBe(201);
    for (const bad of ['soon', '-5s', '0s', '1x']) {
      const response = await createWith(fast, bad);
      expect(response.status).toBe(400);
      expect(((await response.json()) as { detail: string }).detail).toContain('Cancel-After');
    }
  });
});
