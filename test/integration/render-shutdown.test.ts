/**
 * The render worker process's life at its edges, with real worker children on the real local stack: a graceful
 * SIGTERM while 20 jobs are in flight, and start-up against a Redis or a Replicate API that is not there.
 */
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { fluxDepthPro } from '../../src/core/models.js';
import { renderJobIdOf } from '../../src/core/render-job.js';
import type { ResultRow } from '../../src/ledger/run-ledger.js';
import { LOCAL_SIMULATOR_TOKEN, type LocalSimulatorOptions } from '../../src/local/stack.js';
import { type RunningSimulator, startSimulator } from '../../src/sim/index.js';
import { prepareRenderRun, type RenderRunFixture, waitForCounters, workerEnvironment } from '../helpers/render-run.js';
import { useLocalStack } from '../helpers/stack.js';
import {
  spawnWorker,
  startWorker,
  useWorkerProcesses,
  waitForCondition,
  waitForExit,
} from '../helpers/worker-process.js';

const stack = useLocalStack({ simulator: false });
const { deferCleanup } = useWorkerProcesses();

async function startOwnSimulator(options: LocalSimulatorOptions): Promise<RunningSimulator> {
  const simulator = await startSimulator({ apiToken: LOCAL_SIMULATOR_TOKEN, outputMaxSide: 256, ...options });
  deferCleanup(() => simulator.close());
  return simulator;
}

/** A port on 127.0.0.1 that refuses connections: taken from the OS, then released. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  return address.port;
}

describe('depthq worker, SIGTERM with jobs in flight', () => {
  it('with 20 jobs in flight: none fails, each finishes or returns to waiting, exit 0 within the deadline; a second worker finishes them without creating or billing any prediction twice', async () => {
    const JOBS = 20;
    const SHUTDOWN_DEADLINE_MS = 3_000;
    // Long predictions, so most still run when the deadline passes; a few short ones may finish inside it.
    const simulator = await startOwnSimulator({
      startDelayMs: { min: 10, max: 50 },
      latencyMs: { min: 300, max: 9_000 },
      // 20 predictions polled every 100–400 ms: more GETs than Replicate's 3,000/min allows, which is not this test.
      requestsPerMinute: 100_000,
    });
    const fixture: RenderRunFixture = await prepareRenderRun(stack(), { images: 10, styles: ['day', 'night'] });
    deferCleanup(() => fixture.close());
    expect(fixture.jobs).toHaveLength(JOBS);
    const env = workerEnvironment(stack(), fixture.prefix, {
      REPLICATE_BASE_URL: simulator.baseUrl,
      REPLICATE_API_TOKEN: LOCAL_SIMULATOR_TOKEN,
      DEPTHQ_SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_DEADLINE_MS),
      // All 20 must start at once (some predictions end within a second): a rate far above the limiter's 10 a second.
      DEPTHQ_CREATES_PER_MINUTE: '100000',
    });

    const first = await startWorker({ env, args: ['--concurrency', String(JOBS)], name: 'first' });
    await waitForCondition(
      `all ${JOBS} jobs active, each with its prediction created`,
      async () => simulator.stats().creates === JOBS && (await fixture.queue.getJobCounts('active')).active === JOBS,
      { timeoutMs: 30_000, workers: [first] },
    );
    const running = simulator.stats().predictions;
    expect(running.starting + running.processing, 'predictions still running at SIGTERM').toBeGreaterThan(0);

    first.signal('SIGTERM');
    // The margin covers closing connections after the deadline, not doing work: no job may run past it.
    const exit = await waitForExit(first, SHUTDOWN_DEADLINE_MS + 4_000);
    expect(exit, first.describe()).toMatchObject({ code: 0, signal: null });
    expect(first.stderr()).toBe('');

    const counts = await fixture.queue.getJobCounts(
      'active',
      'waiting',
      'prioritized',
      'delayed',
      'completed',
      'failed',
    );
    expect(counts, first.describe()).toMatchObject({ active: 0, failed: 0 });
    const returned = (counts.waiting ?? 0) + (counts.prioritized ?? 0) + (counts.delayed ?? 0);
    expect(returned + (counts.completed ?? 0)).toBe(JOBS);
    // The deadline passed with predictions running: some jobs went back to waiting rather than being waited for.
    expect(returned).toBeGreaterThan(0);
    const logged = (message: string) => first.logLines().filter((line) => line.msg === message).length;
    expect(logged('worker closing: job returns to waiting')).toBe(returned);
    expect(logged('stored and recorded')).toBe(counts.completed);
    const afterFirst = await fixture.ledger.counters(fixture.run);
    // Jobs sent back to waiting are `queued` again in the ledger, not left counted as running.
    expect(afterFirst).toMatchObject({
      failed: 0,
      flagged: 0,
      running: 0,
      queued: returned,
      succeeded: counts.completed ?? 0,
    });
    // Nothing created after the deadline: the predictions the returned jobs started are still theirs to adopt.
    const createsAtShutdown = simulator.stats().creates;
    expect(createsAtShutdown).toBe(JOBS);

    const second = await startWorker({ env, args: ['--concurrency', String(JOBS)], name: 'second' });
    const counters = await waitForCounters(fixture.ledger, fixture.run, (c) => c.succeeded === JOBS, 45_000);
    expect(counters, second.describe()).toMatchObject({ total: JOBS, succeeded: JOBS, failed: 0, running: 0 });
    await waitForCondition(
      'every job completed in BullMQ',
      async () => (await fixture.queue.getJobCounts('completed')).completed === JOBS,
      { timeoutMs: 10_000, workers: [second] },
    );
    expect((await fixture.queue.getJobCounts('failed')).failed).toBe(0);

    // The jobs returned to waiting resumed with the predictions they had started: adopted, not created again.
    const stats = simulator.stats();
    expect(stats).toMatchObject({
      creates: JOBS,
      createRequests: JOBS,
      billedImages: JOBS,
      billedPredictions: JOBS,
      inputsBilledMoreThanOnce: 0,
    });
    expect(await fixture.ledger.money(fixture.run)).toMatchObject({
      spent: JOBS * fluxDepthPro.priceMicrosPerImage,
      reserved: 0,
      possiblyBilled: 0,
    });
    for (const { jobId, row } of await resultRows(fixture)) {
      expect(row.predictionIds, jobId).toHaveLength(1);
    }

    second.signal('SIGTERM');
    expect(await waitForExit(second, SHUTDOWN_DEADLINE_MS + 4_000)).toMatchObject({ code: 0, signal: null });
  });
});

/** Every job's ledger row, by job id. */
async function resultRows(fixture: RenderRunFixture): Promise<Array<{ jobId: string; row: ResultRow }>> {
  const rows: Array<{ jobId: string; row: ResultRow }> = [];
  for (const job of fixture.jobs) {
    const jobId = renderJobIdOf(job);
    const row = await fixture.ledger.result(fixture.run, jobId);
    if (row === undefined) throw new Error(`no ledger row for ${jobId}`);
    rows.push({ jobId, row });
  }
  return rows;
}

