/**
 * The render worker under the provider's faults: prediction failures, 5xx answers, flagged inputs (E005) and bursts of
 * 429s, with two workers sharing one queue. What must hold is what the invoice will say: every image that could be
 * rendered was rendered and paid for exactly once, flagged images were tried once and never again, and the ledger's
 * money matches what the provider billed to the micro-dollar.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { fluxDepthPro } from '../../src/core/models.js';
import { costOf } from '../../src/core/money.js';
import { renderJobIdOf } from '../../src/core/render-job.js';
import { contentKeyOf } from '../../src/sim/content-key.js';
import { FaultInjector, flaggedError, genericFailureError } from '../../src/sim/faults.js';
import { faultsSchema } from '../../src/sim/options.js';
import { getObjectBytes } from '../../src/storage/s3.js';
import { startRenderWorker } from '../../src/worker/start.js';
import {
  listSimulatorPredictions,
  predictionSubjectOf,
  prepareRenderRun,
  type RenderRunFixture,
  type SimulatorPrediction,
  useRenderRunCleanup,
} from '../helpers/render-run.js';
import { useLocalStack } from '../helpers/stack.js';

const stack = useLocalStack({
  simulator: {
    startDelayMs: { min: 5, max: 20 },
    latencyMs: { min: 20, max: 80 },
    outputMaxSide: 64,
    // The only 429s are the bursts this test asks for, not the account's token buckets.
    createsPerMinute: 100_000,
    requestsPerMinute: 100_000,
  },
});

const JOBS = 200;
const faultRates = { failureRate: 0.1, serverErrorRate: 0.05, flaggedRate: 0.03 } as const;
/** 429 bursts fire when this many jobs have succeeded: early, in the middle and late in the run. */
const BURSTS_AT_SUCCEEDED = [30, 80, 130] as const;
const BURST_SIZE = 12;
const price = fluxDepthPro.priceMicrosPerImage;

const { fixtures, workers } = useRenderRunCleanup();

/**
 * The simulator flags an input by a hash of its content and the fault seed, as Replicate's filter judges content, not
 * luck. Derived seeds include the run id, so which jobs are flagged differs from run to run: the fault seed is chosen
 * here so that a handful of jobs are, and the test knows exactly which.
 */
async function chooseFlaggingSeed(fixture: RenderRunFixture): Promise<{ seed: number; flagged: Set<string> }> {
  const digests = new Map<string, string>();
  for (const job of fixture.jobs) {
    const key = job.controlImage.key;
    if (!digests.has(key)) {
      const bytes = await getObjectBytes(fixture.s3, job.controlImage);
      digests.set(key, createHash('sha256').update(bytes).digest('hex'));
    }
  }
  const contentKeys = fixture.jobs.map((job) => ({
    jobId: renderJobIdOf(job),
    contentKey: contentKeyOf(
      job.model,
      { ...job.input, control_image: 'presigned' },
      new Map([['control_image', digests.get(job.controlImage.key) ?? '']]),
    ),
  }));
  for (let seed = 1; seed < 1_000; seed++) {
    const injector = new FaultInjector(faultsSchema.parse({ ...faultRates, seed }));
    const flagged = new Set(contentKeys.filter((job) => injector.isFlagged(job.contentKey)).map((job) => job.jobId));
    if (flagged.size >= 4 && flagged.size <= 10) return { seed, flagged };
  }
  throw new Error('no fault seed flags between 4 and 10 jobs');
}

