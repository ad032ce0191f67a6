/**
 * The queue-wide 429 wait against a real redis-server and BullMQ: BullMQ's `rateLimit(ms)` replaces a longer wait in
 * force (the fact `src/queue/rate-limit.ts` exists for), and `holdQueueRateLimit` keeps the longer one. What the
 * workers see is read through BullMQ's own `getRateLimitTtl(max)`, the same Lua function `moveToActive` asks.
 */
import { type Job, Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { holdQueueRateLimit } from '../../src/queue/rate-limit.js';
import { queueKeyPrefixOf, RENDER_QUEUE_NAME } from '../../src/queue/render-queue.js';
import { uniqueName, useLocalStack } from '../helpers/stack.js';

const stack = useLocalStack({ s3: false, simulator: false });

const closers: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const close of closers.reverse()) await close();
});

function connect(): Redis {
  const url = stack().redis?.url;
  if (url === undefined) throw new Error('the local stack started no redis-server');
  const connection = new Redis(url, { maxRetriesPerRequest: null });
  closers.push(() => connection.quit());
  return connection;
}

function renderQueue(redis: Redis, prefix: string): Queue {
  const queue = new Queue(RENDER_QUEUE_NAME, { connection: redis, prefix });
  closers.push(() => queue.close());
  return queue;
}

/**
 * Saturates the queue's limiter as a fleet does: a worker with `{ max, duration: 60 s }` takes `max` jobs (BullMQ's
 * manual fetch, `getNextJob`, runs the same moveToActive that counts them in the limiter).
 */
async function saturate(redis: Redis, prefix: string, queue: Queue, max: number): Promise<void> {
  const connection = redis.duplicate();
  closers.push(() => connection.quit());
  const worker = new Worker(RENDER_QUEUE_NAME, null, { connection, prefix, limiter: { max, duration: 60_000 } });
  await queue.addBulk(Array.from({ length: max }, (_, index) => ({ name: 'job', data: { index } })));
  for (let index = 0; index < max; index++) {
    const job: Job | undefined = await worker.getNextJob(`token-${index}`);
    expect(job).toBeDefined();
  }
  await worker.close();
}

describe('the queue-wide wait of a 429', () => {
  it('BullMQ rateLimit(ms) sets <prefix>:<queue>:limiter with PX ms, replacing a longer wait', async () => {
    const redis = connect();
    const prefix = uniqueName('rl');
    const queue = renderQueue(redis, prefix);
    const limiterKey = `${queueKeyPrefixOf(prefix)}:limiter`;
    expect(limiterKey).toBe(`${prefix}:${RENDER_QUEUE_NAME}:limiter`);

    await queue.rateLimit(60_000);
    expect(await redis.get(limiterKey)).toBe(String(Number.MAX_SAFE_INTEGER));
    expect(await redis.pttl(limiterKey)).toBeGreaterThan(55_000);
    await queue.rateLimit(1_000);
    // The 60 s wait is gone: this is what a 429 with retry_after 1 did to the fleet before holdQueueRateLimit.
    expect(await redis.pttl(limiterKey)).toBeLessThanOrEqual(1_000);
    expect(await queue.getRateLimitTtl(600)).toBeLessThanOrEqual(1_000);
  });

  it('a short retry_after keeps a saturated 60 s window, where BullMQ rateLimit shortens it to 1 s', async () => {
    const redis = connect();
    const max = 2;

    const ours = uniqueName('rl');
    const oursQueue = renderQueue(redis, ours);
    await saturate(redis, ours, oursQueue, max);
    expect(await oursQueue.getRateLimitTtl(max)).toBeGreaterThan(50_000);
    const wait = await holdQueueRateLimit(redis, {
      queueKeyPrefix: queueKeyPrefixOf(ours),
      ms: 1_000,
      limiterMax: max,
    });
    expect(wait).toBeGreaterThan(50_000);
    expect(await oursQueue.getRateLimitTtl(max)).toBeGreaterThan(50_000);

    // The same sequence through the call the worker used before: the saturated window shrinks to the 429's second.
    const theirs = uniqueName('rl');
    const theirsQueue = renderQueue(redis, theirs);
    await saturate(redis, theirs, theirsQueue, max);
    expect(await theirsQueue.getRateLimitTtl(max)).toBeGreaterThan(50_000);
    await theirsQueue.rateLimit(1_000);
    expect(await theirsQueue.getRateLimitTtl(max)).toBeLessThanOrEqual(1_000);
  });

  it('a longer retry_after extends the wait, a shorter one keeps it, and an unsaturated window becomes the wait', async () => {
    const redis = connect();
    const prefix = uniqueName('rl');
    const queue = renderQueue(redis, prefix);
    const queueKeyPrefix = queueKeyPrefixOf(prefix);
    const limiterKey = `${queueKeyPrefix}:limiter`;

    // Three creates counted in a 60 s window of 600: no wait in force. The 429 must stop the queue now, for its 2 s.
    await redis.set(limiterKey, '3', 'PX', 60_000);
    expect(await queue.getRateLimitTtl(600)).toBe(0);
    expect(await holdQueueRateLimit(redis, { queueKeyPrefix, ms: 2_000, limiterMax: 600 })).toBe(2_000);
    const first = await queue.getRateLimitTtl(600);
    expect(first).toBeGreaterThan(0);
    expect(first).toBeLessThanOrEqual(2_000);

    expect(await holdQueueRateLimit(redis, { queueKeyPrefix, ms: 30_000, limiterMax: 600 })).toBe(30_000);
    expect(await holdQueueRateLimit(redis, { queueKeyPrefix, ms: 500, limiterMax: 600 })).toBeGreaterThan(25_000);
    expect(await queue.getRateLimitTtl(600)).toBeGreaterThan(25_000);

    // BullMQ's setGlobalRateLimit (the meta's max) decides what saturated means, as in moveToActive.
    const global = uniqueName('rl');
    const globalQueue = renderQueue(redis, global);
    await globalQueue.setGlobalRateLimit(3, 60_000);
    await redis.set(`${queueKeyPrefixOf(global)}:limiter`, '3', 'PX', 60_000);
    const kept = await holdQueueRateLimit(redis, {
      queueKeyPrefix: queueKeyPrefixOf(global),
      ms: 1_000,
      limiterMax: 600,
    });
    expect(kept).toBeGreaterThan(50_000);
  });

  it('refuses a wait that is not a number of milliseconds', async () => {
    const redis = connect();
    const queueKeyPrefix = queueKeyPrefixOf(uniqueName('rl'));
    await expect(holdQueueRateLimit(redis, { queueKeyPrefix, ms: Number.NaN, limiterMax: 1 })).rejects.toThrow(
      RangeError,
    );
    await expect(holdQueueRateLimit(redis, { queueKeyPrefix, ms: 10, limiterMax: 0 })).rejects.toThrow(RangeError);
    // A fraction is rounded up: PX takes whole milliseconds.
    expect(await holdQueueRateLimit(redis, { queueKeyPrefix, ms: 0.4, limiterMax: 1 })).toBe(1);
  });
});
