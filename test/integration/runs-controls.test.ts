/**
 * `depthq pause` / `resume` and `depthq budget` on a real queue: a paused run's jobs park (no prediction, no money)
 * while another run on the same queue completes, and resume finishes them at once; a budget raise releases the jobs
 * parked over budget without waiting out their park delay.
 */
import { describe, expect, it } from 'vitest';
import { fluxDepthPro } from '../../src/core/models.js';
import { costOf } from '../../src/core/money.js';
import { buildRenderJob, type RenderJob, renderJobIdOf } from '../../src/core/render-job.js';
import type { RunCounters } from '../../src/ledger/run-ledger.js';
import { enqueueRenderJobs } from '../../src/queue/render-queue.js';
import { changeBudget, pauseRun, resumeRun } from '../../src/runs/run-controls.js';
import { readRunStatus } from '../../src/runs/run-status.js';
import { startRenderWorker } from '../../src/worker/start.js';
import {
  listSimulatorPredictions,
  predictionSubjectOf,
  prepareRenderRun,
  type RenderRunFixture,
  useRenderRunCleanup,
  waitForCounters,
} from '../helpers/render-run.js';
import { uniqueName, useLocalStack } from '../helpers/stack.js';

const stack = useLocalStack({
  simulator: { startDelayMs: { min: 5, max: 20 }, latencyMs: { min: 150, max: 300 }, outputMaxSide: 64 },
});

const { fixtures, workers } = useRenderRunCleanup();

const price = fluxDepthPro.priceMicrosPerImage;
/** Parked jobs come back by themselves only after the park delay (10 min): anything sooner is the release's doing. */
const RELEASE_TIMEOUT_MS = 20_000;

const exactly = (expected: Partial<RunCounters>) => (counters: RunCounters) =>
  Object.entries(expected).every(([name, value]) => counters[name as keyof RunCounters] === value);

/** A second run on the fixture's queue (same prefix, same workers), with the fixture's control images. */
async function addRun(
  fixture: RenderRunFixture,
  styles: readonly string[],
): Promise<{ run: string; jobs: RenderJob[] }> {
  const run = uniqueName('other');
  await fixture.ledger.createRun(run, {
    model: fluxDepthPro.id,
    budgetMicros: null,
    manifest: { name: 'other.csv', sha256: '1'.repeat(64) },
    output: { bucket: fixture.bucket, prefix: 'out', keyTemplate: '{run}/{style}/{id}.{ext}' },
    defaults: {},
  });
  const rows = [...new Set(fixture.jobs.map((job) => job.rowId))];
  const jobs = rows.flatMap((rowId) =>
    styles.map((style) =>
      buildRenderJob({
        run,
        rowId,
        style,
        model: fluxDepthPro.id,
        controlImage: { bucket: fixture.bucket, key: `controls/${rowId}.png` },
        input: { prompt: `${rowId} for the other run, ${style}`, steps: 15 },
        output: { bucket: fixture.bucket, prefix: 'out' },
      }),
    ),
  );
  await enqueueRenderJobs(fixture.queue, fixture.ledger, run, jobs);
  return { run, jobs };
}

