/**
 * `depthq retry` where BullMQ and the ledger can disagree: a retry that BullMQ refuses (another retry moved the job
 * first, or the move failed) leaves the ledger row as it was, and a failed or flagged job BullMQ no longer holds
 * (removed by `removeOnFail`) is added again from the payload the ledger kept. Real redis-server, s3rver and simulator;
 * the simulator's billing oracle is checked.
 */
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import type { Job, Queue } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { ledgerKeys } from '../../src/core/keys.js';
import { fluxDepthPro } from '../../src/core/models.js';
import { costOf } from '../../src/core/money.js';
import { parseRenderJob, renderJobIdOf } from '../../src/core/render-job.js';
import type { RunCounters } from '../../src/ledger/run-ledger.js';
import type { RenderJobData } from '../../src/queue/render-queue.js';
import { nextSeedAfter } from '../../src/runs/reseed.js';
import { retryRunJobs } from '../../src/runs/retry-jobs.js';
import { getObjectBytes, putBytesObject } from '../../src/storage/s3.js';
import { startRenderWorker } from '../../src/worker/start.js';
import {
  prepareRenderRun,
  type RenderRunFixture,
  useRenderRunCleanup,
  waitForCounters,
} from '../helpers/render-run.js';
import { useLocalStack } from '../helpers/stack.js';

const stack = useLocalStack({
  simulator: { startDelayMs: { min: 5, max: 20 }, latencyMs: { min: 10, max: 30 }, outputMaxSide: 64 },
});
const { fixtures, workers } = useRenderRunCleanup();

const price = fluxDepthPro.priceMicrosPerImage;
const resume = { retentionMs: 3_600_000, marginMs: 300_000 };
const selection = { failed: true, flagged: false, reseed: false };
const exactly = (expected: Partial<RunCounters>) => (counters: RunCounters) =>
  Object.entries(expected).every(([name, value]) => counters[name as keyof RunCounters] === value);

/**
 * A run whose every job failed for good (its control images were missing when the worker ran them), with the images
 * put back and the worker still running: ready to be retried.
 */
async function failedRun(images: number): Promise<RenderRunFixture> {
  const fixture = await prepareRenderRun(stack(), { images, styles: ['day'], budgetMicros: 10 * price });
  fixtures.push(fixture);
  const { s3, bucket, ledger, run } = fixture;
  const controls = [...new Set(fixture.jobs.map((job) => job.controlImage.key))];
  const saved = new Map<string, Uint8Array>();
  for (const key of controls) {
    saved.set(key, await getObjectBytes(s3, { bucket, key }));
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
  }
  workers.push(await startRenderWorker(fixture.config, { concurrency: 4 }));
  await waitForCounters(ledger, run, exactly({ failed: images }));
  expect(await ledger.counters(run)).toMatchObject({ failed: images, total: images });
  for (const [key, bytes] of saved) await putBytesObject(s3, { bucket, key }, bytes, 'image/png');
  return fixture;
}

async function metaOf(fixture: RenderRunFixture) {
  const meta = await fixture.ledger.getRun(fixture.run);
  if (meta === undefined) throw new Error('no meta');
  return meta;
}

