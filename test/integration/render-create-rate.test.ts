/**
 * A fleet at the account's create limit never meets a 429: two render workers, configured with the simulator's own
 * creates per minute, render more jobs than the account's burst against the simulator's token bucket
 * (src/sim/rate-limit.ts, a tenth of a minute's creates at once, then R/60 a second). The workers' limiter
 * (`createLimiterOf`, src/queue/render-queue.ts) lets creates out as a smooth rate with short bursts; the old
 * `{ max: R, duration: 60 s }` let every free slot create at once and the bucket answered 429 to all past its burst.
 * Asserted on the simulator's counters, never on time.
 */
import { describe, expect, it } from 'vitest';
import { startRenderWorker } from '../../src/worker/start.js';
import { prepareRenderRun, useRenderRunCleanup, waitForCounters } from '../helpers/render-run.js';
import { useLocalStack } from '../helpers/stack.js';

const CREATES_PER_MINUTE = 120;
/** The simulator's default burst for 120 a minute: 12 creates at once. */
const BURST = 12;
/** Three bursts' worth: the limiter, not the bucket's credit, decides when most of them go. */
const JOBS = 36;

const stack = useLocalStack({
  simulator: {
    startDelayMs: { min: 5, max: 20 },
    latencyMs: { min: 20, max: 80 },
    outputMaxSide: 64,
    createsPerMinute: CREATES_PER_MINUTE,
    burst: { creates: BURST },
    // Only creates are limited here: the other requests (start-up checks, downloads' lookups) are not the subject.
    requestsPerMinute: 100_000,
  },
});

const { fixtures, workers } = useRenderRunCleanup();

describe('the create limiter against the provider token bucket', () => {
  it('two workers at the configured creates per minute render every job with no 429', async () => {
    const fixture = await prepareRenderRun(stack(), {
      images: JOBS,
      styles: ['day'],
      env: { DEPTHQ_CREATES_PER_MINUTE: String(CREATES_PER_MINUTE) },
    });
    fixtures.push(fixture);
    const simulator = stack().simulator;
    if (simulator === undefined) throw new Error('no simulator');
    const before = simulator.stats();

    // Twice the burst in flight at once: without the limiter's shape, the first fetches alone exceed the bucket.
    workers.push(await startRenderWorker(fixture.config, { concurrency: BURST }));
    workers.push(await startRenderWorker(fixture.config, { concurrency: BURST }));
    const counters = await waitForCounters(
      fixture.ledger,
      fixture.run,
      (now) => now.succeeded + now.failed + now.flagged >= JOBS,
      200_000,
    );
    for (const worker of workers.splice(0)) await worker.close();

    const stats = simulator.stats();
    expect(counters).toMatchObject({ total: JOBS, succeeded: JOBS, failed: 0, flagged: 0, queued: 0, running: 0 });
    expect({
      throttled: stats.throttled - before.throttled,
      createRequests: stats.createRequests - before.createRequests,
      creates: stats.creates - before.creates,
      inputsBilledMoreThanOnce: stats.inputsBilledMoreThanOnce,
    }).toEqual({ throttled: 0, createRequests: JOBS, creates: JOBS, inputsBilledMoreThanOnce: 0 });
  }, 240_000);
});
