/**
 * Ledger writes from a render job are fenced by the job's BullMQ lock, like its checkpoint writes: a worker that lost
 * the lock (another worker took the job after a stall, which sets `<prefix>:<queue>:<jobId>:lock` to its own token)
 * can no longer release the next life's reservation, settle the job a second way, or write `failed` over `succeeded`.
 * Real redis-server, BullMQ, s3rver and simulator.
 */
import { type Job, Worker } from 'bullmq';
import { afterAll, describe, expect, it } from 'vitest';
import { fluxDepthPro } from '../../src/core/models.js';
import { RunLedger } from '../../src/ledger/run-ledger.js';
import { createLogger } from '../../src/logging/logger.js';
import { createRenderProcessor } from '../../src/pipeline/render.js';
import { ReplicateProvider } from '../../src/providers/replicate.js';
import { closeConnection, createWorkerConnection } from '../../src/queue/connections.js';
import { LockLostError } from '../../src/queue/fenced-checkpoint.js';
import { queueKeyPrefixOf, RENDER_QUEUE_NAME, type RenderJobData } from '../../src/queue/render-queue.js';
import { prepareRenderRun, type RenderRunFixture, useRenderRunCleanup } from '../helpers/render-run.js';
import { useLocalStack } from '../helpers/stack.js';

const stack = useLocalStack({ simulator: { startDelayMs: { min: 5, max: 20 }, outputMaxSide: 64 } });
const { fixtures } = useRenderRunCleanup();
const closers: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const close of closers.reverse()) await close();
});

const price = fluxDepthPro.priceMicrosPerImage;

/** The fixture's one job, taken by a worker as BullMQ's moveToActive does: the lock key now holds `token`. */
async function takeJob(fixture: RenderRunFixture, token: string): Promise<Job<RenderJobData>> {
  const connection = createWorkerConnection(fixture.config.redisUrl, { name: 'fence-test' });
  closers.push(() => closeConnection(connection));
  const worker = new Worker<RenderJobData>(RENDER_QUEUE_NAME, null, { connection, prefix: fixture.prefix });
  closers.push(() => worker.close());
  const job = await worker.getNextJob(token);
  if (job?.id === undefined) throw new Error('no job to take');
  expect(await fixture.redis.get(lockKeyOf(fixture, job.id))).toBe(token);
  return job;
}

function lockKeyOf(fixture: RenderRunFixture, jobId: string): string {
  return `${queueKeyPrefixOf(fixture.prefix)}:${jobId}:lock`;
}

