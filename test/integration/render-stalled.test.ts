/**
 * "Job stalled more than allowable limit": a job whose worker stops answering (SIGSTOP: the process keeps its sockets
 * but runs no code — a swapped-out or frozen host) more often than `maxStalledCount` is failed by BullMQ without the
 * processor running. Its ledger row must still end (`failed`, reason `stalled`) and its money be settled by the money
 * rule from its last checkpoint, by the worker that saw the failure — never left `running` with its reservation held.
 *
 * Real processes on the real local stack: worker A is a `depthq worker` child, stopped at a state the test observes
 * (a prediction running; the control image being read, before any create). The stalled checker is a BullMQ Worker with
 * `maxStalledCount: 0` that processes nothing (depthq's workers survive 20 stalls, so reaching the limit for real would
 * take 21 stops); it marks the job failed-on-next-start once A's lock expires. Worker B, an in-process render worker,
 * takes the job, BullMQ fails it at once, and B's `failed` listener settles it.
 */
import { Job, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { readCheckpoint } from '../../src/core/checkpoint.js';
import { type RenderJob, renderJobIdOf, reservationOfJob } from '../../src/core/render-job.js';
import { LOCAL_SIMULATOR_TOKEN, type LocalSimulatorOptions } from '../../src/local/stack.js';
import { STALLED_FAILURE } from '../../src/pipeline/stalled-jobs.js';
import { ReplicateProvider } from '../../src/providers/replicate.js';
import { RENDER_QUEUE_NAME } from '../../src/queue/render-queue.js';
import { cancelRun } from '../../src/runs/cancel-run.js';
import { type RunningSimulator, startSimulator } from '../../src/sim/index.js';
import { startRenderWorker } from '../../src/worker/start.js';
import { type DelayRule, type LatencyProxy, startLatencyProxy } from '../helpers/latency-proxy.js';
import { prepareRenderRun, type RenderRunFixture, waitForCounters, workerEnvironment } from '../helpers/render-run.js';
import { useLocalStack } from '../helpers/stack.js';
import { startWorker, useWorkerProcesses, type WorkerProcess, waitForCondition } from '../helpers/worker-process.js';

const stack = useLocalStack({ simulator: false });
const { deferCleanup } = useWorkerProcesses();

interface Scene {
  readonly fixture: RenderRunFixture;
  readonly job: RenderJob;
  readonly jobId: string;
  readonly simulator: RunningSimulator;
  readonly s3Proxy: LatencyProxy;
  readonly env: Record<string, string>;
}

async function setUpScene(options: {
  readonly simulator: LocalSimulatorOptions;
  readonly s3Delay?: (job: RenderJob) => DelayRule;
}): Promise<Scene> {
  const s3 = stack().s3;
  if (s3 === undefined) throw new Error('the stack has no S3');
  const simulator = await startSimulator({
    apiToken: LOCAL_SIMULATOR_TOKEN,
    startDelayMs: { min: 10, max: 30 },
    outputMaxSide: 64,
    ...options.simulator,
  });
  deferCleanup(() => simulator.close());
  const s3Proxy = await startLatencyProxy({ target: s3.endpoint });
  deferCleanup(() => s3Proxy.close());
  const provider = { REPLICATE_BASE_URL: simulator.baseUrl, REPLICATE_API_TOKEN: LOCAL_SIMULATOR_TOKEN };
  const fixture = await prepareRenderRun(stack(), { images: 1, styles: ['day'], env: provider });
  deferCleanup(() => fixture.close());
  const job = fixture.jobs[0];
  if (job === undefined) throw new Error('the run has no job');
  if (options.s3Delay) s3Proxy.setDelay(options.s3Delay(job));
  // Worker A's S3 goes through the proxy, so the test can hold its reads of the control image.
  const env = workerEnvironment(stack(), fixture.prefix, { ...provider, S3_ENDPOINT: s3Proxy.url });
  return { fixture, job, jobId: renderJobIdOf(job), simulator, s3Proxy, env };
}

async function bullJob(scene: Scene): Promise<Job> {
  const job = await Job.fromId(scene.fixture.queue, scene.jobId);
  if (job === undefined) throw new Error(`job ${scene.jobId} is gone from BullMQ`);
  return job;
}

/**
 * Stops worker A, lets a stall checker with `maxStalledCount: 0` find its job once A's lock expired, then has worker B
 * take it: BullMQ fails it without running the processor, and B's `failed` listener settles it.
 */
async function stallAndFail(scene: Scene, workerA: WorkerProcess): Promise<void> {
  const checker = await stallChecker(scene, workerA, { takesJobs: false });
  await waitForCondition(
    'the stalled job marked to fail on its next start',
    async () => {
      const job = await bullJob(scene);
      return job.deferredFailure === STALLED_FAILURE && (await job.getState()) === 'waiting';
    },
    { timeoutMs: 30_000 },
  );
  await checker.close();
  const workerB = await startRenderWorker(scene.fixture.config, { concurrency: 1 });
  deferCleanup(() => workerB.close(2_000));
}

/**
 * Stops worker A and starts a BullMQ Worker with `maxStalledCount: 0` on the queue. `takesJobs`: it also takes the job
 * it marked, so BullMQ fails it there — a worker without depthq's `failed` listener, as one that died before settling.
 */
async function stallChecker(
  scene: Scene,
  workerA: WorkerProcess,
  options: { readonly takesJobs: boolean },
): Promise<Worker<unknown, void>> {
  workerA.pause();
  const connection = new Redis(scene.fixture.config.redisUrl, { maxRetriesPerRequest: null });
  const checker = new Worker<unknown, void>(
    RENDER_QUEUE_NAME,
    async (): Promise<void> => {
      throw new Error('the stall checker runs no job');
    },
    {
      connection,
      prefix: scene.fixture.prefix,
      autorun: options.takesJobs,
      maxStalledCount: 0,
      stalledInterval: 500,
    },
  );
  deferCleanup(async () => {
    await checker.close();
    connection.disconnect();
  });
  if (!options.takesJobs) await checker.startStalledCheckTimer();
  return checker;
}

describe('a job BullMQ fails as stalled, without running the processor, is settled by the money rule', () => {
  it('its prediction running: the row is failed (stalled) and the reservation counted possibly billed', async () => {
    const scene = await setUpScene({ simulator: { latencyMs: { min: 60_000, max: 61_000 } } });
    const { fixture, simulator } = scene;
    const { ledger, run } = fixture;
    const workerA = await startWorker({ env: scene.env, name: 'worker-a' });
    await waitForCondition(
      'a prediction running for the job',
      async () => readCheckpoint((await bullJob(scene)).data.checkpoint).predictionId !== undefined,
      { timeoutMs: 20_000, workers: [workerA] },
    );
    const predictionId = readCheckpoint((await bullJob(scene)).data.checkpoint).predictionId;
    expect(await ledger.counters(run)).toMatchObject({ running: 1 });

    await stallAndFail(scene, workerA);
    const counters = await waitForCounters(ledger, run, (c) => c.failed === 1, 20_000);
    expect(counters).toMatchObject({ total: 1, failed: 1, running: 0 });
    const failed = await bullJob(scene);
    expect(await failed.getState()).toBe('failed');
    expect(failed.failedReason).toBe(STALLED_FAILURE);
    expect(await ledger.result(run, scene.jobId)).toMatchObject({
      status: 'failed',
      reason: 'stalled',
      predictionId,
      predictionIds: [predictionId],
    });
    // The prediction may run to its end and be billed: possibly billed, to the micro-dollar; nothing held.
    expect(await ledger.money(run)).toEqual({
      budget: null,
      reserved: 0,
      spent: 0,
      possiblyBilled: reservationOfJob(scene.job),
    });
    const stats = simulator.stats();
    expect(stats.creates).toBe(1);
    expect(stats.inputsBilledMoreThanOnce).toBe(0);
  }, 90_000);

  it('before any create (reading the control image): the row is failed (stalled) and the reservation released', async () => {
    const scene = await setUpScene({
      simulator: { latencyMs: { min: 100, max: 200 } },
      // Worker A's reads of the control image, between its reservation and its create, are held for a minute.
      s3Delay: (job) => (request) =>
        decodeURIComponent(request.path.split('?')[0] ?? '') === `/${job.controlImage.bucket}/${job.controlImage.key}`
          ? 60_000
          : 0,
    });
    const { fixture, simulator, s3Proxy } = scene;
    const { ledger, run } = fixture;
    const workerA = await startWorker({ env: scene.env, name: 'worker-a' });
    await waitForCondition(
      'the job reserved and reading its control image',
      async () =>
        (await ledger.counters(run)).running === 1 &&
        s3Proxy.inFlight().some((request) => request.path.includes(scene.job.controlImage.key)),
      { timeoutMs: 20_000, workers: [workerA] },
    );
    expect((await ledger.money(run)).reserved).toBe(reservationOfJob(scene.job));

    await stallAndFail(scene, workerA);
    await waitForCounters(ledger, run, (c) => c.failed === 1, 20_000);
    expect(await ledger.result(run, scene.jobId)).toMatchObject({ status: 'failed', reason: 'stalled' });
    expect(await ledger.money(run)).toEqual({ budget: null, reserved: 0, spent: 0, possiblyBilled: 0 });
    const stats = simulator.stats();
    expect(stats.createRequests).toBe(0);
    expect(stats.inputsBilledMoreThanOnce).toBe(0);
  }, 90_000);

  it('failed by a worker that died before settling it: the next worker to start settles it', async () => {
    const scene = await setUpScene({ simulator: { latencyMs: { min: 60_000, max: 61_000 } } });
    const { fixture, simulator } = scene;
    const { ledger, run } = fixture;
    const workerA = await startWorker({ env: scene.env, name: 'worker-a' });
    await waitForCondition(
      'a prediction running for the job',
      async () => readCheckpoint((await bullJob(scene)).data.checkpoint).predictionId !== undefined,
      { timeoutMs: 20_000, workers: [workerA] },
    );
    const checker = await stallChecker(scene, workerA, { takesJobs: true });
    await waitForCondition('the job failed by BullMQ', async () => (await bullJob(scene)).finishedOn !== undefined, {
      timeoutMs: 30_000,
    });
    await checker.close();
    expect(await ledger.counters(run)).toMatchObject({ running: 1, failed: 0 });

    const workerB = await startRenderWorker(fixture.config, { concurrency: 1 });
    deferCleanup(() => workerB.close(2_000));
    await waitForCounters(ledger, run, (c) => c.failed === 1, 20_000);
    expect(await ledger.result(run, scene.jobId)).toMatchObject({ status: 'failed', reason: 'stalled' });
    expect(await ledger.money(run)).toEqual({
      budget: null,
      reserved: 0,
      spent: 0,
      possiblyBilled: reservationOfJob(scene.job),
    });
    expect(simulator.stats()).toMatchObject({ creates: 1, inputsBilledMoreThanOnce: 0 });
  }, 90_000);

  it('failed by a worker that died before settling it: `depthq cancel` settles it by the same rule', async () => {
    const scene = await setUpScene({ simulator: { latencyMs: { min: 60_000, max: 61_000 } } });
    const { fixture, simulator } = scene;
    const { ledger, queue, run } = fixture;
    const workerA = await startWorker({ env: scene.env, name: 'worker-a' });
    await waitForCondition(
      'a prediction running for the job',
      async () => readCheckpoint((await bullJob(scene)).data.checkpoint).predictionId !== undefined,
      { timeoutMs: 20_000, workers: [workerA] },
    );
    const checker = await stallChecker(scene, workerA, { takesJobs: true });
    await waitForCondition('the job failed by BullMQ', async () => (await bullJob(scene)).finishedOn !== undefined, {
      timeoutMs: 30_000,
    });
    await checker.close();
    expect((await bullJob(scene)).failedReason).toBe(STALLED_FAILURE);
    // Nobody settled it: the row says running and the reservation is held.
    expect(await ledger.counters(run)).toMatchObject({ running: 1, failed: 0 });
    expect((await ledger.money(run)).reserved).toBe(reservationOfJob(scene.job));

    const provider = new ReplicateProvider({ apiToken: LOCAL_SIMULATOR_TOKEN, baseUrl: simulator.baseUrl });
    const outcome = await cancelRun(queue, ledger, provider, run);
    expect(outcome).toMatchObject({ ended: 1, leftToWorkers: 0, problems: [] });
    expect(await ledger.result(run, scene.jobId)).toMatchObject({ status: 'failed', reason: 'stalled' });
    expect(await ledger.money(run)).toEqual({
      budget: null,
      reserved: 0,
      spent: 0,
      possiblyBilled: reservationOfJob(scene.job),
    });
    const stats = simulator.stats();
    expect(stats.creates).toBe(1);
    expect(stats.inputsBilledMoreThanOnce).toBe(0);
  }, 90_000);
});
