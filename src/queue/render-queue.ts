/**
 * The render queue: its name, the options every render job is added with, the worker settings that make a killed
 * worker's jobs move on in seconds, and `enqueueRenderJobs`, the one way jobs enter it.
 */
import { type Job, Queue, type WorkerOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import { backoffDelayMs } from '../core/errors.js';
import { type RenderJob, renderJobIdOf } from '../core/render-job.js';
import type { RunLedger } from '../ledger/run-ledger.js';

export const RENDER_QUEUE_NAME = 'render';

/** What BullMQ keeps in `job.data`: the payload plus the pipeline's checkpoint (see core/checkpoint.ts). */
export type RenderJobData = RenderJob & { readonly checkpoint?: unknown };

export interface RenderQueueSettings {
  /**
   * Prediction creates per minute, across every worker: Replicate's account limit, let out as a smooth rate with short
   * bursts (`createLimiterOf`). @defaultValue 600
   */
  readonly createsPerMinute: number;
  /** Jobs in flight across every worker (`queue.setGlobalConcurrency`). @defaultValue 64 */
  readonly globalConcurrency: number;
  /** Jobs in flight in one worker process. @defaultValue 16 */
  readonly workerConcurrency: number;
  /** Attempts per job before it fails for good; throttling and parking spend none. @defaultValue 8 */
  readonly attempts: number;
  /**
   * How long a worker's lock on a job lasts (renewed at half of it). A killed worker's jobs are picked up again after
   * 1–2 × this (docs/stack-facts.md), so it is short; a longer event-loop stall than this loses the lock, and the
   * fenced checkpoints make that safe. @defaultValue 6000
   */
  readonly lockDurationMs: number;
  /** How often workers look for stalled jobs. @defaultValue 3000 */
  readonly stalledIntervalMs: number;
  /**
   * Stalls a job survives. Every step resumes from its checkpoint, so a stall (a SIGKILLed worker, a deploy) is harmless
   * and BullMQ's default of 1 — fail for good on the second stall — would turn deploys into failures. @defaultValue 20
   */
  readonly maxStalledCount: number;
  /** First retry delay after a transient failure; doubles up to `backoffCapMs`, full jitter. @defaultValue 2000 */
  readonly backoffBaseMs: number;
  /** @defaultValue 300000 */
  readonly backoffCapMs: number;
}

export const defaultRenderQueueSettings: RenderQueueSettings = {
  createsPerMinute: 600,
  globalConcurrency: 64,
  workerConcurrency: 16,
  attempts: 8,
  lockDurationMs: 6_000,
  stalledIntervalMs: 3_000,
  maxStalledCount: 20,
  backoffBaseMs: 2_000,
  backoffCapMs: 300_000,
};

/** The backoff type render jobs are added with; the worker's `backoffStrategy` computes it. */
export const RENDER_BACKOFF_TYPE = 'depthq-jitter';

export function renderJobOptions(settings: RenderQueueSettings): Queue['defaultJobOptions'] {
  return {
    attempts: settings.attempts,
    backoff: { type: RENDER_BACKOFF_TYPE },
    // The run ledger is the record; BullMQ keeps finished jobs only long enough to look at them.
    removeOnComplete: { age: 24 * 3600, count: 50_000 },
    removeOnFail: { age: 7 * 24 * 3600, count: 50_000 },
  };
}

/** BullMQ's worker limiter: at most `max` jobs start in each window of `duration` ms, across every worker. */
export interface CreateLimiter {
  readonly max: number;
  readonly duration: number;
}

/** The limiter's windows are this much longer than the rate alone asks for (see createLimiterOf). */
const LIMITER_SLACK = 1.02;

/**
 * The limiter that lets creates out as a smooth rate with short bursts, the shape of the provider's own limit (a token
 * bucket: "600 a minute, short bursts allowed"). BullMQ's limiter is a fixed window counted in Redis (INCR, then
 * PEXPIRE on the first job of a window), so `{ max: 600, duration: 60_000 }` let a fleet start 600 jobs in the first
 * second, and the provider answered 429 to all but its burst. Here the window is about a second and holds a second's
 * share: `max` = ⌊R/60⌋ (at least 1) in `duration` = max·60000/R ms plus 2 %, so never more than 0.98·R a minute, and at
 * most 2·max in any short span (the end of one window and the start of the next): 20 at 600/min, a third of the burst
 * the simulator allows (src/sim/rate-limit.ts). Below 60 a minute it is one job per 60000/R ms + 2 %: the 2 % is the
 * slack that keeps an account with a burst of 1 (6 a minute: 200 ms) clear of a 429 when a create leaves its worker a
 * little later than the one before it. docs/queue-and-ledger.md, "The create limiter".
 */
export function createLimiterOf(createsPerMinute: number): CreateLimiter {
  if (!Number.isFinite(createsPerMinute) || createsPerMinute <= 0) {
    throw new RangeError(`createsPerMinute must be a number > 0, got ${createsPerMinute}`);
  }
  const max = Math.max(1, Math.floor(createsPerMinute / 60));
  return { max, duration: Math.ceil((max * 60_000 * LIMITER_SLACK) / createsPerMinute) };
}

/** The Worker options every render worker uses; the connection and the processor are the caller's. */
export function renderWorkerOptions(
  settings: RenderQueueSettings,
  random: () => number = Math.random,
): Omit<WorkerOptions, 'connection'> {
  return {
    concurrency: settings.workerConcurrency,
    limiter: createLimiterOf(settings.createsPerMinute),
    lockDuration: settings.lockDurationMs,
    stalledInterval: settings.stalledIntervalMs,
    maxStalledCount: settings.maxStalledCount,
    settings: {
      backoffStrategy: (attemptsMade: number) =>
        backoffDelayMs({
          attempt: Math.max(1, attemptsMade),
          baseMs: settings.backoffBaseMs,
          capMs: settings.backoffCapMs,
          random,
        }),
    },
  };
}

export function createRenderQueue(
  connection: Redis,
  prefix: string,
  settings: RenderQueueSettings,
): Queue<RenderJobData> {
  return new Queue<RenderJobData>(RENDER_QUEUE_NAME, {
    connection,
    prefix,
    defaultJobOptions: renderJobOptions(settings),
  });
}

/** The key prefix of the queue's job hashes, `<prefix>:<queue>`: what fenced checkpoint writes address. */
export function queueKeyPrefixOf(prefix: string): string {
  return `${prefix}:${RENDER_QUEUE_NAME}`;
}

export interface EnqueueOutcome {
  /** Jobs that were new to the run: a `queued` row registered and the job added. */
  readonly added: number;
  /**
   * Jobs the run had (a `queued` row) but the queue did not — an enqueue that died between the ledger rows and
   * `addBulk` — added now under the same id.
   */
  readonly restored: number;
  /** Jobs the run had already, left exactly as they were (their BullMQ job, or their ended row). */
  readonly existing: number;
}

/** Jobs per `addBulk` call: one round trip each, small enough not to block Redis noticeably. */
const ENQUEUE_BATCH = 1_000;

/** Whether BullMQ holds the job in any state (`getJobState` says `unknown` for a job it does not have). */
async function queueHoldsJob(queue: Queue<RenderJobData>, jobId: string): Promise<boolean> {
  return (await queue.getJobState(jobId)) !== 'unknown';
}

/**
 * Enqueues render jobs with deterministic ids (run + row + style). The ledger's `queued` rows are written first, then
 * the jobs are added — only the ones whose row is `queued` and that BullMQ does not hold: new jobs, and jobs of an
 * enqueue that died between its rows and its `addBulk` (without this they would stay `queued` for ever). A job whose row
 * says it ran (`running`, `parked`) or ended is never added again, even after BullMQ removed it at the end of its
 * retention: enqueueing the same jobs again never renders (or pays for) an image twice.
 */
export async function enqueueRenderJobs(
  queue: Queue<RenderJobData>,
  ledger: RunLedger,
  run: string,
  jobs: readonly RenderJob[],
): Promise<EnqueueOutcome> {
  let added = 0;
  let restored = 0;
  for (let start = 0; start < jobs.length; start += ENQUEUE_BATCH) {
    const batch = jobs.slice(start, start + ENQUEUE_BATCH);
    for (const job of batch) {
      if (job.run !== run) throw new RangeError(`job ${renderJobIdOf(job)} belongs to run ${job.run}, not ${run}`);
    }
    const jobIds = batch.map(renderJobIdOf);
    const rowsBefore = await ledger.resultsOf(run, jobIds);
    // Only a `queued` row can lack its job (the ledger never lacks a row for a job): only those are looked up.
    const held = await Promise.all(
      jobIds.map((jobId, index) =>
        rowsBefore[index]?.status === 'queued' ? queueHoldsJob(queue, jobId) : Promise.resolve(false),
      ),
    );
    added += await ledger.registerJobs(
      run,
      batch.map((job, index) => ({
        jobId: jobIds[index] ?? renderJobIdOf(job),
        row: {
          rowId: job.rowId,
          style: job.style,
          outputKey: job.output.key,
          seed: Number(job.input.seed),
          // Prompt and metadata columns belong in the row from the start: reports list jobs that never ran too.
          ...(typeof job.input.prompt === 'string' ? { prompt: job.input.prompt } : {}),
          ...(Object.keys(job.metadata).length > 0 ? { metadata: job.metadata } : {}),
        },
        // Kept beside the row: `depthq retry` rebuilds the job from it after BullMQ removed it.
        payload: job,
      })),
    );
    const missing = batch.flatMap((job, index) => {
      const before = rowsBefore[index];
      if (held[index] === true || (before !== undefined && before.status !== 'queued')) return [];
      if (before !== undefined) restored += 1;
      return [{ name: run, data: job, opts: { jobId: jobIds[index] ?? renderJobIdOf(job) } }];
    });
    if (missing.length > 0) await queue.addBulk(missing);
  }
  return { added, restored, existing: jobs.length - added - restored };
}

/** A render job as the processor sees it. */
export type RenderQueueJob = Job<RenderJobData>;
