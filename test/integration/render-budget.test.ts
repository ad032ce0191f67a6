/**
 * The budget guard end to end: jobs that cannot reserve their price park (no attempt spent, no prediction created), and
 * raising the budget plus `releaseParkedJobs` completes them without waiting out their park delay.
 */
import { describe, expect, it } from 'vitest';
import { readCheckpoint } from '../../src/core/checkpoint.js';
import { fluxDepthPro } from '../../src/core/models.js';
import { costOf } from '../../src/core/money.js';
import { renderJobIdOf } from '../../src/core/render-job.js';
import type { RunCounters } from '../../src/ledger/run-ledger.js';
import { releaseParkedJobs } from '../../src/queue/parked-jobs.js';
import { startRenderWorker } from '../../src/worker/start.js';
import {
  listSimulatorPredictions,
  predictionSubjectOf,
  prepareRenderRun,
  type RenderRunFixture,
  useRenderRunCleanup,
  waitForCounters,
} from '../helpers/render-run.js';
import { eventually, useLocalStack } from '../helpers/stack.js';

const stack = useLocalStack({
  simulator: { startDelayMs: { min: 5, max: 20 }, latencyMs: { min: 20, max: 60 }, outputMaxSide: 64 },
});

const price = fluxDepthPro.priceMicrosPerImage;
const images = (count: number) => costOf(price, count);

const { fixtures, workers } = useRenderRunCleanup();

/** Parked jobs come back by themselves only after the pipeline's park delay (10 minutes): any sooner is the release's doing. */
const RELEASE_TIMEOUT_MS = 20_000;

