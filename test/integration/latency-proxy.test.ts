/**
 * The test proxy itself (test/helpers/latency-proxy.ts), with a real HTTP server behind it: it forwards, holds requests
 * for their delay, and `setDown` makes it behave like a dead server — connections reset, requests in flight cut (held
 * ones never reach the server), keep-alive sockets of a client's pool included — until it is up again.
 */
import { once } from 'node:events';
import { Agent, createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { type LatencyProxy, startLatencyProxy } from '../helpers/latency-proxy.js';
import { eventually } from '../helpers/stack.js';

interface Backend {
  readonly url: string;
  /** Requests the backend received, by path, and whether each was closed before it answered. */
  readonly seen: Array<{ path: string; closedEarly: boolean }>;
  /** Answers every request held on `/hang` (they wait until this is called). */
  releaseHanging(): void;
  close(): Promise<void>;
}

async function startBackend(): Promise<Backend> {
  const seen: Backend['seen'] = [];
  const hanging: Array<() => void> = [];
  const server: Server = createServer((request: IncomingMessage, response) => {
    const entry = { path: request.url ?? '/', closedEarly: false };
    seen.push(entry);
    response.once('close', () => {
      if (!response.writableFinished) entry.closedEarly = true;
    });
    const answer = () => {
      response.writeHead(200, { 'content-type': 'text/plain' });
      response.end(`hello from ${entry.path}`);
    };
    if (entry.path === '/hang') hanging.push(answer);
    else answer();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    releaseHanging: () => {
      for (const answer of hanging.splice(0)) answer();
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

type Outcome = { readonly status: number; readonly body: string } | { readonly error: string };

/** A GET through node:http, so a failure keeps its code (ECONNRESET) instead of fetch's "fetch failed". */
function get(url: string, agent?: Agent): Promise<Outcome> {
  return new Promise((resolve) => {
    const request = httpRequest(url, { agent: agent ?? false }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        body += chunk;
      });
      response.once('end', () => resolve({ status: response.statusCode ?? 0, body }));
      response.once('error', (error: NodeJS.ErrnoException) => resolve({ error: error.code ?? error.message }));
    });
    request.once('error', (error: NodeJS.ErrnoException) => resolve({ error: error.code ?? error.message }));
    request.end();
  });
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setUp(): Promise<{ backend: Backend; proxy: LatencyProxy }> {
  const backend = await startBackend();
  cleanups.push(() => backend.close());
  const proxy = await startLatencyProxy({ target: backend.url });
  cleanups.push(() => proxy.close());
  return { backend, proxy };
}

/** A dead server's answer: the connection is reset, or closed before any response. */
const deadServer = { error: expect.stringMatching(/^(ECONNRESET|socket hang up)$/) };

describe('latency proxy', () => {
  it('forwards requests, holding each for its delay', async () => {
    const { backend, proxy } = await setUp();
    proxy.setDelay((request) => (request.path === '/slow' ? 150 : 0));
    expect(await get(`${proxy.url}/fast`)).toEqual({ status: 200, body: 'hello from /fast' });
    const startedAt = Date.now();
    expect(await get(`${proxy.url}/slow`)).toEqual({ status: 200, body: 'hello from /slow' });
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(140);
    expect(backend.seen.map((entry) => entry.path)).toEqual(['/fast', '/slow']);
    expect(proxy.requests().map((request) => [request.path, request.delayMs, request.state, request.status])).toEqual([
      ['/fast', 0, 'completed', 200],
      ['/slow', 150, 'completed', 200],
    ]);
    expect(proxy.isDown()).toBe(false);
  });

  it('setDown(true) resets new connections and cuts requests in flight; setDown(false) resumes forwarding', async () => {
    const { backend, proxy } = await setUp();
    proxy.setDelay((request) => (request.path === '/held' ? 60_000 : 0));
    // A client pool with a keep-alive socket to the proxy, idle when the outage begins.
    const agent = new Agent({ keepAlive: true, maxSockets: 4 });
    cleanups.push(async () => agent.destroy());
    expect(await get(`${proxy.url}/warm`, agent)).toEqual({ status: 200, body: 'hello from /warm' });
    expect(Object.values(agent.freeSockets).flat()).toHaveLength(1);

    // One request forwarded and waiting for the backend's answer, one held by the proxy.
    const forwarded = get(`${proxy.url}/hang`);
    const held = get(`${proxy.url}/held`);
    await eventually(
      () =>
        backend.seen.some((entry) => entry.path === '/hang') &&
        proxy.inFlight().some((request) => request.path === '/held' && request.state === 'held'),
      5_000,
    );

    proxy.setDown(true);
    expect(proxy.isDown()).toBe(true);
    expect(await forwarded).toEqual(deadServer);
    expect(await held).toEqual(deadServer);
    expect(proxy.inFlight()).toEqual([]);
    const states = new Map(proxy.requests().map((request) => [request.path, request.state]));
    expect(states.get('/hang')).toBe('dropped');
    expect(states.get('/held')).toBe('dropped');
    // The forwarded request was aborted at the backend too; the held one never reached it.
    await eventually(() => backend.seen.find((entry) => entry.path === '/hang')?.closedEarly === true, 5_000);
    expect(backend.seen.map((entry) => entry.path)).not.toContain('/held');

    // While down: new connections, and the pool's keep-alive socket, get no answer.
    const droppedBefore = proxy.droppedConnections();
    expect(await get(`${proxy.url}/during`)).toEqual({ error: 'ECONNRESET' });
    expect(await get(`${proxy.url}/pooled`, agent)).toEqual(deadServer);
    expect(proxy.droppedConnections()).toBeGreaterThan(droppedBefore);
    expect(backend.seen.map((entry) => entry.path)).toEqual(['/warm', '/hang']);
    expect(proxy.requests().map((request) => request.path)).not.toContain('/during');

    proxy.setDown(false);
    expect(proxy.isDown()).toBe(false);
    expect(await get(`${proxy.url}/after`)).toEqual({ status: 200, body: 'hello from /after' });
    expect(await get(`${proxy.url}/after-pooled`, agent)).toEqual({ status: 200, body: 'hello from /after-pooled' });
    expect(backend.seen.map((entry) => entry.path)).toEqual(['/warm', '/hang', '/after', '/after-pooled']);
    backend.releaseHanging();
  });
});
