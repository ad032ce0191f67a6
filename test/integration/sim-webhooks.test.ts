/**
 * Webhooks: signed the Standard Webhooks way (checked with the replicate client's own `validateWebhook`), filtered by
 * `webhook_events_filter`, retried with the same `webhook-id` when the receiver answers non-2xx.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { validateWebhook } from 'replicate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningSimulator, signWebhook, startSimulator } from '../../src/sim/index.js';
import {
  clientFor,
  eventually,
  type FixtureServer,
  makePng,
  startFixtureServer,
  waitForEnd,
} from '../helpers/sim-fixtures.js';

const PRO = 'black-forest-labs/flux-depth-pro';

interface Delivery {
  readonly path: string;
  readonly id: string;
  readonly timestamp: string;
  readonly signature: string;
  readonly body: string;
  readonly prediction: { id: string; status: string; output: unknown; logs: string };
}

let images: FixtureServer;
let receiver: FixtureServer;
let sim: RunningSimulator;
const deliveries: Delivery[] = [];
/** Per path: how many more deliveries to refuse with 500 before accepting. */
const refusals = new Map<string, number>();

beforeAll(async () => {
  images = await startFixtureServer();
  images.set('/room.png', { contentType: 'image/png', body: await makePng() });
  receiver = await startFixtureServer();
  receiver.fallback = (request: IncomingMessage, body: string, response: ServerResponse) => {
    const path = new URL(request.url ?? '/', 'http://receiver.invalid').pathname;
    deliveries.push({
      path,
      id: String(request.headers['webhook-id']),
      timestamp: String(request.headers['webhook-timestamp']),
      signature: String(request.headers['webhook-signature']),
      body,
      prediction: JSON.parse(body) as Delivery['prediction'],
    });
    const refuse = refusals.get(path) ?? 0;
    if (refuse > 0) refusals.set(path, refuse - 1);
    response.writeHead(refuse > 0 ? 500 : 204);
    response.end();
  };
  sim = await startSimulator({
    startDelayMs: { min: 0, max: 10 },
    latencyMs: { min: 60, max: 90 },
    outputMaxSide: 64,
    webhookRetry: { attempts: 4, initialDelayMs: 20 },
  });
});

afterAll(async () => {
  await sim.close();
  await receiver.close();
  await images.close();
});

function input(): Record<string, unknown> {
  return { prompt: 'a loft', control_image: `${images.url}/room.png`, seed: 5 };
}

function deliveriesTo(path: string): Delivery[] {
  return deliveries.filter((delivery) => delivery.path === path);
}

describe('webhooks', () => {
  it('sends start, logs, output and completed by default, each signed so validateWebhook accepts it', async () => {
    const client = clientFor(sim);
    const created = await client.predictions.create({ model: PRO, input: input(), webhook: `${receiver.url}/all` });
    const done = await waitForEnd(client, created.id);
    const received = await eventually(() => {
      const all = deliveriesTo('/all');
      // `output` and `completed` both carry the succeeded prediction; `completed` is the last one sent.
      return all.filter((delivery) => delivery.prediction.status === 'succeeded').length >= 2 ? all : undefined;
    });
    const secret = (await client.webhooks.default.secret.get()).key;
    for (const delivery of received) {
      expect(delivery.signature).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
      const valid = await validateWebhook({
        id: delivery.id,
        timestamp: delivery.timestamp,
        signature: delivery.signature,
        body: delivery.body,
        secret,
      });
      expect(valid).toBe(true);
      expect(Math.abs(Number(delivery.timestamp) - Date.now() / 1000)).toBeLessThan(120);
      expect(delivery.prediction.id).toBe(created.id);
    }
    // Tampering breaks the signature.
    const first = received[0] as Delivery;
    expect(await validateWebhook({ ...first, body: first.body.replace('a loft', 'a barn'), secret })).toBe(false);

    expect(received[0]?.prediction.status).toBe('processing');
    expect(received[0]?.prediction.logs).toContain('Using seed: 5');
    const last = received[received.length - 1];
    expect(last?.prediction).toMatchObject({ status: 'succeeded', output: done.output });
    expect(new Set(received.map((delivery) => delivery.id)).size).toBe(received.length);
    expect(received.filter((delivery) => delivery.prediction.status === 'succeeded').length).toBe(2); // output, completed
  });

  it('sends only the events named in webhook_events_filter', async () => {
    const client = clientFor(sim);
    const created = await client.predictions.create({
      model: PRO,
      input: input(),
      webhook: `${receiver.url}/completed-only`,
      webhook_events_filter: ['completed'],
    });
    expect(created).toMatchObject({ webhook_events_filter: ['completed'] });
    await waitForEnd(client, created.id);
    const received = await eventually(() =>
      deliveriesTo('/completed-only').length > 0 ? deliveriesTo('/completed-only') : undefined,
    );
    // Give stray events a moment to show up if they were (wrongly) sent.
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(deliveriesTo('/completed-only')).toHaveLength(1);
    expect(received[0]?.prediction.status).toBe('succeeded');
  });

  it('retries a refused delivery with backoff, keeping its webhook-id and re-signing each attempt', async () => {
    refusals.set('/flaky', 2);
    const client = clientFor(sim);
    const created = await client.predictions.create({
      model: PRO,
      input: input(),
      webhook: `${receiver.url}/flaky`,
      webhook_events_filter: ['completed'],
    });
    await waitForEnd(client, created.id);
    const attempts = await eventually(() => (deliveriesTo('/flaky').length >= 3 ? deliveriesTo('/flaky') : undefined));
    expect(new Set(attempts.map((attempt) => attempt.id)).size).toBe(1);
    for (const attempt of attempts) {
      expect(attempt.signature).toBe(
        signWebhook(sim.webhookSecret, attempt.id, Number(attempt.timestamp), attempt.body),
      );
    }
    expect(sim.stats().webhooks.delivered).toBeGreaterThan(0);
  });

  it('gives up after the configured attempts', async () => {
    refusals.set('/down', 100);
    const before = sim.stats().webhooks.failed;
    const client = clientFor(sim);
    const created = await client.predictions.create({
      model: PRO,
      input: input(),
      webhook: `${receiver.url}/down`,
      webhook_events_filter: ['completed'],
    });
    await waitForEnd(client, created.id);
    await eventually(() => (sim.stats().webhooks.failed > before ? true : undefined));
    expect(deliveriesTo('/down')).toHaveLength(4);
  });

  it('refuses a webhook that is not an http(s) URL and an unknown event name with 400', async () => {
    for (const body of [
      { input: input(), webhook: 'ftp://example.com/hook' },
      { input: input(), webhook: `${receiver.url}/x`, webhook_events_filter: ['finished'] },
    ]) {
      const response = await fetch(`${sim.baseUrl}/models/${PRO}/predictions`, {
        method: 'POST',
        headers: { Authorization: 'Bearer t', 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
      expect(response.status).toBe(400);
    }
  });
});