/** The queue as one `depthq retry` sees it, with `patch` applied to every job it reads (a slow or unlucky process). */
function queueWith(
  queue: Queue<RenderJobData>,
  patch: (job: Job<RenderJobData>) => Job<RenderJobData>,
): Queue<RenderJobData> {
  return new Proxy(queue, {
    get(target, property, receiver) {
      if (property === 'getJob') {
        return async (jobId: string) => {
          const job = await target.getJob(jobId);
          return job === undefined ? undefined : patch(job);
        };
      }
      const value: unknown = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

describe('depthq retry when BullMQ refuses the move', () => {
  it('a job another retry moved first (and a worker then rendered) keeps its succeeded row and its money', async () => {
    const fixture = await failedRun(2);
    const { queue, ledger, run } = fixture;
    const simulator = stack().simulator;
    if (simulator === undefined) throw new Error('no simulator');
    const meta = await metaOf(fixture);

    // This retry reads each job as failed, then stalls; meanwhile another retry moves the jobs and the worker renders
    // them. When it goes on, BullMQ refuses its move (the jobs are completed, not failed).
    let competitor: Promise<unknown> | undefined;
    const stale = queueWith(queue, (job) => {
      const getState = job.getState.bind(job);
      job.getState = async () => {
        const state = await getState();
        competitor ??= (async () => {
          await retryRunJobs(queue, ledger, run, meta, selection, resume);
          await waitForCounters(ledger, run, exactly({ succeeded: 2 }));
        })();
        await competitor;
        return state;
      };
      return job;
    });
    const outcome = await retryRunJobs(stale, ledger, run, meta, selection, resume);

    // Before the fix the refused retry had already written `queued` over the succeeded rows.
    expect(await ledger.counters(run)).toMatchObject({ total: 2, succeeded: 2, queued: 0, failed: 0 });
    expect(outcome.requeued).toEqual([]);
    expect(outcome.skipped).toHaveLength(2);
    for (const skipped of outcome.skipped) {
      expect(skipped.why).toContain('another retry moved it first');
      expect(skipped.why).toContain('its ledger row is unchanged');
    }
    for await (const { row } of ledger.results(run)) expect(row).toMatchObject({ status: 'succeeded' });
    expect(await ledger.money(run)).toEqual({ budget: 10 * price, reserved: 0, spent: 2 * price, possiblyBilled: 0 });
    expect(simulator.stats().inputsBilledMoreThanOnce).toBe(0);
  });

  it('a move that fails leaves the failed row as it is, and the next retry renders the job', async () => {
    const fixture = await failedRun(1);
    const { queue, ledger, run } = fixture;
    const simulator = stack().simulator;
    if (simulator === undefined) throw new Error('no simulator');
    const meta = await metaOf(fixture);

    const broken = queueWith(queue, (job) => {
      job.retry = async () => {
        throw new Error('Connection is closed.');
      };
      return job;
    });
    const outcome = await retryRunJobs(broken, ledger, run, meta, selection, resume);
    // Before the fix the row said `queued` for a job BullMQ still held as failed: status and report lied.
    expect(await ledger.counters(run)).toMatchObject({ total: 1, failed: 1, queued: 0 });
    expect(outcome.requeued).toEqual([]);
    expect(outcome.skipped.map((skipped) => skipped.why)).toEqual([
      'BullMQ did not move it back to waiting (it is still failed): Connection is closed.; its ledger row is unchanged',
    ]);

    const again = await retryRunJobs(queue, ledger, run, meta, selection, resume);
    expect(again.requeued).toHaveLength(1);
    expect(await waitForCounters(ledger, run, exactly({ succeeded: 1 }))).toMatchObject({ succeeded: 1, total: 1 });
    expect(await ledger.money(run)).toEqual({ budget: 10 * price, reserved: 0, spent: price, possiblyBilled: 0 });
    expect(simulator.stats().inputsBilledMoreThanOnce).toBe(0);
  });
});

/** What `removeOnFail` does once a failed job is past its retention: BullMQ forgets it, the ledger keeps its row. */
async function pruneFromQueue(fixture: RenderRunFixture): Promise<void> {
  for (const job of fixture.jobs) {
    const held = await fixture.queue.getJob(renderJobIdOf(job));
    expect(await held?.getState()).toBe('failed');
    await held?.remove();
  }
  expect(await fixture.queue.getJobCounts('failed')).toEqual({ failed: 0 });
}

describe('depthq retry of a job BullMQ removed', () => {
  it('rebuilds a failed job from the payload the ledger kept, under the same id, and it renders', async () => {
    const fixture = await failedRun(2);
    const { queue, ledger, run } = fixture;
    const simulator = stack().simulator;
    if (simulator === undefined) throw new Error('no simulator');
    await pruneFromQueue(fixture);

    // Before the fix: skipped, "ingest the manifest again" — and ingest skips a job whose row is failed.
    const outcome = await retryRunJobs(queue, ledger, run, await metaOf(fixture), selection, resume);
    expect(outcome.skipped).toEqual([]);
    expect(outcome.requeued.map((job) => job.jobId)).toEqual(fixture.jobs.map(renderJobIdOf).sort());
    for (const job of fixture.jobs) {
      const rebuilt = await queue.getJob(renderJobIdOf(job));
      expect(parseRenderJob(rebuilt?.data)).toEqual(job);
    }
    expect(await waitForCounters(ledger, run, exactly({ succeeded: 2 }))).toMatchObject({ succeeded: 2, total: 2 });
    expect(await ledger.money(run)).toEqual({ budget: 10 * price, reserved: 0, spent: 2 * price, possiblyBilled: 0 });
    expect(simulator.stats().inputsBilledMoreThanOnce).toBe(0);
  });

  it('rebuilds a flagged job with its next seed, keeping the prediction ids its row had', async () => {
    const fixture = await prepareRenderRun(stack(), { images: 2, styles: ['day'] });
    fixtures.push(fixture);
    const { queue, ledger, run } = fixture;
    const simulator = stack().simulator;
    if (simulator === undefined) throw new Error('no simulator');
    simulator.setFaults({ flaggedRate: 1 });
    try {
      workers.push(await startRenderWorker(fixture.config, { concurrency: 2 }));
      expect(await waitForCounters(ledger, run, exactly({ flagged: 2 }))).toMatchObject({ flagged: 2 });
    } finally {
      simulator.setFaults({ flaggedRate: 0 });
    }
    const flaggedIds = new Map<string, readonly string[]>();
    for await (const { jobId, row } of ledger.results(run)) flaggedIds.set(jobId, row.predictionIds ?? []);
    for (const job of fixture.jobs) {
      const held = await queue.getJob(renderJobIdOf(job));
      await held?.remove();
    }

    const outcome = await retryRunJobs(
      queue,
      ledger,
      run,
      await metaOf(fixture),
      { failed: false, flagged: true, reseed: true },
      resume,
    );
    expect(outcome.skipped).toEqual([]);
    expect(outcome.requeued).toHaveLength(2);
    for (const requeued of outcome.requeued) {
      const job = fixture.jobs.find((candidate) => renderJobIdOf(candidate) === requeued.jobId);
      if (job === undefined) throw new Error('unknown job');
      const identity = { run: job.run, rowId: job.rowId, style: job.style };
      expect(requeued.seed).toBe(nextSeedAfter(identity, Number(job.input.seed)).seed);
      // The kept payload follows the reseed: a later rebuild renders what this retry asked for.
      expect(parseRenderJob(await ledger.payload(run, requeued.jobId)).input.seed).toBe(requeued.seed);
    }
    expect(await waitForCounters(ledger, run, exactly({ succeeded: 2 }))).toMatchObject({ succeeded: 2, flagged: 0 });
    for (const requeued of outcome.requeued) {
      const row = await ledger.result(run, requeued.jobId);
      const before = flaggedIds.get(requeued.jobId) ?? [];
      expect(before).toHaveLength(1);
      expect(row).toMatchObject({ status: 'succeeded', seed: requeued.seed });
      expect(row?.predictionIds?.slice(0, 1)).toEqual(before);
      expect(row?.predictionIds).toHaveLength(2);
    }
    // The refused predictions may have been billed: they stay counted; the new images are spent.
    expect(await ledger.money(run)).toEqual({
      budget: null,
      reserved: 0,
      spent: costOf(price, 2),
      possiblyBilled: costOf(price, 2),
    });
    expect(simulator.stats().inputsBilledMoreThanOnce).toBe(0);
  });

  it('a retry of a job BullMQ still holds keeps its payload in the ledger (for one enqueued without)', async () => {
    const fixture = await failedRun(1);
    const { queue, ledger, run, redis, prefix } = fixture;
    const simulator = stack().simulator;
    if (simulator === undefined) throw new Error('no simulator');
    await redis.del(ledgerKeys(prefix, run).payloads);
    const outcome = await retryRunJobs(queue, ledger, run, await metaOf(fixture), selection, resume);
    expect(outcome.requeued).toHaveLength(1);
    const [job] = fixture.jobs;
    if (job === undefined) throw new Error('no job');
    expect(parseRenderJob(await ledger.payload(run, renderJobIdOf(job)))).toEqual(job);
    expect(await waitForCounters(ledger, run, exactly({ succeeded: 1 }))).toMatchObject({ succeeded: 1, total: 1 });
    expect(simulator.stats().inputsBilledMoreThanOnce).toBe(0);
  });

  it('says why it cannot rebuild a removed job the ledger kept no payload for', async () => {
    const fixture = await failedRun(1);
    const { queue, ledger, run, redis, prefix } = fixture;
    await pruneFromQueue(fixture);
    // A job enqueued by a depthq that kept no payloads.
    await redis.del(ledgerKeys(prefix, run).payloads);
    const outcome = await retryRunJobs(queue, ledger, run, await metaOf(fixture), selection, resume);
    expect(outcome.requeued).toEqual([]);
    expect(outcome.skipped.map((skipped) => skipped.why)).toEqual([
      'BullMQ no longer holds the job (removed after its retention) and the ledger kept no payload for it ' +
        '(enqueued by a depthq that did not keep payloads): it cannot be rebuilt',
    ]);
    expect(await ledger.counters(run)).toMatchObject({ failed: 1, queued: 0 });
  });
});
