/**
 * `depthq cancel` during a run with predictions in flight: the waiting jobs are removed and recorded canceled, the
 * running predictions are canceled through the API (the simulator shows them canceled), every job ends, and nothing
 * is created or billed afterwards. The ledger's money matches what the provider billed.
 */
import { describe, expect, it } from 'vitest';
import { readCheckpoint } from '../../src/core/checkpoint.js';
import { fluxDepthPro } from '../../src/core/models.js';
import { costOf } from '../../src/core/money.js';
import { ReplicateProvider } from '../../src/providers/replicate.js';
import { cancelRun } from '../../src/runs/cancel-run.js';
import { pauseRun, RunCanceledError } from '../../src/runs/run-controls.js';
import { startRenderWorker } from '../../src/worker/start.js';
import {
  listSimulatorPredictions,
  predictionSubjectOf,
  prepareRenderRun,
  useRenderRunCleanup,
  waitForCounters,
} from '../helpers/render-run.js';
import { eventually, useLocalStack } from '../helpers/stack.js';

const stack = useLocalStack({
  // Predictions run for seconds, so the cancel finds them in flight.
  simulator: { startDelayMs: { min: 20, max: 60 }, latencyMs: { min: 2_500, max: 3_500 }, outputMaxSide: 64 },
});

const { fixtures, workers } = useRenderRunCleanup();

const price = fluxDepthPro.priceMicrosPerImage;

describe('depthq cancel', () => {
  it('cancels in-flight predictions, removes waiting jobs, records every job canceled and spends nothing more', async () => {
    const fixture = await prepareRenderRun(stack(), { images: 8, styles: ['day', 'night'] });
    fixtures.push(fixture);
    const { ledger, queue, run } = fixture;
    const simulator = stack().simulator;
    if (simulator === undefined) throw new Error('no simulator');
    const env = stack().env();
    const provider = new ReplicateProvider({
      apiToken: env.REPLICATE_API_TOKEN ?? '',
      baseUrl: env.REPLICATE_BASE_URL ?? '',
    });
    const subjects = new Set(fixture.jobs.map((job) => predictionSubjectOf(job.input)));
    const before = simulator.stats();

    const worker = await startRenderWorker(fixture.config, { concurrency: 4 });
    workers.push(worker);
    // Four jobs in flight, each with its prediction id checkpointed: the state cancel must handle.
    const inFlight = await eventually(async () => {
      const active = await queue.getActive();
      return active.filter((job) => readCheckpoint(job.data.checkpoint).predictionId !== undefined).length === 4;
    }, 20_000);
    expect(inFlight).toBe(true);

    const outcome = await cancelRun(queue, ledger, provider, run);
    expect(outcome.alreadyCanceled).toBe(false);
    expect(outcome.problems).toEqual([]);
    expect(outcome.predictionsCanceled).toBe(4);
    expect(outcome.leftToWorkers).toBe(4);
    // Everything else was waiting: removed and recorded here.
    expect(outcome.ended).toBe(12);
    expect(await ledger.runState(run)).toBe('canceled');

    const counters = await waitForCounters(ledger, run, (c) => c.canceled === 16, 20_000);
    expect(counters).toMatchObject({ total: 16, canceled: 16, queued: 0, running: 0, parked: 0, succeeded: 0 });
    await worker.close();
    expect(await queue.getJobCounts('waiting', 'delayed', 'active')).toEqual({ waiting: 0, delayed: 0, active: 0 });

    // The provider's side: four predictions were made, all canceled while running, nothing succeeded.
    const predictions = (await listSimulatorPredictions(stack())).filter((p) =>
      subjects.has(predictionSubjectOf(p.input)),
    );
    expect(predictions).toHaveLength(4);
    expect(predictions.map((p) => p.status)).toEqual(['canceled', 'canceled', 'canceled', 'canceled']);
    const stats = simulator.stats();
    expect(stats.creates - before.creates).toBe(4);
    expect(stats.billedImages - before.billedImages).toBe(0);
    const canceledRunning = stats.canceledWhileRunning - before.canceledWhileRunning;
    expect(canceledRunning).toBe(4);

    // The ledger says the same: nothing spent, the canceled running predictions kept apart as possibly billed,
    // no reservation left behind.
    expect(await ledger.money(run)).toEqual({
      budget: null,
      reserved: 0,
      spent: 0,
      possiblyBilled: costOf(price, canceledRunning),
    });
    for await (const { row } of ledger.results(run)) {
      expect(row).toMatchObject({ status: 'canceled', reason: 'run-canceled' });
    }
    const canceledInFlight = [];
    for await (const { row } of ledger.results(run)) if (row.predictionId !== undefined) canceledInFlight.push(row);
    expect(canceledInFlight.map((row) => row.predictionId).sort()).toEqual(predictions.map((p) => p.id).sort());

    // Nothing further happens: no create, no bill, however long one waits.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const later = simulator.stats();
    expect(later.creates).toBe(stats.creates);
    expect(later.billedPredictions).toBe(stats.billedPredictions);

    // Canceled is final; canceling again changes nothing.
    await expect(pauseRun(ledger, run)).rejects.toThrow(RunCanceledError);
    const again = await cancelRun(queue, ledger, provider, run);
    expect(again).toMatchObject({ alreadyCanceled: true, ended: 0, predictionsCanceled: 0 });
  }, 45_000);
});
