/**
 * `depthq cancel`: the run spends nothing more.
 *
 * 1. The run's state becomes `canceled` in the ledger (final). From then on no job of the run creates a prediction: the
 *    pipeline checks the state before it starts a job, and again after a create that was already under way when the
 *    cancel came (the command could not know that prediction's id).
 * 2. Jobs waiting or delayed (parked, backing off) are removed from BullMQ and recorded `canceled` here, their
 *    reservations released. Removal is BullMQ's, which refuses a job a worker holds, so a job is ended either here or by
 *    its worker, never by both.
 * 3. Predictions in flight are canceled through the provider's API, their ids read from the jobs' checkpoints. A job a
 *    worker is running sees its prediction end `canceled` and the pipeline records it.
 * Money follows the one money rule (`core/money-rule.ts`), here as in the pipeline: a prediction that had started, or a
 * create whose answer was lost and that cannot be found, is `possiblyBilled` (Replicate charges a canceled running
 * prediction); a job that never sent a create, or whose prediction was canceled before it started, is released.
 * A prediction that finished before its cancel arrived was paid for: its job is left in the queue, and a worker stores
 * and records its image like any other.
 *
 * What this command cannot decide it leaves to the workers, never to a release: a job whose cancel call failed, or whose
 * lost create could not be looked up (the provider did not answer), stays in the queue untouched — its reservation held —
 * and the worker that takes it cancels and settles it by the money rule in its gate step. A job BullMQ no longer has
 * is settled from the ledger alone: released when it holds no reservation (it never got past its reserve step), else
 * `possiblyBilled` by the amount it holds (it may have sent a create nobody can see now).
 */
import type { Job, Queue } from 'bullmq';
import pLimit from 'p-limit';
import { pino } from 'pino';
import { type Checkpoint, emptyCheckpoint, readCheckpoint } from '../core/checkpoint.js';
import { coerceError } from '../core/errors.js';
import { findModel } from '../core/models.js';
import { settlementOfEnd, standingOf } from '../core/money-rule.js';
import { parseRenderJob, type RenderJob, reservationOfJob } from '../core/render-job.js';
import { predictionFieldsOf, type ResultRow, type ResultStatus, type RunLedger } from '../ledger/run-ledger.js';
import { settleJobFailedOutsideProcessor } from '../pipeline/stalled-jobs.js';
import { type ImageModelProvider, type Prediction, sightingOf } from '../providers/provider.js';
import type { RenderJobData } from '../queue/render-queue.js';

export interface CancelOutcome {
  /** The run was canceled before this call. */
  readonly alreadyCanceled: boolean;
  /** Jobs removed from the queue (or never in it) and recorded `canceled` by this call. */
  readonly ended: number;
  /** Predictions this call asked the provider to cancel. */
  readonly predictionsCanceled: number;
  /** Jobs a worker is running: the worker records them `canceled` when their prediction ends. */
  readonly leftToWorkers: number;
  /** Jobs holding a prediction that finished before the cancel: paid for, stored and recorded by a worker. */
  readonly finishing: number;
  /** Cancel requests the provider refused or did not answer: those jobs are left to their workers, which retry it. */
  readonly problems: readonly string[];
}

export interface CancelSettings {
  /** Replicate deletes inputs an hour after creation: a lost create older than this cannot be found. @defaultValue 1 h */
  readonly providerRetentionMs?: number;
  /** @defaultValue 60000 */
  readonly clockSkewMs?: number;
  readonly now?: () => number;
}

/** What the cancel settles it reports in its outcome, not in a log. */
const silentLog = pino({ level: 'silent' });

/** Jobs looked at (BullMQ reads, cancel calls) at once. */
const CANCEL_CONCURRENCY = 16;
const REMOVABLE_STATES: ReadonlySet<string> = new Set([
  'waiting',
  'delayed',
  'prioritized',
  'paused',
  'waiting-children',
]);
const ENDED_STATUSES: ReadonlySet<string> = new Set(['succeeded', 'failed', 'flagged', 'canceled']);
/** Rows whose job may still spend: the ones a cancel must end. */
const UNFINISHED_STATUSES: ReadonlySet<ResultStatus> = new Set(['queued', 'running', 'parked']);

