/**
 * The Replicate provider against the simulator, through the official client and depthq's own transport: the behaviours
 * that keep "one paid prediction per image" true when the network misbehaves.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { fluxDepthPro, type ModelInput, validateModelInput } from '../../src/core/models.js';
import { ProviderHttpError, ProviderNetworkError } from '../../src/providers/http-errors.js';
import { CreateOutcomeUnknownError } from '../../src/providers/provider.js';
import { AwaitDeadlineError, ReplicateProvider } from '../../src/providers/replicate.js';
import type { RetryNotice } from '../../src/providers/transport.js';
import { type RunningSimulator, startSimulator } from '../../src/sim/index.js';
import { type FixtureServer, makePng, startFixtureServer } from '../helpers/sim-fixtures.js';

let simulator: RunningSimulator;
let images: FixtureServer;

beforeAll(async () => {
  images = await startFixtureServer();
  images.set('/control.png', { contentType: 'image/png', body: await makePng(96, 64) });
  simulator = await startSimulator({
    startDelayMs: { min: 20, max: 40 },
    latencyMs: { min: 150, max: 250 },
    outputMaxSide: 128,
  });
});

afterAll(async () => {
  await simulator?.close();
  await images?.close();
});

afterEach(() => {
  simulator.setFaults({ failureRate: 0, flaggedRate: 0, serverErrorRate: 0, connectionResetRate: 0 });
});

let inputCounter = 0;
/** A complete input no other test sends, so reconciliation can only ever find this test's prediction. */
function uniqueInput(overrides: Record<string, unknown> = {}): ModelInput {
  inputCounter += 1;
  const result = validateModelInput(fluxDepthPro, {
    prompt: `provider test ${inputCounter} ${Date.now()}`,
    control_image: `${images.url}/control.png`,
    seed: 1000 + inputCounter,
    steps: 20,
    output_format: 'jpg',
    ...overrides,
  });
  if (!result.ok) throw new Error(`test input invalid: ${JSON.stringify(result.invalidFields)}`);
  return result.input;
}

interface ProviderOptionsForTest {
  readonly fetch?: typeof fetch;
  readonly onRetry?: (notice: RetryNotice) => void;
}

function providerFor(options: ProviderOptionsForTest = {}): ReplicateProvider {
  return new ReplicateProvider({
    apiToken: 'test-token',
    baseUrl: simulator.baseUrl,
    poll: { initialMs: 50, maxMs: 200 },
    transport: {
      policy: { baseDelayMs: 20, maxDelayMs: 200, maxAttempts: 4 },
      ...(options.fetch ? { fetch: options.fetch } : {}),
      ...(options.onRetry ? { onRetry: options.onRetry } : {}),
    },
  });
}

function isCreate(input: string | URL | Request, init?: RequestInit): boolean {
  const url = input instanceof Request ? input.url : input.toString();
  return (init?.method ?? 'GET') === 'POST' && url.endsWith('/predictions');
}

/** A real fetch whose answer to the first create is lost after the server acted on it: the worst crash window. */
function losingFirstCreateResponse(): { fetch: typeof fetch; createsSent: () => number } {
  let creates = 0;
  const lossy: typeof fetch = async (input, init) => {
    if (!isCreate(input, init)) return fetch(input, init);
    creates += 1;
    const response = await fetch(input, init);
    if (creates > 1) return response;
    await response.arrayBuffer();
    throw new TypeError('fetch failed', { cause: Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }) });
  };
  return { fetch: lossy, createsSent: () => creates };
}