describe('pause, resume and budget', () => {
  it('a paused run parks its jobs while another run on the same queue completes; resume finishes it', async () => {
    const fixture = await prepareRenderRun(stack(), { images: 4, styles: ['day', 'night'] });
    fixtures.push(fixture);
    const { ledger, queue } = fixture;
    const paused = fixture.run;
    const other = await addRun(fixture, ['dusk', 'fog']);
    const pausedSubjects = new Set(fixture.jobs.map((job) => predictionSubjectOf(job.input)));

    expect(await pauseRun(ledger, paused)).toEqual({ previous: 'active', current: 'paused', released: 0 });
    const worker = await startRenderWorker(fixture.config, { concurrency: 4 });
    workers.push(worker);

    // The other run goes on and completes; every job of the paused one parks, reason `paused`, before any spending.
    expect(await waitForCounters(ledger, other.run, exactly({ succeeded: 8 }))).toMatchObject({
      total: 8,
      succeeded: 8,
    });
    expect(await waitForCounters(ledger, paused, exactly({ parked: 8 }))).toMatchObject({
      total: 8,
      parked: 8,
      succeeded: 0,
      running: 0,
    });
    for (const job of fixture.jobs) {
      const jobId = renderJobIdOf(job);
      expect(await ledger.result(paused, jobId)).toMatchObject({ status: 'parked', reason: 'paused' });
      expect(await (await queue.getJob(jobId))?.getState()).toBe('delayed');
    }
    expect(await ledger.money(paused)).toEqual({ budget: null, reserved: 0, spent: 0, possiblyBilled: 0 });
    const created = await listSimulatorPredictions(stack());
    expect(created.filter((prediction) => pausedSubjects.has(predictionSubjectOf(prediction.input)))).toEqual([]);
    const meta = await ledger.getRun(paused);
    if (meta === undefined) throw new Error('no meta');
    const status = await readRunStatus(ledger, paused, meta);
    expect(status).toMatchObject({
      state: 'paused',
      parkedByReason: { paused: 8 },
      etaSeconds: null,
      etaNote: 'paused',
    });

    // Resume: all eight are released at once and complete, on their first counted attempt.
    expect(await resumeRun(queue, ledger, paused)).toEqual({ previous: 'paused', current: 'active', released: 8 });
    const counters = await waitForCounters(ledger, paused, exactly({ succeeded: 8 }), RELEASE_TIMEOUT_MS);
    expect(counters).toMatchObject({ total: 8, succeeded: 8, parked: 0 });
    expect(await ledger.money(paused)).toMatchObject({ spent: costOf(price, 8), reserved: 0 });
    for (const job of fixture.jobs) {
      expect((await queue.getJob(renderJobIdOf(job)))?.attemptsMade).toBe(1);
    }
    expect(stack().simulator?.stats().inputsBilledMoreThanOnce).toBe(0);
  }, 45_000);

  it('a budget raise releases the jobs parked over budget; while paused it releases none', async () => {
    const fixture = await prepareRenderRun(stack(), { images: 3, styles: ['day', 'night'], budgetMicros: 2 * price });
    fixtures.push(fixture);
    const { ledger, queue, run } = fixture;
    const worker = await startRenderWorker(fixture.config, { concurrency: 4 });
    workers.push(worker);
    expect(await waitForCounters(ledger, run, exactly({ succeeded: 2, parked: 4 }))).toMatchObject({
      succeeded: 2,
      parked: 4,
    });

    // Paused: the new money waits for the resume instead of waking jobs that would park again.
    await pauseRun(ledger, run);
    const whilePaused = await changeBudget(queue, ledger, run, 3 * price);
    expect(whilePaused).toMatchObject({ previous: 2 * price, released: 0, paused: true });
    expect(whilePaused.money.budget).toBe(3 * price);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await ledger.counters(run)).toMatchObject({ succeeded: 2, parked: 4 });

    // Resumed: the one image the raise pays for is made; the rest stay parked for budget.
    expect((await resumeRun(queue, ledger, run)).released).toBe(1);
    expect(await waitForCounters(ledger, run, exactly({ succeeded: 3, parked: 3 }), RELEASE_TIMEOUT_MS)).toMatchObject({
      succeeded: 3,
      parked: 3,
    });

    // Enough for all: every parked job is released and completes without waiting out its park delay.
    const raise = await changeBudget(queue, ledger, run, 10 * price);
    expect(raise).toMatchObject({ previous: 3 * price, released: 3, paused: false });
    const counters = await waitForCounters(ledger, run, exactly({ succeeded: 6 }), RELEASE_TIMEOUT_MS);
    expect(counters).toMatchObject({ total: 6, succeeded: 6, parked: 0, running: 0 });
    expect(await ledger.money(run)).toEqual({ budget: 10 * price, reserved: 0, spent: 6 * price, possiblyBilled: 0 });

    // Unlimited is a budget too.
    expect((await changeBudget(queue, ledger, run, null)).money.budget).toBeNull();
  }, 45_000);
});
