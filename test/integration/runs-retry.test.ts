/**
 * `depthq retry` on a real queue: failed jobs are requeued with the seed they had and succeed; flagged ones only with
 * --reseed, and then with their next derived seed, recorded in the ledger and the sidecar; succeeded jobs never move.
 */
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, describe, expect, it } from 'vitest';
import { readCheckpoint } from '../../src/core/checkpoint.js';
import { sidecarKeyOf } from '../../src/core/keys.js';
import { fluxDepthPro } from '../../src/core/models.js';
import { costOf } from '../../src/core/money.js';
import { renderJobIdOf } from '../../src/core/render-job.js';
import { deriveSeed } from '../../src/core/seed.js';
import type { RunCounters } from '../../src/ledger/run-ledger.js';
import { releaseParkedJobs } from '../../src/queue/parked-jobs.js';
import { createRenderQueue, defaultRenderQueueSettings, enqueueRenderJobs } from '../../src/queue/render-queue.js';
import { nextSeedAfter, reseedIndexOf } from '../../src/runs/reseed.js';
import { retryRunJobs } from '../../src/runs/retry-jobs.js';
import { getObjectBytes, putBytesObject } from '../../src/storage/s3.js';
import { type RunningRenderWorker, startRenderWorker } from '../../src/worker/start.js';
import {
  listSimulatorPredictions,
  predictionSubjectOf,
  prepareRenderRun,
  type RenderRunFixture,
  waitForCounters,
} from '../helpers/render-run.js';
import { useLocalStack } from '../helpers/stack.js';

const stack = useLocalStack({
  simulator: { startDelayMs: { min: 5, max: 20 }, latencyMs: { min: 20, max: 60 }, outputMaxSide: 64 },
});

const fixtures: RenderRunFixture[] = [];
const workers: RunningRenderWorker[] = [];
afterAll(async () => {
  stack().simulator?.setFaults({ flaggedRate: 0 });
  for (const worker of workers) await worker.close();
  for (const fixture of fixtures) await fixture.close();
});

const price = fluxDepthPro.priceMicrosPerImage;
const exactly = (expected: Partial<RunCounters>) => (counters: RunCounters) =>
  Object.entries(expected).every(([name, value]) => counters[name as keyof RunCounters] === value);

async function metaOf(fixture: RenderRunFixture) {
  const meta = await fixture.ledger.getRun(fixture.run);
  if (meta === undefined) throw new Error('no meta');
  return meta;
}

/** Replicate's retention, as the CLI passes it from the config. */
const resume = { retentionMs: 3_600_000, marginMs: 300_000 };

