/**
 * Replicate refusing the account — no credit (402 on creates), a revoked token (401 on everything) — with an in-process
 * render worker on the real local stack (redis-server, s3rver, the simulator's `accountError` fault). Every job would
 * fail the same way, so the run pauses itself at the first refusal, with the cause in the ledger and `depthq status`
 * and one log line; its jobs park without spending attempts; and `depthq resume`, once the account is fixed, renders
 * every job — paying once for each, resuming the predictions that were running when the token was refused.
 *
 * Each scenario has its own simulator (its stats count that scenario only), key prefix and run. Every wait is on an
 * observed condition with a timeout.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { readCheckpoint } from '../../src/core/checkpoint.js';
import { fluxDepthPro } from '../../src/core/models.js';
import { costOf } from '../../src/core/money.js';
import { renderJobIdOf, reservationOfJob } from '../../src/core/render-job.js';
import type { ResultRow } from '../../src/ledger/run-ledger.js';
import { LOCAL_SIMULATOR_TOKEN, type LocalSimulatorOptions } from '../../src/local/stack.js';
import { resumeRun } from '../../src/runs/run-controls.js';
import { formatRunStatus, readRunStatus, runStatusJson } from '../../src/runs/run-status.js';
import { type RunningSimulator, startSimulator } from '../../src/sim/index.js';
import { type RunningRenderWorker, startRenderWorker } from '../../src/worker/start.js';
import { prepareRenderRun, type RenderRunFixture, waitForCounters } from '../helpers/render-run.js';
import { useLocalStack } from '../helpers/stack.js';
import { useWorkerProcesses, waitForCondition } from '../helpers/worker-process.js';

const stack = useLocalStack({ simulator: false });
// No worker children here: used for its per-test cleanup, which closes what a test registered in reverse order.
const { deferCleanup } = useWorkerProcesses();

const price = fluxDepthPro.priceMicrosPerImage;

interface Scene {
  readonly fixture: RenderRunFixture;
  readonly simulator: RunningSimulator;
  readonly worker: RunningRenderWorker;
  /** The worker's log lines so far, parsed. */
  readonly logLines: () => Array<Record<string, unknown>>;
}

async function setUpScene(options: {
  readonly images: number;
  readonly styles: readonly string[];
  readonly concurrency: number;
  readonly simulator?: LocalSimulatorOptions;
}): Promise<Scene> {
  const simulator = await startSimulator({
    apiToken: LOCAL_SIMULATOR_TOKEN,
    startDelayMs: { min: 5, max: 15 },
    latencyMs: { min: 20, max: 60 },
    outputMaxSide: 64,
    createsPerMinute: 100_000,
    requestsPerMinute: 100_000,
    ...options.simulator,
  });
  deferCleanup(() => simulator.close());
  const fixture = await prepareRenderRun(stack(), {
    images: options.images,
    styles: options.styles,
    env: {
      REPLICATE_BASE_URL: simulator.baseUrl,
      REPLICATE_API_TOKEN: LOCAL_SIMULATOR_TOKEN,
      DEPTHQ_CREATES_PER_MINUTE: '100000',
    },
  });
  deferCleanup(() => fixture.close());
  const chunks: string[] = [];
  const logger = pino(
    { level: 'info' },
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        chunks.push(chunk.toString('utf8'));
        done();
      },
    }),
  );
  const worker = await startRenderWorker(fixture.config, { concurrency: options.concurrency, logger });
  deferCleanup(() => worker.close(2_000));
  const logLines = () =>
    chunks
      .join('')
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  return { fixture, simulator, worker, logLines };
}

async function rowsOf(fixture: RenderRunFixture): Promise<Map<string, ResultRow>> {
  const rows = new Map<string, ResultRow>();
  for await (const { jobId, row } of fixture.ledger.results(fixture.run)) rows.set(jobId, row);
  return rows;
}

/** The error-level lines that announce the run's pause (pino level 50). */
function pauseAnnouncements(scene: Scene): Array<Record<string, unknown>> {
  return scene
    .logLines()
    .filter((line) => line.level === 50 && String(line.msg).startsWith(`run ${scene.fixture.run} paused:`));
}