describe('depthq worker, start-up against a dependency that is not there', () => {
  /** One line on stderr, naming the variable; no stack trace anywhere. */
  function expectOneClearMessage(stderr: string, stdout: string, variable: string): void {
    const lines = stderr.trim().split('\n');
    expect(lines, stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/^depthq: /);
    expect(lines[0]).toContain(variable);
    for (const output of [stderr, stdout]) expect(output).not.toMatch(/^\s+at /m);
  }

  it('REDIS_URL at a closed port: exits non-zero with one message naming REDIS_URL', async () => {
    const port = await closedPort();
    const env = {
      ...workerEnvironment(stack(), 'dq_startup', {}),
      REDIS_URL: `redis://127.0.0.1:${port}`,
      REPLICATE_BASE_URL: `http://127.0.0.1:${await closedPort()}/v1`,
      REPLICATE_API_TOKEN: LOCAL_SIMULATOR_TOKEN,
    };
    const worker = spawnWorker({ env, name: 'no-redis' });
    const exit = await waitForExit(worker, 20_000);
    expect(exit.signal).toBeNull();
    expect(exit.code, worker.describe()).not.toBe(0);
    expectOneClearMessage(worker.stderr(), worker.stdout(), 'REDIS_URL');
    // What failed, not only that something did: the refused address.
    expect(worker.stderr()).toContain(`ECONNREFUSED 127.0.0.1:${port}`);
  });

  it('REPLICATE_BASE_URL at a closed port: exits non-zero with one message naming REPLICATE_BASE_URL', async () => {
    const port = await closedPort();
    const env = workerEnvironment(stack(), 'dq_startup', {
      REPLICATE_BASE_URL: `http://127.0.0.1:${port}/v1`,
      REPLICATE_API_TOKEN: LOCAL_SIMULATOR_TOKEN,
    });
    const worker = spawnWorker({ env, name: 'no-replicate' });
    const exit = await waitForExit(worker, 20_000);
    expect(exit.signal).toBeNull();
    expect(exit.code, worker.describe()).not.toBe(0);
    expectOneClearMessage(worker.stderr(), worker.stdout(), 'REPLICATE_BASE_URL');
    // What failed, not only that something did: the refused address.
    expect(worker.stderr()).toContain(`ECONNREFUSED 127.0.0.1:${port}`);
  });
});