describe('fenced ledger writes', () => {
  it("a stale life's release, settle and recordResult are refused and leave the next life's money and row", async () => {
    const fixture = await prepareRenderRun(stack(), { images: 1, styles: ['day'], budgetMicros: 10 * price });
    fixtures.push(fixture);
    const { ledger, run, redis } = fixture;
    const job = await takeJob(fixture, 'worker-a:1');
    const jobId = job.id ?? '';
    const lockKey = lockKeyOf(fixture, jobId);
    const stale = ledger.fencedFor({ lockKey, token: 'worker-a:1' });
    const row = { rowId: job.data.rowId, style: job.data.style, seed: Number(job.data.input.seed) };

    // Life A reserves and starts, then stalls past its lock; BullMQ hands the job to worker B (its token in the lock).
    expect(await stale.reserve(run, jobId, price)).toMatchObject({ ok: true, alreadyHeld: false });
    await stale.recordResult(run, jobId, { ...row, status: 'running' });
    await redis.set(lockKey, 'worker-b:7', 'PX', 30_000);
    const next = ledger.fencedFor({ lockKey, token: 'worker-b:7' });
    expect(await next.reserve(run, jobId, price)).toMatchObject({ ok: true, alreadyHeld: true, amount: price });

    // Life A wakes up and thinks its create failed: it would release B's reservation. Refused, nothing changed.
    await expect(stale.release(run, jobId)).rejects.toThrow(LockLostError);
    expect(await ledger.reservation(run, jobId)).toBe(price);
    expect(await ledger.money(run)).toEqual({ budget: 10 * price, reserved: price, spent: 0, possiblyBilled: 0 });

    // Life B succeeds: spent, and its row says so.
    await next.settle(run, jobId, { spent: price, possiblyBilled: 0 });
    await next.recordResult(run, jobId, { ...row, status: 'succeeded', costMicros: price });
    const money = { budget: 10 * price, reserved: 0, spent: price, possiblyBilled: 0 };
    expect(await ledger.money(run)).toEqual(money);

    // Life A's ending by the money rule and its `failed` row: refused, the money and counters stay B's.
    await expect(stale.settle(run, jobId, { spent: 0, possiblyBilled: price })).rejects.toThrow(LockLostError);
    await expect(stale.recordResult(run, jobId, { ...row, status: 'failed', error: 'stale' })).rejects.toThrow(
      LockLostError,
    );
    await expect(stale.reserve(run, jobId, price)).rejects.toThrow(LockLostError);
    expect(await ledger.money(run)).toEqual(money);
    expect(await ledger.settlement(run, jobId)).toMatchObject({ spent: price, possiblyBilled: 0 });
    expect(await ledger.result(run, jobId)).toMatchObject({ status: 'succeeded', costMicros: price });
    expect(await ledger.counters(run)).toMatchObject({ total: 1, succeeded: 1, failed: 0, running: 0 });

    // Once BullMQ deleted the lock (the job completed), a stale write is refused all the same; CLI writes are not fenced.
    await redis.del(lockKey);
    await expect(stale.release(run, jobId)).rejects.toThrow(LockLostError);
    expect((await ledger.release(run, jobId)).released).toBeNull();
    expect(() => ledger.fencedFor({ lockKey, token: '0' })).toThrow(RangeError);
  });

  it('the render processor writes nothing to the ledger, and creates nothing, once its lock is gone', async () => {
    const fixture = await prepareRenderRun(stack(), { images: 1, styles: ['day'], budgetMicros: 10 * price });
    fixtures.push(fixture);
    const { ledger, run, redis, config } = fixture;
    const simulator = stack().simulator;
    if (simulator === undefined) throw new Error('no simulator');
    const job = await takeJob(fixture, 'worker-a:1');
    const jobId = job.id ?? '';
    const connection = createWorkerConnection(config.redisUrl, { name: 'fence-processor' });
    closers.push(() => closeConnection(connection));
    const s3 = fixture.s3;
    const processor = createRenderProcessor({
      provider: new ReplicateProvider({
        apiToken: config.replicate.apiToken ?? '',
        baseUrl: config.replicate.baseUrl,
        poll: { initialMs: 100, maxMs: 400 },
      }),
      s3,
      ledger: new RunLedger(connection, config.prefix),
      redis: connection,
      queueKeyPrefix: queueKeyPrefixOf(config.prefix),
      rateLimit: async () => undefined,
      logger: createLogger({ logLevel: 'silent' }),
      settings: { createWaitSeconds: 2 },
    });
    const before = simulator.stats();

    // The lock passed to another worker before this one got going (an event-loop stall right after the fetch).
    await redis.set(lockKeyOf(fixture, jobId), 'worker-b:7', 'PX', 30_000);
    await expect(processor(job, 'worker-a:1')).rejects.toThrow(LockLostError);

    // Before the fix, the stale processing reserved the money and wrote its `running` row before its first checkpoint
    // write was refused.
    expect(await ledger.reservation(run, jobId)).toBeUndefined();
    expect(await ledger.money(run)).toEqual({ budget: 10 * price, reserved: 0, spent: 0, possiblyBilled: 0 });
    expect(await ledger.counters(run)).toMatchObject({ total: 1, queued: 1, running: 0 });
    expect(simulator.stats().createRequests).toBe(before.createRequests);
    expect(simulator.stats().inputsBilledMoreThanOnce).toBe(0);
  });
});