describe('an account Replicate refuses pauses the run until `depthq resume`', () => {
  it('no credit (402 on creates): the run pauses at the first refusal, no job fails or spends; credit added, resume renders each job once', async () => {
    const scene = await setUpScene({
      images: 4,
      styles: ['day', 'night'],
      concurrency: 2,
      simulator: { faults: { accountError: 'insufficient-credit' } },
    });
    const { fixture, simulator } = scene;
    const { ledger, queue, run } = fixture;

    // Every job ends up parked: the ones that met the 402 for the account, every later one for the pause.
    const parked = await waitForCounters(ledger, run, (c) => c.parked === 8, 30_000);
    expect(parked).toMatchObject({ total: 8, parked: 8, failed: 0, running: 0, succeeded: 0 });
    expect(await ledger.runState(run)).toBe('paused');
    const cause = await ledger.pauseCause(run);
    expect(cause).toMatchObject({ reason: 'account', message: expect.stringContaining('HTTP 402') });
    expect(cause?.message).toContain('add credit at https://replicate.com/account/billing');

    const rows = await rowsOf(fixture);
    const refused = [...rows.values()].filter((row) => row.reason === 'account');
    expect(refused.length).toBeGreaterThanOrEqual(1);
    expect(refused.length).toBeLessThanOrEqual(2);
    for (const row of rows.values()) expect(['account', 'paused']).toContain(row.reason);
    // No attempt spent by any job: parking is not failing.
    for (const jobId of rows.keys()) expect((await queue.getJob(jobId))?.attemptsMade).toBe(0);

    // One create per refused job reached the simulator, nothing was created, nothing billed, nothing held.
    const refusedStats = simulator.stats();
    expect(refusedStats.createRequests).toBe(refused.length);
    expect(refusedStats.creates).toBe(0);
    expect(refusedStats.billedImages).toBe(0);
    expect(await ledger.money(run)).toEqual({ budget: null, reserved: 0, spent: 0, possiblyBilled: 0 });

    // One clear line in the log, however many jobs met the refusal.
    const announcements = pauseAnnouncements(scene);
    expect(announcements).toHaveLength(1);
    expect(announcements[0]?.msg).toContain('lack of credit (HTTP 402)');
    expect(announcements[0]?.msg).toContain(`depthq resume ${run}`);

    // `depthq status` says why and what to do.
    const meta = await ledger.getRun(run);
    if (meta === undefined) throw new Error('the run has no meta');
    const status = await readRunStatus(ledger, run, meta);
    expect(formatRunStatus(status)).toContain('paused by depthq (account, ');
    expect(formatRunStatus(status)).toContain(
      `add credit at https://replicate.com/account/billing. Then: depthq resume ${run}`,
    );
    expect(runStatusJson(status)).toMatchObject({ state: 'paused', pause: { reason: 'account' } });

    // Credit added; `depthq resume`.
    simulator.setFaults({ accountError: 'none' });
    const change = await resumeRun(queue, ledger, run);
    expect(change).toMatchObject({ previous: 'paused', current: 'active', released: 8 });
    expect(change.clearedCause?.reason).toBe('account');
    expect(await ledger.pauseCause(run)).toBeUndefined();

    const done = await waitForCounters(ledger, run, (c) => c.succeeded === 8, 30_000);
    expect(done).toMatchObject({ total: 8, succeeded: 8, parked: 0, failed: 0 });
    const stats = simulator.stats();
    expect(stats.inputsBilledMoreThanOnce).toBe(0);
    expect(stats.creates).toBe(8);
    expect(stats.billedImages).toBe(8);
    expect(await ledger.money(run)).toEqual({
      budget: null,
      reserved: 0,
      spent: costOf(price, stats.billedImages),
      possiblyBilled: 0,
    });
    expect(pauseAnnouncements(scene)).toHaveLength(1);
  }, 60_000);

  it('token revoked while predictions run (401 on polls): jobs park holding their reservations; resume stores those predictions without a second create', async () => {
    const scene = await setUpScene({
      images: 4,
      styles: ['day'],
      concurrency: 4,
      // Long enough that every prediction is still running when the token is refused.
      simulator: { latencyMs: { min: 6_000, max: 6_500 } },
    });
    const { fixture, simulator } = scene;
    const { ledger, queue, run } = fixture;
    const reservations = fixture.jobs.reduce((sum, job) => sum + reservationOfJob(job), 0);

    // Four jobs in flight, each with its prediction checkpointed: then the token stops working.
    await waitForCondition(
      'four predictions in flight',
      async () =>
        (await queue.getActive()).filter((job) => readCheckpoint(job.data.checkpoint).predictionId !== undefined)
          .length === 4,
      { timeoutMs: 20_000 },
    );
    simulator.setFaults({ accountError: 'unauthenticated' });

    const parked = await waitForCounters(ledger, run, (c) => c.parked === 4, 30_000);
    expect(parked).toMatchObject({ total: 4, parked: 4, failed: 0, succeeded: 0 });
    expect(await ledger.runState(run)).toBe('paused');
    expect((await ledger.pauseCause(run))?.message).toContain('REPLICATE_API_TOKEN');
    const parkedRows = await rowsOf(fixture);
    const firstPrediction = new Map<string, string | undefined>();
    for (const [jobId, row] of parkedRows) {
      expect(row).toMatchObject({ status: 'parked', reason: 'account' });
      expect(row.predictionIds).toHaveLength(1);
      firstPrediction.set(jobId, row.predictionIds?.[0]);
    }
    // The predictions may run (and be billed): their money stays held, nothing is handed back or counted twice.
    expect(await ledger.money(run)).toEqual({ budget: null, reserved: reservations, spent: 0, possiblyBilled: 0 });
    expect(pauseAnnouncements(scene)).toHaveLength(1);
    expect(simulator.stats().creates).toBe(4);

    // The token is fixed; `depthq resume`.
    simulator.setFaults({ accountError: 'none' });
    expect(await resumeRun(queue, ledger, run)).toMatchObject({ current: 'active', released: 4 });
    const done = await waitForCounters(ledger, run, (c) => c.succeeded === 4, 30_000);
    expect(done).toMatchObject({ total: 4, succeeded: 4, parked: 0, failed: 0 });

    const stats = simulator.stats();
    expect(stats.creates).toBe(4);
    expect(stats.inputsBilledMoreThanOnce).toBe(0);
    expect(stats.billedImages).toBe(4);
    expect(await ledger.money(run)).toEqual({
      budget: null,
      reserved: 0,
      spent: costOf(price, stats.billedImages),
      possiblyBilled: 0,
    });
    // Each job stored the prediction it had before the refusal.
    for (const job of fixture.jobs) {
      const jobId = renderJobIdOf(job);
      const row = await ledger.result(run, jobId);
      expect(row?.predictionIds).toEqual([firstPrediction.get(jobId)]);
      expect(row?.predictionId).toBe(firstPrediction.get(jobId));
    }
  }, 60_000);
});