describe('depthq retry', () => {
  it('requeues failed jobs with the same seed, never a succeeded one, and they succeed', async () => {
    const fixture = await prepareRenderRun(stack(), { images: 3, styles: ['day', 'night'], budgetMicros: 2 * price });
    fixtures.push(fixture);
    const { ledger, queue, run, s3, bucket } = fixture;
    const simulator = stack().simulator;
    if (simulator === undefined) throw new Error('no simulator');
    const worker = await startRenderWorker(fixture.config, { concurrency: 4 });
    workers.push(worker);

    // Two succeed on the budget. Then the control images vanish (a cleanup job ran too early): the four parked jobs
    // fail for good when released — a failure a person can fix, and then retry.
    await waitForCounters(ledger, run, exactly({ succeeded: 2, parked: 4 }));
    const controls = [...new Set(fixture.jobs.map((job) => job.controlImage.key))];
    const controlBytes = new Map<string, Uint8Array>();
    for (const key of controls) {
      controlBytes.set(key, await getObjectBytes(s3, { bucket, key }));
      await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    }
    await ledger.setBudget(run, 10 * price);
    expect(await releaseParkedJobs(queue, ledger, run)).toBe(4);
    expect(await waitForCounters(ledger, run, exactly({ succeeded: 2, failed: 4 }))).toMatchObject({ failed: 4 });
    for (const [key, bytes] of controlBytes) await putBytesObject(s3, { bucket, key }, bytes, 'image/png');

    const failedIds: string[] = [];
    const succeededIds: string[] = [];
    for await (const { jobId, row } of ledger.results(run)) {
      if (row.status === 'failed') {
        expect(row).toMatchObject({ reason: 'fatal' });
        expect(row.error).toContain('upload it or fix the manifest row');
        failedIds.push(jobId);
      } else {
        succeededIds.push(jobId);
      }
    }
    const seedsBefore = new Map(fixture.jobs.map((job) => [renderJobIdOf(job), Number(job.input.seed)]));
    const snapshot = async (id: string) => {
      const job = await queue.getJob(id);
      return JSON.stringify([job?.data, job?.attemptsMade, job?.finishedOn, job?.returnvalue, await job?.getState()]);
    };
    const succeededBefore = await Promise.all(succeededIds.map(snapshot));

    // A succeeded job whose row was (wrongly) made to read `failed` is still refused: BullMQ says it completed.
    const trap = succeededIds[0] ?? '';
    const trapRow = await ledger.result(run, trap);
    if (trapRow === undefined) throw new Error('no row');
    await ledger.recordResult(run, trap, { ...trapRow, status: 'failed' });

    const outcome = await retryRunJobs(
      queue,
      ledger,
      run,
      await metaOf(fixture),
      {
        failed: true,
        flagged: false,
        reseed: false,
      },
      resume,
    );
    expect(outcome.skipped).toEqual([{ jobId: trap, why: 'its BullMQ job is completed, not failed' }]);
    await ledger.recordResult(run, trap, trapRow);
    expect(outcome.requeued.map((job) => job.jobId)).toEqual([...failedIds].sort());
    for (const job of outcome.requeued) {
      expect(job).toEqual({ jobId: job.jobId, status: 'failed', seed: seedsBefore.get(job.jobId) });
    }

    const counters = await waitForCounters(ledger, run, exactly({ succeeded: 6 }));
    expect(counters).toMatchObject({ total: 6, succeeded: 6, failed: 0, queued: 0 });
    for (const jobId of failedIds) {
      const row = await ledger.result(run, jobId);
      expect(row).toMatchObject({ status: 'succeeded', seed: seedsBefore.get(jobId), attempts: 1, costMicros: price });
      expect(row?.predictionIds).toHaveLength(1);
      const job = await queue.getJob(jobId);
      expect(Number(job?.data.input.seed)).toBe(seedsBefore.get(jobId));
      expect(await job?.getState()).toBe('completed');
    }
    // The jobs that had succeeded were not touched.
    const succeededAfter = await Promise.all(succeededIds.map(snapshot));
    expect(succeededAfter).toEqual(succeededBefore);
    // Paid once per image, with the seed the job had before it failed.
    expect(await ledger.money(run)).toEqual({ budget: 10 * price, reserved: 0, spent: 6 * price, possiblyBilled: 0 });
    expect(simulator.stats().inputsBilledMoreThanOnce).toBe(0);
    const predictions = await listSimulatorPredictions(stack());
    for (const job of fixture.jobs) {
      const made = predictions.filter((p) => predictionSubjectOf(p.input) === predictionSubjectOf(job.input));
      expect(made.map((prediction) => prediction.status)).toEqual(['succeeded']);
    }
  }, 45_000);

  it('requeues jobs whose predictions failed until their attempts ran out: a new attempt with the same seed', async () => {
    const fixture = await prepareRenderRun(stack(), { images: 2, styles: ['day', 'night'] });
    fixtures.push(fixture);
    const { ledger, run, redis, prefix } = fixture;
    // The same jobs again, enqueued with one attempt each, so that one failed prediction fails a job for good.
    const oneAttempt = createRenderQueue(redis, prefix, { ...defaultRenderQueueSettings, attempts: 1 });
    await fixture.queue.obliterate({ force: true });
    await enqueueRenderJobs(oneAttempt, ledger, run, fixture.jobs);
    const simulator = stack().simulator;
    if (simulator === undefined) throw new Error('no simulator');
    simulator.setFaults({ failureRate: 1 });
    try {
      workers.push(await startRenderWorker(fixture.config, { concurrency: 4 }));
      expect(await waitForCounters(ledger, run, exactly({ failed: 4 }))).toMatchObject({ failed: 4 });
    } finally {
      simulator.setFaults({ failureRate: 0 });
    }
    const outcome = await retryRunJobs(
      oneAttempt,
      ledger,
      run,
      await metaOf(fixture),
      {
        failed: true,
        flagged: false,
        reseed: false,
      },
      resume,
    );
    expect(outcome.requeued).toHaveLength(4);
    expect(await waitForCounters(ledger, run, exactly({ succeeded: 4 }))).toMatchObject({ succeeded: 4, failed: 0 });
    const predictions = await listSimulatorPredictions(stack());
    for (const job of fixture.jobs) {
      const row = await ledger.result(run, renderJobIdOf(job));
      expect(row).toMatchObject({ status: 'succeeded', seed: job.input.seed, attempts: 1 });
      // One failed prediction and one that succeeded, both with the job's one seed, both on record.
      const made = predictions.filter((p) => predictionSubjectOf(p.input) === predictionSubjectOf(job.input));
      expect(made.map((prediction) => prediction.status).sort()).toEqual(['failed', 'succeeded']);
      expect([...(row?.predictionIds ?? [])].sort()).toEqual(made.map((prediction) => prediction.id).sort());
    }
    expect(await ledger.money(run)).toEqual({ budget: null, reserved: 0, spent: 4 * price, possiblyBilled: 0 });
    await oneAttempt.close();
  }, 45_000);

  it('requeues flagged jobs only with --reseed, with the next derived seed recorded in the ledger and the sidecar', async () => {
    const fixture = await prepareRenderRun(stack(), { images: 2, styles: ['day'], manifestSeeds: true });
    const derived = await prepareRenderRun(stack(), { images: 2, styles: ['day'] });
    fixtures.push(fixture, derived);
    const simulator = stack().simulator;
    if (simulator === undefined) throw new Error('no simulator');
    simulator.setFaults({ flaggedRate: 1 });
    for (const run of [fixture, derived]) {
      workers.push(await startRenderWorker(run.config, { concurrency: 2 }));
      expect(await waitForCounters(run.ledger, run.run, exactly({ flagged: 2 }))).toMatchObject({ flagged: 2 });
    }
    simulator.setFaults({ flaggedRate: 0 });

    await expect(
      retryRunJobs(
        fixture.queue,
        fixture.ledger,
        fixture.run,
        await metaOf(fixture),
        {
          failed: false,
          flagged: true,
          reseed: false,
        },
        resume,
      ),
    ).rejects.toThrow(/--flagged needs --reseed/);

    for (const run of [fixture, derived]) {
      const outcome = await retryRunJobs(
        run.queue,
        run.ledger,
        run.run,
        await metaOf(run),
        {
          failed: false,
          flagged: true,
          reseed: true,
        },
        resume,
      );
      expect(outcome.skipped).toEqual([]);
      expect(outcome.requeued).toHaveLength(2);
      for (const requeued of outcome.requeued) {
        const job = run.jobs.find((candidate) => renderJobIdOf(candidate) === requeued.jobId);
        if (job === undefined) throw new Error('unknown job');
        const identity = { run: job.run, rowId: job.rowId, style: job.style };
        // A manifest seed is followed by the first derived seed; a derived one by the next re-roll.
        const expectedSeed = deriveSeed({ ...identity, reseed: job.seedSource === 'manifest' ? 0 : 1 });
        expect(requeued).toEqual({
          jobId: requeued.jobId,
          status: 'flagged',
          previousSeed: Number(job.input.seed),
          seed: expectedSeed,
        });
        expect(nextSeedAfter(identity, Number(job.input.seed)).seed).toBe(expectedSeed);
      }
      expect(await waitForCounters(run.ledger, run.run, exactly({ succeeded: 2 }))).toMatchObject({
        succeeded: 2,
        flagged: 0,
      });
      // The flagged prediction may have been billed: it stays counted; the new image is spent.
      expect(await run.ledger.money(run.run)).toEqual({
        budget: null,
        reserved: 0,
        spent: costOf(price, 2),
        possiblyBilled: costOf(price, 2),
      });
      for (const requeued of outcome.requeued) {
        const row = await run.ledger.result(run.run, requeued.jobId);
        expect(row).toMatchObject({ status: 'succeeded', seed: requeued.seed });
        expect(row?.predictionIds).toHaveLength(2);
        const bullJob = await run.queue.getJob(requeued.jobId);
        expect(bullJob?.data.input.seed).toBe(requeued.seed);
        expect(bullJob?.data.seedSource).toBe('derived');
        expect(readCheckpoint(bullJob?.data.checkpoint).recorded).toBe(true);
        const outputKey = row?.outputKey ?? '';
        const sidecar = JSON.parse(
          Buffer.from(await getObjectBytes(run.s3, { bucket: run.bucket, key: sidecarKeyOf(outputKey) })).toString(),
        ) as Record<string, unknown>;
        expect(sidecar).toMatchObject({ seed: requeued.seed, seedSource: 'derived', loggedSeed: requeued.seed });
        // The provider saw the new seed, once.
        const predictions = await listSimulatorPredictions(stack());
        const prompt = bullJob?.data.input.prompt;
        const made = predictions.filter(
          (prediction) =>
            predictionSubjectOf(prediction.input) === predictionSubjectOf({ prompt, seed: requeued.seed }),
        );
        expect(made.map((prediction) => prediction.status)).toEqual(['succeeded']);
      }
    }
    expect(
      reseedIndexOf(
        { run: 'r', rowId: 'a', style: null },
        deriveSeed({ run: 'r', rowId: 'a', style: null, reseed: 3 }),
      ),
    ).toBe(3);
  }, 45_000);
});
