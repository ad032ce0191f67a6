/**
 * `depthq retry`: requeues a run's jobs that ended without an image — `failed` ones with the same seed (a new attempt at
 * the same image), `flagged` ones with a new, recorded seed (the content filter refuses the same input every time).
 * A job that succeeded is never touched: its ledger row must say failed/flagged and its BullMQ job must be in the failed
 * set, and the move back to waiting is BullMQ's atomic `retry` out of that set.
 *
 * The job keeps its id (BullMQ `job.retry()` moves it from failed to waiting), so ids stay unique and the ledger row,
 * the output key and the job stay one. Retry keeps what was paid (`checkpointForRetry` in core/render-state.ts):
 * - a same-seed retry resumes the prediction the job already has, while the provider still holds it: a succeeded one
 *   is stored (not created again), a running one awaited, a create whose answer was lost looked for. Its settlement is
 *   reopened into its reservation (`reopenSettlement`), so it settles once more by what that prediction turns out to be;
 * - a job with no prediction, a failed one, one past the provider's retention, or a reseeded one, starts anew: its
 *   settlement is cleared (`clearSettlement`: its money stays counted) and the new life reserves and settles its own;
 * - either way the ids of every prediction made so far are kept (the invoice lists them), once each;
 * - its ledger row goes back to `queued` (the counters move with it) once BullMQ moved it, and only over the row it had:
 *   a retry that BullMQ refuses (another retry moved the job first) leaves the row as it is.
 * Each retry starts with a fresh set of attempts (`resetAttemptsMade`): the row's `attempts` then counts the attempts
 * since the retry, and `predictionIds` keeps the whole history.
 *
 * A failed job whose BullMQ job was removed (after `removeOnFail`'s retention) is rebuilt from the payload the ledger
 * keeps beside its row (`RunLedger.payload`, written when the job was enqueued) and added again under the same id. Its
 * checkpoint went with the BullMQ job, so it starts anew, keeping what the row knows (its prediction ids); a job
 * enqueued by a depthq that kept no payloads is reported instead.
 */
import type { Job, Queue } from 'bullmq';
import pLimit from 'p-limit';
import { type Checkpoint, emptyCheckpoint, readCheckpoint } from '../core/checkpoint.js';
import { coerceError, UsageError } from '../core/errors.js';
import { extensionOfOutputFormat } from '../core/image-type.js';
import { joinOutputPrefix, renderOutputKey } from '../core/keys.js';
import { findModel, outputFormatOf } from '../core/models.js';
import { parseRenderJob, type RenderJob } from '../core/render-job.js';
import { checkpointForRetry, type RetryResume } from '../core/render-state.js';
import { predictionFieldsOf, type ResultRow, type RunLedger, type RunMeta } from '../ledger/run-ledger.js';
import type { RenderJobData } from '../queue/render-queue.js';
import { nextSeedAfter } from './reseed.js';

export interface RetrySelection {
  /** Jobs whose row is `failed` (and jobs BullMQ failed before the pipeline could record it). */
  readonly failed: boolean;
  /** Jobs whose row is `flagged`; needs `reseed`. */
  readonly flagged: boolean;
  /** Give each requeued flagged job its next derived seed. */
  readonly reseed: boolean;
}

export interface RequeuedJob {
  readonly jobId: string;
  readonly status: 'failed' | 'flagged';
  readonly seed: number;
  /** The seed before the retry, when it changed. */
  readonly previousSeed?: number;
}

export interface SkippedJob {
  readonly jobId: string;
  readonly why: string;
}

export interface RetryOutcome {
  readonly requeued: readonly RequeuedJob[];
  readonly skipped: readonly SkippedJob[];
}

/** Checks the flags together: what to retry, and that a flagged image is never retried with the seed it was refused with. */
export function checkRetrySelection(selection: RetrySelection): void {
  if (selection.flagged && !selection.reseed) {
    throw new UsageError(
      '--flagged needs --reseed: the content filter refuses the same input and seed every time, so a flagged image ' +
        'is retried only with a new seed',
    );
  }
  if (selection.reseed && !selection.flagged) {
    throw new UsageError(
      '--reseed applies to --flagged jobs only: failed jobs are retried with their recorded seed, so that what is ' +
        'rendered is what the manifest asked for',
    );
  }
  if (!selection.failed && !selection.flagged) throw new UsageError('nothing to retry: give --failed and/or --flagged');
}

/** Jobs looked at (BullMQ reads and writes) at once. */
const RETRY_CONCURRENCY = 16;

/** What a retry needs to know of the provider's clock: whether a job's prediction can still be resumed. */
export interface RetryResumeSettings {
  readonly retentionMs: number;
  readonly marginMs: number;
  readonly nowMs?: number;
}

