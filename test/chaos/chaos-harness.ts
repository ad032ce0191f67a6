/**
 * One chaos run, parameterised by its size and its plan: a run of `jobs` render jobs in a fresh stack, `workers` worker
 * processes, the simulator's faults, and the driver (chaos-driver.ts) breaking workers, Redis and S3 until every job has
 * ended. Returns the figures (chaos-figures.ts) read afterwards from the simulator, the ledger and S3; the caller
 * asserts on them. Everything started here is stopped before it returns, whatever happened.
 *
 * Replay: CHAOS_SEED=<the printed seed> picks the same faults, the same victims and the same intervals.
 */
import { randomInt } from 'node:crypto';
import { Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { loadConfig } from '../../src/config/index.js';
import { readCheckpoint } from '../../src/core/checkpoint.js';
import { fluxDepthPro } from '../../src/core/models.js';
import { seededRandom } from '../../src/core/random.js';
import { buildRenderJob, type RenderJob, renderJobIdOf } from '../../src/core/render-job.js';
import { type RunCounters, RunLedger } from '../../src/ledger/run-ledger.js';
import { makeControlImages } from '../../src/local/control-images/index.js';
import { closeConnection, connectProducer, createProducerConnection } from '../../src/queue/connections.js';
import {
  createRenderQueue,
  defaultRenderQueueSettings,
  enqueueRenderJobs,
  type RenderJobData,
} from '../../src/queue/render-queue.js';
import { openRunContext } from '../../src/runs/run-context.js';
import { type VerifyReport, verifyRun } from '../../src/runs/verify-run.js';
import type { Faults } from '../../src/sim/index.js';
import { putBytesObject } from '../../src/storage/s3.js';
import { killAllWorkers } from '../helpers/worker-process.js';
import { type ChaosEvents, type ChaosPlan, driveChaos, WorkerPool } from './chaos-driver.js';
import { type ChaosFigures, classifyStoredKeys, listKeys } from './chaos-figures.js';
import { type ChaosStack, startChaosStack } from './chaos-stack.js';

export interface ChaosScenario {
  readonly name: string;
  /** Control images; each is rendered in every style, so jobs = images × styles. */
  readonly images: number;
  readonly styles: readonly string[];
  readonly plan: ChaosPlan;
  /** The run fails with fewer worker SIGKILLs than this (the jobs ended too soon for the plan). */
  readonly minWorkerKills: number;
  /** Jobs in flight per worker, and across all workers: with the prediction latency, what sets the run's pace. */
  readonly workerConcurrency: number;
  readonly globalConcurrency: number;
  /** How long a prediction spends processing at the simulator. */
  readonly predictionLatencyMs: { readonly min: number; readonly max: number };
  readonly faults: Pick<Faults, 'failureRate' | 'serverErrorRate' | 'connectionResetRate'>;
  /**
   * The run is stuck, and fails, when no job has ended for this long: a job stuck forever is caught whatever the
   * machine's load, which only makes the run slower.
   */
  readonly stuckAfterMs: number;
  /** An outer bound on the whole run, however it progresses. */
  readonly deadlineMs: number;
}

export interface ChaosOutcome {
  readonly figures: ChaosFigures;
  /** Jobs that had not ended when the run stopped, with their BullMQ state and checkpoint: empty when all ended. */
  readonly unfinished: readonly string[];
  readonly timeline: readonly string[];
}

/** The seed of this run: CHAOS_SEED when set (a replay), else a fresh one. */
export function chaosSeed(): number {
  const given = process.env.CHAOS_SEED;
  if (given !== undefined && given !== '') {
    const seed = Number(given);
    if (!Number.isSafeInteger(seed)) throw new Error(`CHAOS_SEED must be a whole number, got "${given}"`);
    return seed;
  }
  return randomInt(1, 2 ** 31);
}

const ENDED: ReadonlyArray<keyof RunCounters> = ['succeeded', 'failed', 'flagged', 'canceled'];

function endedOf(counters: RunCounters): number {
  return ENDED.reduce((sum, status) => sum + counters[status], 0);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Control images in S3 and one job per image and style, in a new run of a new ledger prefix. */
async function prepareRun(stack: ChaosStack, redis: Redis, prefix: string, scenario: ChaosScenario) {
  const run = `chaos-${Date.now().toString(36)}`;
  const images = await makeControlImages({ count: scenario.images, width: 128, height: 96 });
  for (const image of images) {
    await putBytesObject(
      stack.s3,
      { bucket: stack.bucket, key: `controls/${image.name}.png` },
      image.bytes,
      image.contentType,
    );
  }
  const ledger = new RunLedger(redis, prefix);
  await ledger.createRun(run, {
    model: fluxDepthPro.id,
    budgetMicros: null,
    manifest: { name: 'chaos.csv', sha256: '0'.repeat(64) },
    output: { bucket: stack.bucket, prefix: 'out', keyTemplate: '{run}/{style}/{id}.{ext}' },
    defaults: {},
  });
  const jobs: RenderJob[] = images.flatMap((image) =>
    scenario.styles.map((style) =>
      buildRenderJob({
        run,
        rowId: image.name,
        style,
        model: fluxDepthPro.id,
        controlImage: { bucket: stack.bucket, key: `controls/${image.name}.png` },
        input: { prompt: `${image.description}, ${style} style`, steps: 15 },
        output: { bucket: stack.bucket, prefix: 'out' },
        metadata: { source: 'chaos' },
      }),
    ),
  );
  const queue = createRenderQueue(redis, prefix, defaultRenderQueueSettings);
  // Redis goes away twice on purpose: the polling loop retries, and BullMQ would print every refused reconnect.
  queue.on('error', () => undefined);
  await enqueueRenderJobs(queue, ledger, run, jobs);
  return { run, ledger, queue, jobs };
}

/** One line per job that has not ended: id, BullMQ state, the checkpoint's step facts. */
async function describeUnfinished(
  queue: ReturnType<typeof createRenderQueue>,
  ledger: RunLedger,
  run: string,
  jobs: readonly RenderJob[],
): Promise<string[]> {
  const lines: string[] = [];
  for (const job of jobs) {
    const jobId = renderJobIdOf(job);
    const row = await ledger.result(run, jobId);
    if (row !== undefined && ENDED.includes(row.status as keyof RunCounters)) continue;
    const bull = await Job.fromId<RenderJobData>(queue, jobId);
    const state = bull === undefined ? 'missing' : await bull.getState();
    const checkpoint = bull === undefined ? undefined : readCheckpoint(bull.data.checkpoint);
    lines.push(
      `${jobId}: row ${row?.status ?? 'none'}, BullMQ ${state} (attempts ${bull?.attemptsMade ?? '-'}), ` +
        `checkpoint ${JSON.stringify(checkpoint)}`,
    );
  }
  return lines;
}

/**
 * `depthq verify`'s audit of the run, the oracle: outputs and sidecars against the ledger, the ledger against a
 * recount, and the simulator's predictions against the jobs. The faults are turned off first: the chaos is over, and
 * the audit's listing of predictions is not what is under test.
 */
async function verifyAfterChaos(
  stack: ChaosStack,
  config: ReturnType<typeof loadConfig>,
  run: string,
): Promise<VerifyReport> {
  stack.simulator.setFaults({ failureRate: 0, serverErrorRate: 0, connectionResetRate: 0 });
  const context = await openRunContext(config, 'chaos-verify');
  try {
    return await verifyRun(context, run, { s3: stack.s3 });
  } finally {
    await context.close();
  }
}

export async function runChaosScenario(scenario: ChaosScenario, seed: number): Promise<ChaosOutcome> {
  const started = Date.now();
  const random = seededRandom(seed);
  const timeline: string[] = [];
  const log = (line: string) => timeline.push(`+${((Date.now() - started) / 1000).toFixed(1)}s ${line}`);
  const stack = await startChaosStack({
    bucket: 'chaos-out',
    simulator: {
      startDelayMs: { min: 5, max: 50 },
      latencyMs: scenario.predictionLatencyMs,
      outputMaxSide: 64,
      // The only 429s are the planned bursts, not the account's token buckets.
      createsPerMinute: 1_000_000,
      requestsPerMinute: 1_000_000,
      faults: { seed },
    },
  });
  const prefix = `chaos_${seed.toString(36)}`;
  const env: Record<string, string> = {
    ...stack.env(),
    DEPTHQ_PREFIX: prefix,
    DEPTHQ_WORKER_CONCURRENCY: String(scenario.workerConcurrency),
    DEPTHQ_GLOBAL_CONCURRENCY: String(scenario.globalConcurrency),
    DEPTHQ_CREATES_PER_MINUTE: '100000',
    // A killed worker's jobs move on after 1–2 lock durations (docs/stack-facts.md).
    DEPTHQ_LOCK_DURATION_MS: '4000',
    DEPTHQ_STALLED_INTERVAL_MS: '2000',
    DEPTHQ_BACKOFF_BASE_MS: '200',
    DEPTHQ_POLL_INITIAL_MS: '100',
    DEPTHQ_POLL_MAX_MS: '500',
    DEPTHQ_CREATE_WAIT_SECONDS: '2',
  };
  // The harness's own connection fails fast while Redis is down; its reads are retried by the polling loop.
  const redis = createProducerConnection(stack.redis.url, { name: 'chaos-harness' });
  redis.on('error', () => undefined);
  const events: ChaosEvents = {
    workerKills: 0,
    redisCrashes: 0,
    s3Restarts: 0,
    throttleBursts: 0,
    workersStarted: 0,
    unplannedExits: [],
    timeline,
  };
  try {
    await connectProducer(redis);
    const { run, ledger, queue, jobs } = await prepareRun(stack, redis, prefix, scenario);
    const config = loadConfig(env);
    log(`run ${run}: ${jobs.length} jobs enqueued under prefix ${config.prefix}`);
    stack.simulator.setFaults({ ...scenario.faults, seed });

    const pool = new WorkerPool(env, events, log);
    const runStarted = Date.now();
    pool.fill(scenario.plan.workers);
    let counters = await ledger.counters(run);
    let abandoned = false;
    const allEnded = () => endedOf(counters) >= jobs.length;
    const finished = () => allEnded() || abandoned;
    const driving = driveChaos({
      plan: scenario.plan,
      stack,
      pool,
      events,
      random,
      progress: () => endedOf(counters) / jobs.length,
      finished,
      log,
    });
    let driverError: unknown;
    driving.catch((error: unknown) => {
      driverError = error;
    });
    const deadline = started + scenario.deadlineMs;
    let lastSnapshot = 0;
    let lastEnded = { count: 0, at: Date.now() };
    const stuck = () => Date.now() - lastEnded.at > scenario.stuckAfterMs;
    while (!allEnded() && Date.now() < deadline && !stuck() && driverError === undefined) {
      await sleep(250);
      counters = await ledger.counters(run).catch(() => counters);
      if (endedOf(counters) > lastEnded.count) lastEnded = { count: endedOf(counters), at: Date.now() };
      if (Date.now() - lastSnapshot >= 10_000) {
        lastSnapshot = Date.now();
        log(
          `progress: ${endedOf(counters)}/${jobs.length} ended, ${counters.running} running, ${counters.queued} queued`,
        );
      }
    }
    const endedAt = Date.now();
    log(allEnded() ? 'every job ended' : stuck() ? `no job ended for ${scenario.stuckAfterMs} ms` : 'deadline passed');
    // A run that did not end tells the driver to stop after its current round.
    abandoned = true;
    await driving.catch(() => undefined);
    const unfinished = allEnded() ? [] : await describeUnfinished(queue, ledger, run, jobs);
    if (driverError !== undefined) throw driverError;
    // The ledger row is written just before the job's move to completed in BullMQ: let the last moves land.
    const completed = async () => (await queue.getJobCounts('completed')).completed ?? 0;
    const settleBy = Date.now() + 30_000;
    while (unfinished.length === 0 && (await completed()) < counters.succeeded && Date.now() < settleBy) {
      await sleep(200);
    }
    await killAllWorkers();
    log('workers stopped');
    const verify = await verifyAfterChaos(stack, loadConfig(env), run);
    log(`depthq verify: ${verify.ok ? 'ok' : `${verify.problems.length} problems`}`);

    const outputs = classifyStoredKeys(
      await listKeys(stack.s3, stack.bucket, `out/${run}/`),
      jobs.map((job) => job.output.key),
    );
    const figures: ChaosFigures = {
      seed,
      jobs: jobs.length,
      workers: scenario.plan.workers,
      events,
      counters: await ledger.counters(run),
      completedInQueue: await completed(),
      stats: stack.simulator.stats(),
      ...outputs,
      money: await ledger.money(run),
      priceMicros: fluxDepthPro.priceMicrosPerImage,
      durationMs: endedAt - runStarted,
      verify,
    };
    await queue.close();
    return { figures, unfinished, timeline };
  } finally {
    await killAllWorkers();
    await closeConnection(redis).catch(() => undefined);
    await stack.stop();
  }
}