describe('render worker under faults', () => {
  it('200 jobs with 10% failures, 5% 5xx, 3% flagged and 429 bursts: each image paid once, flagged ones tried once', async () => {
    const fixture = await prepareRenderRun(stack(), {
      images: 50,
      styles: ['day', 'dusk', 'night', 'fog'],
      env: { DEPTHQ_CREATES_PER_MINUTE: '100000' },
    });
    fixtures.push(fixture);
    expect(fixture.jobs).toHaveLength(JOBS);
    const { ledger, queue, run } = fixture;
    const simulator = stack().simulator;
    if (simulator === undefined) throw new Error('no simulator');
    const { seed, flagged: expectedFlagged } = await chooseFlaggingSeed(fixture);

    // Faults start after the workers' start-up checks, which are not what this test is about.
    workers.push(await startRenderWorker(fixture.config, { concurrency: 16 }));
    workers.push(await startRenderWorker(fixture.config, { concurrency: 16 }));
    const before = simulator.stats();
    simulator.setFaults({ ...faultRates, seed });

    let bursts = 0;
    const deadline = Date.now() + 120_000;
    let counters = await ledger.counters(run);
    while (counters.succeeded + counters.flagged + counters.failed < JOBS && Date.now() < deadline) {
      const burstAt = BURSTS_AT_SUCCEEDED[bursts];
      if (burstAt !== undefined && counters.succeeded >= burstAt) {
        simulator.throttleNext(BURST_SIZE, 1);
        bursts += 1;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
      counters = await ledger.counters(run);
    }
    for (const worker of workers.splice(0)) await worker.close();
    simulator.setFaults({ failureRate: 0, serverErrorRate: 0, flaggedRate: 0 });

    const flaggedCount = expectedFlagged.size;
    const succeededCount = JOBS - flaggedCount;
    expect(bursts).toBe(BURSTS_AT_SUCCEEDED.length);
    expect(counters).toEqual({
      total: JOBS,
      queued: 0,
      running: 0,
      succeeded: succeededCount,
      failed: 0,
      flagged: flaggedCount,
      parked: 0,
      canceled: 0,
    });

    // The faults really happened.
    const stats = simulator.stats();
    const delta = (pick: (s: typeof stats) => number) => pick(stats) - pick(before);
    expect(delta((s) => s.serverErrors)).toBeGreaterThan(0);
    expect(delta((s) => s.throttled)).toBe(BURSTS_AT_SUCCEEDED.length * BURST_SIZE);
    expect(delta((s) => s.flagged)).toBe(flaggedCount);
    const genericFailures = delta((s) => s.predictions.failed) - flaggedCount;
    expect(genericFailures).toBeGreaterThan(0);

    // What the provider billed: one image per succeeded job, no input twice — and the ledger says the same.
    expect(stats.inputsBilledMoreThanOnce).toBe(0);
    expect(delta((s) => s.billedImages)).toBe(succeededCount);
    expect(delta((s) => s.billedPredictions)).toBe(succeededCount);
    expect(await ledger.money(run)).toEqual({
      budget: null,
      reserved: 0,
      spent: costOf(
        price,
        delta((s) => s.billedImages),
      ),
      // A flagged prediction may be billed (unconfirmed): kept apart from `spent`, one image each.
      possiblyBilled: costOf(price, flaggedCount),
    });

    // Every prediction the provider holds belongs to a job and is in that job's row, and vice versa.
    const predictions = await listSimulatorPredictions(stack());
    expect(predictions).toHaveLength(delta((s) => s.creates));
    const bySubject = new Map<string, SimulatorPrediction[]>();
    for (const prediction of predictions) {
      const subject = predictionSubjectOf(prediction.input);
      bySubject.set(subject, [...(bySubject.get(subject) ?? []), prediction]);
    }
    expect(bySubject.size).toBe(JOBS);

    const flaggedInLedger = new Set<string>();
    for (const job of fixture.jobs) {
      const jobId = renderJobIdOf(job);
      const row = await ledger.result(run, jobId);
      const made = bySubject.get(predictionSubjectOf(job.input)) ?? [];
      const byId = new Map(made.map((prediction) => [prediction.id, prediction]));
      expect([...(row?.predictionIds ?? [])].sort()).toEqual([...byId.keys()].sort());
      const bullJob = await queue.getJob(jobId);

      if (row?.status === 'flagged') {
        flaggedInLedger.add(jobId);
        expect(row.reason).toBe('flagged');
        expect(row.costMicros).toBeUndefined();
        expect(row.error).toContain('(E005)');
        expect(await bullJob?.getState()).toBe('failed');
        expect(bullJob?.failedReason).toContain('(E005)');
        // The filter's verdict depends on the input alone: one create, flagged, never tried again.
        expect(row.predictionIds).toHaveLength(1);
        expect(made).toHaveLength(1);
        expect(made[0]).toMatchObject({ id: row.predictionId, status: 'failed', error: flaggedError });
      } else {
        expect(row).toMatchObject({ status: 'succeeded', costMicros: price });
        expect(await bullJob?.getState()).toBe('completed');
        const succeeded = made.filter((prediction) => prediction.status === 'succeeded');
        expect(succeeded.map((prediction) => prediction.id)).toEqual([row?.predictionId]);
        expect(made.filter((prediction) => prediction.status !== 'succeeded')).toEqual(
          made.filter((prediction) => prediction.error === genericFailureError),
        );
      }
    }
    expect([...flaggedInLedger].sort()).toEqual([...expectedFlagged].sort());
  }, 150_000);
});