type JobVerdict = 'ended' | 'left-to-worker' | 'finishing' | 'already-ended';

function checkpointOf(job: Job<RenderJobData>): Checkpoint | undefined {
  try {
    return readCheckpoint(job.data.checkpoint);
  } catch {
    return undefined;
  }
}

function payloadOf(job: Job<RenderJobData>): RenderJob | undefined {
  try {
    return parseRenderJob(job.data);
  } catch {
    return undefined;
  }
}

function reservationOf(payload: RenderJob | undefined): number {
  return payload === undefined ? 0 : reservationOfJob(payload);
}

export async function cancelRun(
  queue: Queue<RenderJobData>,
  ledger: RunLedger,
  provider: ImageModelProvider,
  run: string,
  settings: CancelSettings = {},
): Promise<CancelOutcome> {
  const now = settings.now ?? Date.now;
  const retentionMs = settings.providerRetentionMs ?? 60 * 60_000;
  const skewMs = settings.clockSkewMs ?? 60_000;
  const alreadyCanceled = (await ledger.runState(run)) === 'canceled';
  await ledger.setRunState(run, 'canceled');

  const unfinished: Array<{ jobId: string; row: ResultRow }> = [];
  for await (const { jobId, row } of ledger.results(run)) {
    if (UNFINISHED_STATUSES.has(row.status)) unfinished.push({ jobId, row });
  }

  let predictionsCanceled = 0;
  const problems: string[] = [];

  const cancelPrediction = async (jobId: string, id: string): Promise<Prediction | undefined> => {
    try {
      const answer = await provider.cancel(id);
      predictionsCanceled += 1;
      return answer;
    } catch (error) {
      problems.push(`job ${jobId}: canceling prediction ${id} failed: ${coerceError(error).message}`);
      return undefined;
    }
  };

  /**
   * The prediction a job's checkpoint knows, or the one a lost create made (found by its input's fingerprint);
   * `undecided` when that lookup failed: whether the create ran is unknown until someone can ask again.
   */
  const predictionIdOf = async (
    jobId: string,
    checkpoint: Checkpoint,
    payload: RenderJob | undefined,
  ): Promise<string | undefined | 'undecided'> => {
    if (checkpoint.predictionId !== undefined) return checkpoint.predictionId;
    const model = payload === undefined ? undefined : findModel(payload.model);
    // A provider that cannot look a lost create up leaves it unknown: the money rule counts it possibly billed.
    if (checkpoint.creating === undefined || model === undefined || provider.findByFingerprint === undefined) {
      return undefined;
    }
    const sentAt = Date.parse(checkpoint.creating.sentAt);
    if (now() - sentAt > retentionMs - skewMs) return undefined;
    try {
      const found = await provider.findByFingerprint(
        model.id,
        checkpoint.creating.fingerprint,
        new Date(sentAt - skewMs),
      );
      return found?.id;
    } catch (error) {
      problems.push(
        `job ${jobId}: looking for the prediction of a lost create failed (${coerceError(error).message}): ` +
          'left in the queue for a worker to cancel and settle',
      );
      return 'undecided';
    }
  };

  /** Records the job canceled with its money settled by the one money rule (`core/money-rule.ts`). */
  const recordCanceled = async (
    jobId: string,
    row: ResultRow,
    payload: RenderJob | undefined,
    checkpoint: Checkpoint | undefined,
    prediction: Prediction | undefined,
  ): Promise<void> => {
    const standing = standingOf(checkpoint, prediction === undefined ? undefined : sightingOf(prediction));
    // What the ledger holds for the job is what a possibly billed end counts (a payload that does not parse says 0).
    const held = await ledger.reservation(run, jobId);
    const settlement = settlementOfEnd(standing, {
      priceMicrosPerImage: payload?.priceMicrosPerImage ?? 0,
      reservationMicros: held ?? reservationOf(payload),
    });
    if (settlement.kind === 'release') await ledger.release(run, jobId);
    else await ledger.settle(run, jobId, { spent: settlement.spent, possiblyBilled: settlement.possiblyBilled });
    const { reason: _reason, error: _error, ...kept } = row;
    await ledger.recordResult(run, jobId, {
      ...kept,
      status: 'canceled',
      reason: 'run-canceled',
      ...predictionFieldsOf(row.predictionIds, checkpoint?.predictionIds, prediction ? [prediction.id] : undefined),
      ...(payload !== undefined && typeof payload.input.prompt === 'string' ? { prompt: payload.input.prompt } : {}),
      ...(payload !== undefined && Object.keys(payload.metadata).length > 0 ? { metadata: payload.metadata } : {}),
      finishedAt: new Date(now()).toISOString(),
    });
  };

  const cancelJob = async (jobId: string, row: ResultRow): Promise<JobVerdict> => {
    const job: Job<RenderJobData> | undefined = await queue.getJob(jobId);
    if (job === undefined) {
      // Registered but never added (an ingest cut short), or removed (by hand, or by BullMQ's retention): nothing can run
      // it any more, and only the ledger says what it did. Holding no reservation, it never got past its reserve step;
      // holding one, it may have sent a create: unknown, so possibly billed. A prediction its row names is canceled.
      const held = await ledger.reservation(run, jobId);
      const knownId = row.predictionIds?.at(-1);
      const prediction = knownId === undefined ? undefined : await cancelPrediction(jobId, knownId);
      await recordCanceled(jobId, row, undefined, held === undefined ? emptyCheckpoint : undefined, prediction);
      return 'ended';
    }
    const state = await job.getState();
    if (state === 'failed') {
      // Failed by BullMQ while its row says it may still run: failed without its processor (stalled too often) and not
      // settled by the worker that saw it (it died first). Settled here, by the same rule, as the worker would have.
      const settled = await settleJobFailedOutsideProcessor(
        { ledger, log: silentLog, now },
        { id: jobId, data: job.data, finishedOn: job.finishedOn ?? now() },
        new Error(job.failedReason ?? 'failed'),
      );
      return settled.kind === 'settled' ? 'ended' : 'already-ended';
    }
    if (state === 'completed') return 'already-ended';
    const checkpoint = checkpointOf(job);
    const payload = payloadOf(job);
    if (checkpoint?.finished !== undefined) return 'finishing';

    if (state === 'active') {
      if (checkpoint?.predictionId !== undefined) await cancelPrediction(jobId, checkpoint.predictionId);
      return 'left-to-worker';
    }
    if (!REMOVABLE_STATES.has(state)) return 'left-to-worker';

    let prediction: Prediction | undefined;
    const predictionId = checkpoint === undefined ? undefined : await predictionIdOf(jobId, checkpoint, payload);
    // Undecidable here: a worker takes it, cancels what it can and settles by the money rule in its gate step.
    if (predictionId === 'undecided') return 'left-to-worker';
    if (predictionId !== undefined) {
      prediction = await cancelPrediction(jobId, predictionId);
      // Not canceled: a worker retries the cancel when it takes the job.
      if (prediction === undefined) return 'left-to-worker';
      if (prediction.status === 'succeeded') return 'finishing';
    }
    if ((await queue.remove(jobId)) !== 1) return 'left-to-worker';
    // Removal also succeeds for a job that completed since its state was read: its row then says so, and stays.
    const current = await ledger.result(run, jobId);
    if (current !== undefined && ENDED_STATUSES.has(current.status)) return 'already-ended';
    await recordCanceled(jobId, current ?? row, payload, checkpoint, prediction);
    return 'ended';
  };

  const limit = pLimit(CANCEL_CONCURRENCY);
  const verdicts = await Promise.all(
    unfinished.map(({ jobId, row }) =>
      limit(async (): Promise<JobVerdict> => {
        try {
          return await cancelJob(jobId, row);
        } catch (error) {
          problems.push(`job ${jobId}: ${coerceError(error).message}`);
          return 'left-to-worker';
        }
      }),
    ),
  );
  const count = (verdict: JobVerdict) => verdicts.filter((each) => each === verdict).length;
  return {
    alreadyCanceled,
    ended: count('ended'),
    predictionsCanceled,
    leftToWorkers: count('left-to-worker'),
    finishing: count('finishing'),
    problems,
  };
}
