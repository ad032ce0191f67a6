/**
 * GET /metrics (Prometheus text format) and GET /healthz for the dashboard. `mountMetricsRoutes` adds both to the
 * dashboard's Hono app; whatever auth the app puts in front of its routes applies to them too.
 *
 * A scrape never fails because Redis does: each reads one snapshot (snapshot.ts) bounded by a timeout, and when Redis
 * cannot be read it still answers 200 with `depthq_redis_up 0` and no other depthq series. /healthz answers 503 then.
 * Every metric, its labels and its source: docs/metrics.md.
 */
import type { Queue } from 'bullmq';
import type { Env, Hono } from 'hono';
import type { Redis } from 'ioredis';
import type { Config } from '../config/index.js';
import type { RunLedger } from '../ledger/run-ledger.js';
import type { RenderJobData } from '../queue/render-queue.js';
import { DEFAULT_TELEMETRY_INTERVAL_MS } from '../queue/telemetry-publisher.js';
import { createMetricsRegistry } from './metrics/registry.js';
import { type MetricsSnapshot, readMetricsSnapshot } from './metrics/snapshot.js';

export interface MetricsDeps {
  readonly config: Config;
  readonly redis: Redis;
  readonly ledger: RunLedger;
  readonly queue: Queue<RenderJobData>;
}

export interface MetricsRouteOptions {
  /**
   * How long a scrape or a health check waits for Redis before calling it down. Below Prometheus's default 10 s scrape
   * timeout, so a slow Redis gives a scrape that says so rather than a failed scrape. @defaultValue 5000
   */
  readonly redisTimeoutMs?: number;
  readonly now?: () => number;
  /** Why a scrape or a health check found Redis unreadable (the dashboard logs it; the answers never say). */
  readonly onRedisError?: (error: unknown, during: 'metrics' | 'healthz') => void;
}

export const DEFAULT_REDIS_TIMEOUT_MS = 5_000;

/** A heartbeat older than this many publish intervals means the worker is gone (or cannot reach Redis). */
const ALIVE_INTERVALS = 5;
/** Heartbeats older than this are dropped: a restarted fleet does not leave its old ids in /metrics for ever. */
const FORGET_WORKERS_AFTER_MS = 3_600_000;

class RedisNotReadyError extends Error {
  override readonly name = 'RedisNotReadyError';
}

function withTimeout<T>(work: () => Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
  });
  const running = work();
  // A read that loses the race may still fail later: that must not become an unhandled rejection.
  running.catch(() => undefined);
  return Promise.race([running, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Waits (bounded) for a connection that is still connecting, and calls Redis down at once when the connection is
 * between reconnection attempts or closed. Nothing is sent before the connection is ready: a connection that is not
 * ready would queue the commands until Redis returns (long-running processes' connections retry for ever), and every
 * scrape during an outage would add to that queue.
 */
async function untilReady(redis: Redis, timeoutMs: number): Promise<void> {
  if (redis.status === 'ready') return;
  if (redis.status !== 'wait' && redis.status !== 'connecting' && redis.status !== 'connect') {
    throw new RedisNotReadyError(`the Redis connection is ${redis.status}`);
  }
  if (redis.status === 'wait') redis.connect().catch(() => undefined);
  let onReady: (() => void) | undefined;
  let onClose: (() => void) | undefined;
  try {
    await withTimeout(
      () =>
        new Promise<void>((resolve, reject) => {
          onReady = resolve;
          onClose = () => reject(new RedisNotReadyError('the Redis connection closed while connecting'));
          redis.once('ready', onReady);
          redis.once('close', onClose);
        }),
      timeoutMs,
      'connecting to Redis',
    );
  } finally {
    if (onReady) redis.off('ready', onReady);
    if (onClose) redis.off('close', onClose);
  }
}

/** Generic in the app's `Env`, so an app with its own variables (the signed-in user, a CSRF token) can mount it. */
export function mountMetricsRoutes<E extends Env>(
  app: Hono<E>,
  deps: MetricsDeps,
  options: MetricsRouteOptions = {},
): void {
  const timeoutMs = options.redisTimeoutMs ?? DEFAULT_REDIS_TIMEOUT_MS;
  const now = options.now ?? Date.now;
  const intervalMs = deps.config.worker.telemetryIntervalMs ?? DEFAULT_TELEMETRY_INTERVAL_MS;
  let current: MetricsSnapshot | undefined;
  const { registry, redisUp } = createMetricsRegistry(() => current, {
    aliveWithinMs: Math.max(10_000, ALIVE_INTERVALS * intervalMs),
  });

  async function scrape(): Promise<string> {
    try {
      await untilReady(deps.redis, timeoutMs);
      current = await withTimeout(
        () =>
          readMetricsSnapshot(
            { redis: deps.redis, queue: deps.queue, prefix: deps.ledger.prefix },
            { runLimit: deps.config.metrics.runLimit, forgetWorkersAfterMs: FORGET_WORKERS_AFTER_MS, now },
          ),
        timeoutMs,
        'reading the metrics from Redis',
      );
      redisUp.set(1);
    } catch (error) {
      options.onRedisError?.(error, 'metrics');
      current = undefined;
      redisUp.set(0);
    }
    return registry.metrics();
  }

  // One scrape at a time: the registry renders the snapshot of the scrape in progress.
  let previous: Promise<unknown> = Promise.resolve();
  app.get('/metrics', async (c) => {
    const text = previous.then(scrape);
    previous = text.catch(() => undefined);
    return c.body(await text, 200, { 'Content-Type': registry.contentType, 'Cache-Control': 'no-store' });
  });

  app.get('/healthz', async (c) => {
    try {
      await untilReady(deps.redis, timeoutMs);
      await withTimeout(() => deps.redis.ping(), timeoutMs, 'PING');
      return c.json({ status: 'ok', redis: 'up' }, 200, { 'Cache-Control': 'no-store' });
    } catch (error) {
      options.onRedisError?.(error, 'healthz');
      // No error text: it could name hosts; `depthq_redis_up` and the dashboard's logs say more.
      return c.json({ status: 'unavailable', redis: 'down' }, 503, { 'Cache-Control': 'no-store' });
    }
  });
}