describe('render budget', () => {
  it('budget for 10 images, 20 jobs: 10 succeed, 10 park with reason budget, spend $0.50; raising it completes the rest', async () => {
    const fixture = await prepareRenderRun(stack(), {
      images: 10,
      styles: ['day', 'night'],
      budgetMicros: images(10),
    });
    fixtures.push(fixture);
    const { ledger, queue, run } = fixture;
    const simulator = stack().simulator;
    if (simulator === undefined) throw new Error('no simulator');
    const createsBefore = simulator.stats().creates;
    const createdSince = () => simulator.stats().creates - createsBefore;
    const jobIds = fixture.jobs.map((job) => renderJobIdOf(job));
    const exactly = (expected: Partial<RunCounters>) => (counters: RunCounters) =>
      Object.entries(expected).every(([name, value]) => counters[name as keyof RunCounters] === value);

    const worker = await startRenderWorker(fixture.config, { concurrency: 8 });
    workers.push(worker);

    // Phase 1: the budget pays for 10 images.
    let counters = await waitForCounters(ledger, run, exactly({ succeeded: 10, parked: 10 }));
    expect(counters).toMatchObject({ total: 20, succeeded: 10, parked: 10, running: 0, queued: 0, failed: 0 });
    expect(await ledger.money(run)).toEqual({ budget: images(10), reserved: 0, spent: 500_000, possiblyBilled: 0 });
    expect(createdSince()).toBe(10);

    const parkedIds = await parkedJobIds(fixture);
    expect(parkedIds).toHaveLength(10);
    const parkedSubjects = new Set(
      fixture.jobs.filter((job) => parkedIds.includes(renderJobIdOf(job))).map((job) => predictionSubjectOf(job.input)),
    );
    for (const jobId of parkedIds) {
      const row = await ledger.result(run, jobId);
      expect(row).toMatchObject({ status: 'parked', reason: 'budget' });
      expect(row?.predictionId).toBeUndefined();
      expect(row?.predictionIds).toBeUndefined();
      const job = await queue.getJob(jobId);
      expect(await job?.getState()).toBe('delayed');
      expect(job?.attemptsMade).toBe(0);
      // Parked before the create step: not even an input about to be sent was saved.
      expect(readCheckpoint(job?.data.checkpoint).creating).toBeUndefined();
    }
    // No parked job ever reached the provider.
    const created = await listSimulatorPredictions(stack());
    expect(created).toHaveLength(10);
    expect(created.filter((prediction) => parkedSubjects.has(predictionSubjectOf(prediction.input)))).toEqual([]);

    // Still short: a release wakes nobody, and the parked jobs stay parked.
    expect(await releaseParkedJobs(queue, ledger, run)).toBe(0);

    // Phase 2: five images more — exactly five parked jobs are woken (no more than the money can pay for).
    await ledger.setBudget(run, images(15));
    expect(await releaseParkedJobs(queue, ledger, run)).toBe(5);
    counters = await waitForCounters(ledger, run, exactly({ succeeded: 15, parked: 5 }), RELEASE_TIMEOUT_MS);
    expect(counters).toMatchObject({ succeeded: 15, parked: 5, running: 0, failed: 0 });
    expect(await ledger.money(run)).toMatchObject({ reserved: 0, spent: images(15), possiblyBilled: 0 });
    expect(createdSince()).toBe(15);

    // Phase 3: a woken job that finds the money gone (another job reserved it first) simply parks again.
    await queue.pause();
    await ledger.setBudget(run, images(16));
    expect(await releaseParkedJobs(queue, ledger, run)).toBe(1);
    const woken = await wokenJobs(fixture);
    expect(woken).toHaveLength(1);
    const wokenId = woken[0] ?? '';
    const startsBefore = (await queue.getJob(wokenId))?.attemptsStarted ?? 0;
    expect((await ledger.reserve(run, 'competing-job', price)).ok).toBe(true);
    await queue.resume();
    const reparked = await eventually(async () => {
      const job = await queue.getJob(wokenId);
      return (await job?.getState()) === 'delayed' && (job?.attemptsStarted ?? 0) > startsBefore;
    }, RELEASE_TIMEOUT_MS);
    expect(reparked).toBe(true);
    expect((await queue.getJob(wokenId))?.attemptsMade).toBe(0);
    expect(await ledger.result(run, wokenId)).toMatchObject({ status: 'parked', reason: 'budget' });
    expect(await ledger.counters(run)).toMatchObject({ succeeded: 15, parked: 5, running: 0, failed: 0 });
    expect(createdSince()).toBe(15);
    await ledger.release(run, 'competing-job');

    // Phase 4: enough for everything.
    await ledger.setBudget(run, images(20));
    expect(await releaseParkedJobs(queue, ledger, run)).toBe(5);
    counters = await waitForCounters(ledger, run, exactly({ succeeded: 20 }), RELEASE_TIMEOUT_MS);
    expect(counters).toMatchObject({ total: 20, succeeded: 20, parked: 0, running: 0, queued: 0, failed: 0 });
    expect(await ledger.money(run)).toEqual({ budget: images(20), reserved: 0, spent: 1_000_000, possiblyBilled: 0 });

    const stats = simulator.stats();
    expect(createdSince()).toBe(20);
    expect(stats.inputsBilledMoreThanOnce).toBe(0);
    // However often a job parked, it completed on its first and only counted attempt.
    for (const jobId of jobIds) {
      const job = await queue.getJob(jobId);
      expect(await job?.getState()).toBe('completed');
      expect(job?.attemptsMade).toBe(1);
      expect(await ledger.result(run, jobId)).toMatchObject({ status: 'succeeded', attempts: 1, costMicros: price });
    }
  });
});

async function parkedJobIds(fixture: RenderRunFixture): Promise<string[]> {
  const ids: string[] = [];
  for await (const { jobId, row } of fixture.ledger.results(fixture.run)) {
    if (row.status === 'parked') ids.push(jobId);
  }
  return ids.sort();
}

/** Parked rows whose BullMQ job is no longer delayed: woken by a release, not yet run. */
async function wokenJobs(fixture: RenderRunFixture): Promise<string[]> {
  const woken: string[] = [];
  for (const jobId of await parkedJobIds(fixture)) {
    const state = await (await fixture.queue.getJob(jobId))?.getState();
    if (state !== 'delayed') woken.push(jobId);
  }
  return woken;
}
