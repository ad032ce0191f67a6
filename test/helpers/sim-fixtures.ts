/**
 * Shared pieces of the simulator's integration tests: a small HTTP server that serves control images (and whatever
 * else a test needs it to answer), images made with sharp, a replicate client pointed at a simulator, and a poller.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Prediction } from 'replicate';
import Replicate from 'replicate';
import sharp from 'sharp';
import type { RunningSimulator } from '../../src/sim/index.js';

export interface FixtureResponse {
  readonly status?: number;
  readonly contentType?: string;
  readonly body: Buffer | string;
}

export interface FixtureServer {
  readonly url: string;
  /** Answers GET `path` (query strings ignored: a re-presigned URL reaches the same object). */
  set(path: string, response: FixtureResponse): void;
  /** Every request seen, in order. */
  readonly requests: Array<{ method: string; path: string; headers: IncomingMessage['headers']; body: string }>;
  /** Replaces the handler for everything not `set`. */
  fallback?: (request: IncomingMessage, body: string, response: ServerResponse) => void;
  close(): Promise<void>;
}

export async function startFixtureServer(): Promise<FixtureServer> {
  const routes = new Map<string, FixtureResponse>();
  const requests: FixtureServer['requests'] = [];
  const fixture: FixtureServer = {
    url: '',
    set: (path, response) => routes.set(path, response),
    requests,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server = createServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const path = new URL(request.url ?? '/', 'http://fixture.invalid').pathname;
    requests.push({ method: request.method ?? 'GET', path, headers: request.headers, body });
    const route = routes.get(path);
    if (route) {
      const bytes = typeof route.body === 'string' ? Buffer.from(route.body) : route.body;
      response.writeHead(route.status ?? 200, {
        'Content-Type': route.contentType ?? 'application/octet-stream',
        'Content-Length': bytes.length,
      });
      response.end(bytes);
      return;
    }
    if (fixture.fallback) {
      fixture.fallback(request, body, response);
      return;
    }
    response.writeHead(404, { 'Content-Type': 'text/plain' });
    response.end('not found');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  Object.assign(fixture, { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
  return fixture;
}

/** A small PNG with a gradient and a square: structure for the renderer to keep, different per `variant`. */
export async function makePng(width = 64, height = 48, variant = 0): Promise<Buffer> {
  const pixels = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const inSquare = x > width / 4 && x < (3 * width) / 4 && y > height / 4 && y < (3 * height) / 4;
      const value = inSquare ? 230 - variant * 10 : Math.round((x / width) * 200) + variant;
      pixels.fill(value % 256, (y * width + x) * 3, (y * width + x) * 3 + 3);
    }
  }
  return sharp(pixels, { raw: { width, height, channels: 3 } })
    .png()
    .toBuffer();
}

export function clientFor(simulator: Pick<RunningSimulator, 'baseUrl'>, auth = 'test-token'): Replicate {
  return new Replicate({ auth, baseUrl: simulator.baseUrl, useFileOutput: false });
}

export const terminal = new Set(['succeeded', 'failed', 'canceled', 'aborted']);

/** Polls through the client until the prediction ends; generous timeout, no speed assertion. */
export async function waitForEnd(client: Replicate, id: string, timeoutMs = 30_000): Promise<Prediction> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const prediction = await client.predictions.get(id);
    if (terminal.has(prediction.status)) return prediction;
    if (Date.now() > deadline) throw new Error(`prediction ${id} still ${prediction.status} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 40));
  }
}

/** Polls `check` until it returns a value other than undefined. */
export async function eventually<T>(
  check: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

export interface ApiErrorLike {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

/**
 * The replicate client throws an ApiError whose `response` body it has already read; the body survives only in the
 * message ("Request to … failed with status 422 Unprocessable Entity: {…}."). This recovers both.
 */
export async function apiErrorOf(promise: Promise<unknown>): Promise<ApiErrorLike> {
  try {
    await promise;
  } catch (error) {
    if (!(error instanceof Error) || error.name !== 'ApiError' || !('response' in error)) throw error;
    const response = error.response as Response;
    const json = /failed with status \d+[^:]*: (\{.*\})\.$/s.exec(error.message)?.[1];
    return { status: response.status, body: json ? (JSON.parse(json) as Record<string, unknown>) : {} };
  }
  throw new Error('expected the call to fail with an ApiError');
}

export function authHeaders(token = 'test-token'): Record<string, string> {
  return { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' };
}