describe('ReplicateProvider', () => {
  it('creates with Prefer: wait and gets a finished prediction without polling', async () => {
    const provider = providerFor();
    const before = simulator.stats();
    const { prediction, adopted } = await provider.create({
      model: fluxDepthPro.id,
      input: uniqueInput(),
      waitSeconds: 10,
    });
    expect(adopted).toBe(false);
    expect(prediction.status).toBe('succeeded');
    expect(prediction.outputUrls).toHaveLength(1);
    expect(prediction.loggedSeed).toEqual(expect.any(Number));
    expect(simulator.stats().creates - before.creates).toBe(1);
  });

  it('polls an unfinished prediction with growing intervals until it ends', async () => {
    const provider = providerFor();
    const { prediction } = await provider.create({ model: fluxDepthPro.id, input: uniqueInput() });
    expect(['starting', 'processing']).toContain(prediction.status);
    const seen: string[] = [];
    const done = await provider.awaitTerminal(prediction, { onUpdate: (p) => void seen.push(p.status) });
    expect(done.status).toBe('succeeded');
    expect(done.id).toBe(prediction.id);
    expect(seen.at(-1)).toBe('succeeded');
  });

  it('adopts the prediction whose create response was lost instead of paying for a second one', async () => {
    const lossy = losingFirstCreateResponse();
    const provider = providerFor({ fetch: lossy.fetch });
    const input = uniqueInput();
    const before = simulator.stats();
    const { prediction, adopted } = await provider.create({ model: fluxDepthPro.id, input, waitSeconds: 10 });
    expect(adopted).toBe(true);
    expect(lossy.createsSent()).toBe(1);
    expect(prediction.input).toEqual(input);
    expect(simulator.stats().creates - before.creates).toBe(1);
    const done = await provider.awaitTerminal(prediction);
    expect(done.status).toBe('succeeded');
  });

  it('sends the create again only after a listing proved the first never arrived', async () => {
    let creates = 0;
    const refusedFirst: typeof fetch = async (input, init) => {
      if (isCreate(input, init) && ++creates === 1) {
        throw new TypeError('fetch failed', { cause: Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }) });
      }
      return fetch(input, init);
    };
    const provider = providerFor({ fetch: refusedFirst });
    const before = simulator.stats();
    const { prediction, adopted } = await provider.create({
      model: fluxDepthPro.id,
      input: uniqueInput(),
      waitSeconds: 10,
    });
    expect(adopted).toBe(false);
    expect(creates).toBe(2);
    expect(prediction.status).toBe('succeeded');
    expect(simulator.stats().creates - before.creates).toBe(1);
    expect(simulator.stats().lists - before.lists).toBeGreaterThanOrEqual(1);
  });

  it('never lets the client re-send a create: one network attempt, then the error', async () => {
    let createAttempts = 0;
    const alwaysRefused: typeof fetch = async (input, init) => {
      if (isCreate(input, init)) {
        createAttempts += 1;
        throw new TypeError('fetch failed', { cause: Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }) });
      }
      return fetch(input, init);
    };
    const provider = new ReplicateProvider({
      apiToken: 'test-token',
      baseUrl: simulator.baseUrl,
      maxCreateAttempts: 1,
      transport: { fetch: alwaysRefused, policy: { baseDelayMs: 10, maxDelayMs: 50 } },
    });
    const error = await provider.create({ model: fluxDepthPro.id, input: uniqueInput() }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProviderNetworkError);
    expect((error as ProviderNetworkError).code).toBe('ECONNREFUSED');
    // The replicate client calls fetch up to six times for one request; the transport answers its repeats itself.
    expect(createAttempts).toBe(1);
  });

  it('surfaces a 422 with Replicate’s invalid_fields at once, without retrying', async () => {
    const provider = providerFor();
    const before = simulator.stats();
    const input = { ...uniqueInput(), steps: 51 };
    const error = await provider.create({ model: fluxDepthPro.id, input }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProviderHttpError);
    const http = error as ProviderHttpError;
    expect(http.status).toBe(422);
    expect(http.body).toMatchObject({ invalid_fields: [{ type: 'number_lte', field: 'input.steps' }] });
    expect(http.message).toContain('input.steps');
    expect(simulator.stats().createRequests - before.createRequests).toBe(1);
  });

  it('surfaces a 429 on create for the queue to wait on, with the server’s retry_after', async () => {
    const provider = providerFor();
    simulator.throttleNext(1, 3);
    const error = await provider.create({ model: fluxDepthPro.id, input: uniqueInput() }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProviderHttpError);
    expect((error as ProviderHttpError).status).toBe(429);
    expect((error as ProviderHttpError).body).toMatchObject({ retry_after: 3 });
    expect((error as ProviderHttpError).retryAfterHeader).toBe('3');
  });

  it('retries a throttled GET no sooner than Retry-After', async () => {
    const notices: RetryNotice[] = [];
    const provider = providerFor({ onRetry: (notice) => notices.push(notice) });
    const { prediction } = await provider.create({ model: fluxDepthPro.id, input: uniqueInput(), waitSeconds: 10 });
    simulator.throttleNext(1, 1);
    const got = await provider.get(prediction.id);
    expect(got.id).toBe(prediction.id);
    expect(notices).toHaveLength(1);
    expect(notices[0]?.delayMs).toBeGreaterThanOrEqual(1000);
    expect(notices[0]?.method).toBe('GET');
  });

  it('retries GETs through 5xx answers and gives up after the policy’s attempts', async () => {
    const notices: RetryNotice[] = [];
    const provider = providerFor({ onRetry: (notice) => notices.push(notice) });
    const { prediction } = await provider.create({ model: fluxDepthPro.id, input: uniqueInput(), waitSeconds: 10 });
    simulator.setFaults({ serverErrorRate: 1 });
    const error = await provider.get(prediction.id).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProviderHttpError);
    expect((error as ProviderHttpError).status).toBeGreaterThanOrEqual(500);
    expect(notices).toHaveLength(3);
    simulator.setFaults({ serverErrorRate: 0 });
    expect((await provider.get(prediction.id)).id).toBe(prediction.id);
  });

  it('cancels a running prediction', async () => {
    const provider = providerFor();
    const { prediction } = await provider.create({ model: fluxDepthPro.id, input: uniqueInput() });
    const canceled = await provider.cancel(prediction.id);
    expect(canceled.status).toBe('canceled');
    expect((await provider.get(prediction.id)).status).toBe('canceled');
  });

  it('stops waiting at the deadline and says which prediction is still running', async () => {
    const provider = providerFor();
    const { prediction } = await provider.create({ model: fluxDepthPro.id, input: uniqueInput() });
    const error = await provider.awaitTerminal(prediction, { deadlineMs: Date.now() + 30 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AwaitDeadlineError);
    expect((error as AwaitDeadlineError).prediction.id).toBe(prediction.id);
    await provider.cancel(prediction.id);
  });

  it('lists predictions newest first across pages and finds one by its exact input', async () => {
    const provider = providerFor();
    const since = new Date(Date.now() - 1000);
    const input = uniqueInput();
    const { prediction } = await provider.create({ model: fluxDepthPro.id, input, waitSeconds: 10 });
    const found = await provider.findByInput(fluxDepthPro.id, input, since);
    expect(found?.id).toBe(prediction.id);
    expect(await provider.findByInput(fluxDepthPro.id, { ...input, seed: 7 }, since)).toBeUndefined();
    const listed: string[] = [];
    for await (const item of provider.listCreatedBetween(since, new Date(Date.now() + 1000)))
      listed.push(item.createdAt);
    expect(listed.length).toBeGreaterThanOrEqual(1);
    expect([...listed].sort().reverse()).toEqual(listed);
  });

  it('never says "nothing was created" after a send whose outcome is unknown, even when the list is throttled', async () => {
    let creates = 0;
    const lostThenThrottled: typeof fetch = async (input, init) => {
      const url = input instanceof Request ? input.url : input.toString();
      if (isCreate(input, init)) {
        creates += 1;
        const response = await fetch(input, init);
        await response.arrayBuffer();
        throw new TypeError('fetch failed', { cause: Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' }) });
      }
      if (url.includes('/predictions?') || url.endsWith('/predictions')) {
        return new Response(JSON.stringify({ detail: 'Request was throttled.', retry_after: 1 }), {
          status: 429,
          headers: { 'Content-Type': 'application/json', 'Retry-After': '1' },
        });
      }
      return fetch(input, init);
    };
    const provider = new ReplicateProvider({
      apiToken: 'test-token',
      baseUrl: simulator.baseUrl,
      transport: { fetch: lostThenThrottled, policy: { baseDelayMs: 5, maxDelayMs: 10, maxAttempts: 1 } },
    });
    const error = await provider
      .create({ model: fluxDepthPro.id, input: uniqueInput(), waitSeconds: 5 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CreateOutcomeUnknownError);
    const unknown = error as CreateOutcomeUnknownError;
    expect(unknown.nothingCreated).toBe(false);
    // Classified by the last answer: the queue still honours the throttle.
    expect(unknown.facts).toMatchObject({ httpStatus: 429 });
    expect(creates).toBe(1);
  });

  it('asks the caller before every re-send, and sends nothing more when the caller refuses', async () => {
    let creates = 0;
    const refused: typeof fetch = async (input, init) => {
      if (isCreate(input, init)) {
        creates += 1;
        throw new TypeError('fetch failed', { cause: Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }) });
      }
      return fetch(input, init);
    };
    const provider = providerFor({ fetch: refused });
    const asked: number[] = [];
    const lockLost = new Error('lock lost');
    const error = await provider
      .create({
        model: fluxDepthPro.id,
        input: uniqueInput(),
        beforeResend: async (send) => {
          asked.push(send);
          throw lockLost;
        },
      })
      .catch((e: unknown) => e);
    expect(error).toBe(lockLost);
    expect(asked).toEqual([2]);
    expect(creates).toBe(1);
  });

  it("finds only a prediction the caller accepts: two jobs' identical inputs are told apart by their owners", async () => {
    const provider = providerFor();
    const since = new Date(Date.now() - 1000);
    const input = uniqueInput();
    const first = await provider.create({ model: fluxDepthPro.id, input, waitSeconds: 10 });
    const second = await provider.create({ model: fluxDepthPro.id, input, waitSeconds: 10 });
    const owned = new Set([second.prediction.id]);
    const free = async (prediction: { id: string }) => !owned.has(prediction.id);
    expect((await provider.findByInput(fluxDepthPro.id, input, since))?.id).toBe(second.prediction.id);
    expect((await provider.findByInput(fluxDepthPro.id, input, since, undefined, free))?.id).toBe(first.prediction.id);
    owned.add(first.prediction.id);
    expect(await provider.findByInput(fluxDepthPro.id, input, since, undefined, free)).toBeUndefined();
  });

  it('stops listing once past the window and skips predictions it cannot read', async () => {
    const provider = providerFor();
    const input = uniqueInput();
    const { prediction } = await provider.create({ model: fluxDepthPro.id, input, waitSeconds: 10 });
    const createdMs = Date.parse(prediction.createdAt);
    const pagesAsked: string[] = [];
    const foreign = { id: 'foreign', status: 'queued-somewhere', created_at: prediction.createdAt, input: {} };
    // As Replicate lists it: the parts of its JSON a lookup reads.
    const listed = { id: prediction.id, status: prediction.status, created_at: prediction.createdAt, input };
    const old = { ...listed, id: 'old', created_at: new Date(createdMs - 3_600_000).toISOString() };
    const serving: typeof fetch = async (request, init) => {
      const url = request instanceof Request ? request.url : request.toString();
      if ((init?.method ?? 'GET') === 'GET' && new URL(url).pathname.endsWith('/predictions')) {
        pagesAsked.push(url);
        // A server that ignores the filters: this page reaches an hour back, and says there are more.
        const body = { results: [foreign, listed, old], next: `${simulator.baseUrl}/predictions?cursor=more` };
        return new Response(JSON.stringify(body), { status: 200, headers: { 'Content-Type': 'application/json' } });
      }
      return fetch(request, init);
    };
    const lister = providerFor({ fetch: serving });
    const since = new Date(createdMs - 60_000);
    const found = await lister.findByInput(fluxDepthPro.id, input, since);
    expect(found?.id).toBe(prediction.id);
    const missing = await lister.findByInput(fluxDepthPro.id, { ...input, seed: 1 }, since);
    expect(missing).toBeUndefined();
    // One page per lookup: the second stopped at the prediction older than the window instead of following `next`.
    expect(pagesAsked).toHaveLength(2);
  });

  it('sends Cancel-After so a prediction that has not started by then is aborted', async () => {
    const slow = await startSimulator({ startDelayMs: { min: 3000, max: 3000 }, latencyMs: { min: 10, max: 10 } });
    try {
      const provider = new ReplicateProvider({
        apiToken: 't',
        baseUrl: slow.baseUrl,
        poll: { initialMs: 100, maxMs: 200 },
      });
      const { prediction } = await provider.create({
        model: fluxDepthPro.id,
        input: uniqueInput(),
        cancelAfterMs: 1000,
      });
      const done = await provider.awaitTerminal(prediction);
      expect(done.status).toBe('aborted');
      expect(slow.stats().billedImages).toBe(0);
    } finally {
      await slow.close();
    }
  });
});