/** The retried job's checkpoint: it resumes the prediction it has when it can (see `checkpointForRetry`). */
function retriedCheckpoint(data: unknown, sameSeed: boolean, resume: RetryResumeSettings): RetryResume {
  let old: Checkpoint;
  try {
    old = readCheckpoint(data);
  } catch {
    // The ledger row keeps the prediction ids of an unreadable checkpoint; the job starts clean.
    return { checkpoint: emptyCheckpoint, resumesPrediction: false };
  }
  return checkpointForRetry(old, sameSeed, { ...resume, nowMs: resume.nowMs ?? Date.now() });
}

/** What every job of one `retryRunJobs` call shares. */
interface RetryContext {
  readonly queue: Queue<RenderJobData>;
  readonly ledger: RunLedger;
  readonly run: string;
  readonly meta: RunMeta;
  readonly resume: RetryResumeSettings;
}

/** One job to retry: its ledger row as read, what it ended as, and whether it gets a new seed. */
interface RetryCandidate {
  readonly jobId: string;
  readonly row: ResultRow;
  readonly status: 'failed' | 'flagged';
  readonly reseed: boolean;
}

/** The payload of the job's next life: reseeded, or as it was. */
interface NextLife {
  readonly job: RenderJob;
  /** The seed before the retry, when it changed. */
  readonly previousSeed: number | undefined;
}

function nextLifeOf(payload: RenderJob, candidate: RetryCandidate, meta: RunMeta): NextLife {
  return candidate.reseed ? reseeded(payload, meta) : { job: payload, previousSeed: undefined };
}

/** Writes the `queued` row over the row read (compare-and-set) and says what was requeued. */
async function requeued(
  context: RetryContext,
  candidate: RetryCandidate,
  next: NextLife,
  checkpoint: Checkpoint,
): Promise<RequeuedJob> {
  const { jobId, row, status } = candidate;
  await context.ledger.replaceResultIf(context.run, jobId, row, queuedRowOf(row, next.job, checkpoint));
  return {
    jobId,
    status,
    seed: Number(next.job.input.seed),
    ...(next.previousSeed === undefined ? {} : { previousSeed: next.previousSeed }),
  };
}

/** The job's payload with its next derived seed, and its output key re-rendered when the key contains the seed. */
function reseeded(payload: RenderJob, meta: RunMeta): { readonly job: RenderJob; readonly previousSeed: number } {
  const previousSeed = Number(payload.input.seed);
  const { seed } = nextSeedAfter({ run: payload.run, rowId: payload.rowId, style: payload.style }, previousSeed);
  const input = { ...payload.input, seed };
  let key = payload.output.key;
  const model = findModel(payload.model);
  if (meta.output.keyTemplate.includes('{seed}') && model !== undefined) {
    key = joinOutputPrefix(
      meta.output.prefix,
      renderOutputKey(meta.output.keyTemplate, {
        run: payload.run,
        id: payload.rowId,
        style: payload.style,
        seed,
        ext: extensionOfOutputFormat(outputFormatOf(model, input)),
        model: model.id,
        meta: payload.metadata,
      }),
    );
  }
  return {
    job: { ...payload, input, seedSource: 'derived', output: { ...payload.output, key } },
    previousSeed,
  };
}

function queuedRowOf(old: ResultRow, job: RenderJob, checkpoint: Checkpoint): ResultRow {
  return {
    status: 'queued',
    rowId: old.rowId,
    style: old.style,
    outputKey: job.output.key,
    seed: Number(job.input.seed),
    ...predictionFieldsOf(old.predictionIds, checkpoint.predictionIds),
    ...(old.orphanSuspected === true || checkpoint.orphanSuspected ? { orphanSuspected: true } : {}),
    ...(old.metadata === undefined ? {} : { metadata: old.metadata }),
    ...(old.prompt === undefined ? {} : { prompt: old.prompt }),
  };
}

/**
 * A failed job BullMQ no longer holds: rebuilt from the payload the ledger kept and added again under the same id. The
 * checkpoint went with the BullMQ job; what the row knows (prediction ids, a suspected orphan) is kept, and the job
 * creates anew (`checkpointForRetry` of a checkpoint with no current prediction).
 */
async function requeueRemoved(context: RetryContext, candidate: RetryCandidate): Promise<RequeuedJob | SkippedJob> {
  const { queue, ledger, run } = context;
  const { jobId, row } = candidate;
  const kept = await ledger.payload(run, jobId);
  if (kept === undefined) {
    return {
      jobId,
      why:
        'BullMQ no longer holds the job (removed after its retention) and the ledger kept no payload for it ' +
        '(enqueued by a depthq that did not keep payloads): it cannot be rebuilt',
    };
  }
  let payload: RenderJob;
  try {
    payload = parseRenderJob(kept);
  } catch (error) {
    return {
      jobId,
      why: `the payload the ledger kept is invalid, so it cannot be rebuilt: ${coerceError(error).message}`,
    };
  }
  // Without its checkpoint there is no prediction to resume: the job starts anew, keeping what the row knows.
  const checkpoint: Checkpoint = {
    ...emptyCheckpoint,
    predictionIds: row.predictionIds ?? (row.predictionId === undefined ? [] : [row.predictionId]),
    orphanSuspected: row.orphanSuspected === true,
  };
  const next = nextLifeOf(payload, candidate, context.meta);
  if (candidate.reseed) await ledger.setPayload(run, jobId, next.job);
  // A new life: the first one's money stays counted, and this one reserves and settles its own.
  await ledger.clearSettlement(run, jobId);
  try {
    // Same id: a second retry that adds it too changes nothing (BullMQ keeps the job it has).
    await queue.add(run, { ...next.job, checkpoint }, { jobId });
  } catch (error) {
    return { jobId, why: `BullMQ did not add it again: ${coerceError(error).message}; its ledger row is unchanged` };
  }
  return requeued(context, candidate, next, checkpoint);
}

async function retryOne(context: RetryContext, candidate: RetryCandidate): Promise<RequeuedJob | SkippedJob> {
  const { queue, ledger, run } = context;
  const { jobId } = candidate;
  const job: Job<RenderJobData> | undefined = await queue.getJob(jobId);
  if (job === undefined) return requeueRemoved(context, candidate);
  const state = await job.getState();
  if (state !== 'failed') return { jobId, why: `its BullMQ job is ${state}, not failed` };
  let payload: RenderJob;
  try {
    payload = parseRenderJob(job.data);
  } catch (error) {
    return { jobId, why: `its payload is invalid, so a retry would fail the same way: ${coerceError(error).message}` };
  }
  const { checkpoint, resumesPrediction } = retriedCheckpoint(job.data.checkpoint, !candidate.reseed, context.resume);
  const next = nextLifeOf(payload, candidate, context.meta);
  await job.updateData({ ...job.data, ...next.job, checkpoint });
  // The ledger keeps what this life renders: a rebuild after BullMQ removes the job renders it too (and a job enqueued
  // before payloads were kept gets one now).
  await ledger.setPayload(run, jobId, next.job);
  // Resuming its prediction, the job settles again by what it turns out to be: its settlement goes back to being its
  // reservation. Starting anew, the first life's money stays counted and the new life reserves and settles its own.
  // Before the move: once the job waits, a worker may reserve at once, and must find the reopened reservation.
  const reopened = resumesPrediction ? await ledger.reopenSettlement(run, jobId) : undefined;
  if (!resumesPrediction) await ledger.clearSettlement(run, jobId);
  try {
    await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
  } catch (error) {
    const state = await job.getState().catch(() => 'unknown');
    if (state === 'failed' && reopened !== undefined) {
      // This retry did not happen: the reopened settlement is settled again with what it counted, so the failed job's
      // money is where it was (a cleared settlement needs nothing: its money stayed counted).
      await ledger.settle(run, jobId, { spent: reopened.spent, possiblyBilled: reopened.possiblyBilled });
    }
    const why = state === 'failed' ? 'it is still failed' : `it is ${state} (another retry moved it first)`;
    return {
      jobId,
      why: `BullMQ did not move it back to waiting (${why}): ${coerceError(error).message}; its ledger row is unchanged`,
    };
  }
  // Written after the move, so the row never says `queued` for a job BullMQ did not requeue; and only over the row read
  // above, so a row a worker already wrote for the requeued job (`running`, `succeeded` …) is never overwritten.
  return requeued(context, candidate, next, checkpoint);
}

export async function retryRunJobs(
  queue: Queue<RenderJobData>,
  ledger: RunLedger,
  run: string,
  meta: RunMeta,
  selection: RetrySelection,
  resume: RetryResumeSettings,
): Promise<RetryOutcome> {
  checkRetrySelection(selection);
  const chosen: Array<{ jobId: string; row: ResultRow; status: 'failed' | 'flagged' }> = [];
  for await (const { jobId, row } of ledger.results(run)) {
    if (selection.failed && (row.status === 'failed' || row.status === 'running')) {
      // A `running` row is a candidate only if BullMQ failed the job itself (e.g. it stalled too often), checked below.
      chosen.push({ jobId, row, status: 'failed' });
    } else if (selection.flagged && row.status === 'flagged') {
      chosen.push({ jobId, row, status: 'flagged' });
    }
  }
  const limit = pLimit(RETRY_CONCURRENCY);
  const outcomes = await Promise.all(
    chosen.map(({ jobId, row, status }) =>
      limit(async () => {
        if (row.status === 'running') {
          const state = await (await queue.getJob(jobId))?.getState();
          if (state !== 'failed') return undefined;
        }
        const reseed = status === 'flagged' && selection.reseed;
        return retryOne({ queue, ledger, run, meta, resume }, { jobId, row, status, reseed });
      }),
    ),
  );
  const requeued: RequeuedJob[] = [];
  const skipped: SkippedJob[] = [];
  for (const outcome of outcomes) {
    if (outcome === undefined) continue;
    if ('why' in outcome) skipped.push(outcome);
    else requeued.push(outcome);
  }
  const byId = (a: { jobId: string }, b: { jobId: string }) => (a.jobId < b.jobId ? -1 : a.jobId > b.jobId ? 1 : 0);
  return { requeued: requeued.sort(byId), skipped: skipped.sort(byId) };
}
