/**
 * The render job's processor loop: read the job, then run the step `stepOf` names until the job is done, parked or
 * ended. Every failure — a payload or checkpoint that cannot be read included — goes through one classification.
 *
 * Post-create work never waits behind the backlog: once a prediction exists, a transient failure of await, download or
 * upload is retried here, inside the job (BullMQ renews the job's lock meanwhile), with backoff, until the prediction's
 * creation + the provider's retention − a margin (or the configured post-create window). Only then does the attempt
 * fail. A job whose attempt failed goes to the back of the queue, which is harmless only before it has a prediction.
 * See docs/render-job.md.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { type Checkpoint, emptyCheckpoint, readCheckpoint } from '../core/checkpoint.js';
import {
  backoffDelayMs,
  classifyFailure,
  coerceError,
  type FailureClass,
  FatalJobError,
  FlaggedError,
  OutputExpiredError,
  type ProviderIdentity,
} from '../core/errors.js';
import { findModel, imageCountOf, type ModelDefinition } from '../core/models.js';
import { standingOf } from '../core/money-rule.js';
import { parseRenderJob, type RenderJob, reservationOfJob } from '../core/render-job.js';
import { holdsPrediction, postCreateDeadlineMs, stepOf } from '../core/render-state.js';
import { RunNotFoundError } from '../ledger/run-ledger.js';
import { ProviderCallError } from '../providers/provider.js';
import { LockLostError } from '../queue/fenced-checkpoint.js';
import { finishCanceled, finishUnsuccessfully, type UnsuccessfulStatus } from './endings.js';
import { type JobResult, newAttemptProgress, type RenderJobState, rowOf, type StepDeps } from './render-context.js';
import { steps } from './steps.js';

/** The queue's view of one job: its stored data, its attempt, and the fenced write of its data. */
export interface QueuedRenderJob {
  readonly id: string;
  readonly data: unknown;
  /** Attempts BullMQ counted before this one. */
  readonly attemptsMade: number;
  readonly maxAttempts: number;
  readonly signal: AbortSignal | undefined;
  /** Replaces the job's data only while this worker holds its lock; 'lock-lost' otherwise. */
  writeData(data: Record<string, unknown>): Promise<'written' | 'lock-lost'>;
}

/** A failure, decided: what it means for the job. */
type Failure =
  | { readonly kind: 'end'; readonly status: UnsuccessfulStatus; readonly reason: string; readonly message: string }
  /** The account is refused (token, credit, model): the run pauses and the job parks until `depthq resume`. */
  | { readonly kind: 'account'; readonly httpStatus: number; readonly message: string }
  | { readonly kind: 'transient'; readonly error: Error }
  | { readonly kind: 'throttled'; readonly retryAfterMs: number; readonly error: Error };

function failureOfClass(failure: FailureClass, error: Error): Failure {
  switch (failure.kind) {
    case 'fatal':
      return { kind: 'end', status: 'failed', reason: 'fatal', message: error.message };
    case 'account':
      // The classification's reason says what to fix; the error's own message names the request.
      return { kind: 'account', httpStatus: failure.httpStatus, message: failure.reason };
    case 'flagged':
      return { kind: 'end', status: 'flagged', reason: 'flagged', message: error.message };
    case 'throttled':
      return { kind: 'throttled', retryAfterMs: failure.retryAfterMs, error };
    case 'transient':
      return { kind: 'transient', error };
  }
}

/** One failure vocabulary: provider failures through core's `classifyFailure`, depthq's own through their class. */
function failureOf(error: Error, provider: ProviderIdentity): Failure {
  if (error instanceof ProviderCallError) {
    return failureOfClass(classifyFailure({ provider, ...error.facts }), error);
  }
  if (error instanceof FlaggedError)
    return { kind: 'end', status: 'flagged', reason: 'flagged', message: error.message };
  if (error instanceof OutputExpiredError) {
    return { kind: 'end', status: 'failed', reason: 'output-expired', message: error.message };
  }
  if (error instanceof FatalJobError || error instanceof RunNotFoundError) {
    return { kind: 'end', status: 'failed', reason: 'fatal', message: error.message };
  }
  return { kind: 'transient', error };
}

/** The parts of a job that must parse before anything else can happen; what could not be read is a fatal failure. */
interface ReadJob {
  readonly payload: RenderJob;
  readonly model: ModelDefinition;
  /** Undefined when the stored checkpoint cannot be read; `problem` says why. */
  readonly checkpoint: Checkpoint | undefined;
  readonly problem?: Error;
}

function readJob(data: unknown): ReadJob {
  const payload = parseRenderJob(data);
  const model = findModel(payload.model);
  // parseRenderJob accepts registered models only; a registry that shrank under a queued job is a corrupt payload.
  if (model === undefined) throw new FatalJobError(`unknown model ${payload.model}`);
  const raw: unknown = typeof data === 'object' && data !== null ? Reflect.get(data, 'checkpoint') : undefined;
  try {
    return { payload, model, checkpoint: readCheckpoint(raw) };
  } catch (error) {
    return { payload, model, checkpoint: undefined, problem: coerceError(error) };
  }
}

export async function runRenderJob(deps: StepDeps, queued: QueuedRenderJob): Promise<JobResult> {
  const attempt = queued.attemptsMade + 1;
  let read: ReturnType<typeof readJob>;
  try {
    read = readJob(queued.data);
  } catch (error) {
    // Without a payload there is no run to record in: the job ends with the reason in BullMQ's failed set.
    const message = `the job's data is not a render job: ${coerceError(error).message}`;
    deps.log.error({ jobId: queued.id, err: message }, 'unreadable job');
    return { kind: 'ended', message };
  }
  const { payload, model } = read;
  const log = deps.log.child({ run: payload.run, row: payload.rowId, style: payload.style, jobId: queued.id, attempt });
  let data: Record<string, unknown> = { ...(queued.data as Record<string, unknown>) };
  const job: RenderJobState = {
    payload,
    model,
    jobId: queued.id,
    attempt,
    isLastAttempt: attempt >= queued.maxAttempts,
    reservation: reservationOfJob(payload),
    expectedImages: imageCountOf(model, payload.input),
    signal: queued.signal,
    log,
    checkpoint: read.checkpoint ?? emptyCheckpoint,
    checkpointReadable: read.checkpoint !== undefined,
    progress: newAttemptProgress(),
    attemptStartedAt: undefined,
    pending: undefined,
    sighting: undefined,
    async save(next) {
      const nextData = { ...data, checkpoint: next };
      if ((await queued.writeData(nextData)) === 'lock-lost') throw new LockLostError(queued.id);
      data = nextData;
      job.checkpoint = next;
    },
  };
  if (read.problem !== undefined) {
    // Anything may have been sent by the attempt that wrote it: the money rule counts the reservation possibly billed.
    const message = `the job's checkpoint cannot be read: ${read.problem.message}`;
    return endWith(deps, job, { kind: 'end', status: 'failed', reason: 'corrupt-checkpoint', message });
  }

  /** When this attempt's post-create retries began, and how many it made. */
  let retryingSince: number | undefined;
  let retries = 0;
  for (;;) {
    const step = stepOf(job.checkpoint, job.progress);
    try {
      const result = await steps[step](deps, job);
      if (result !== undefined) return result;
    } catch (thrown) {
      if (thrown instanceof LockLostError) {
        // Nothing else would say why this attempt stopped: BullMQ only reports that its final move was refused.
        log.warn('lost the job to another worker (its lock expired): stopped without side effects');
        throw thrown;
      }
      if (queued.signal?.aborted) return closing(deps, job);
      const failure = failureOf(coerceError(thrown), deps.provider.identity);
      if (failure.kind === 'end') return endWith(deps, job, failure);
      if (failure.kind === 'account') return pauseForAccount(deps, job, failure);
      retryingSince ??= deps.now();
      const delayMs = retryDelay(deps, job, failure, retries, retryingSince);
      if (delayMs === undefined) return failAttempt(deps, job, failure);
      retries += 1;
      log.warn(
        { step, retry: retries, delayMs, err: failure.error.message },
        'post-create failure: retrying in the job',
      );
      try {
        await sleep(delayMs, undefined, queued.signal ? { signal: queued.signal } : {});
      } catch {
        return closing(deps, job);
      }
    }
  }
}

/**
 * How long to wait before retrying inside the job, or undefined when the attempt should fail instead: before a
 * prediction exists (nothing paid can be lost by waiting in the queue), or past the post-create deadline.
 */
function retryDelay(
  deps: StepDeps,
  job: RenderJobState,
  failure: Exclude<Failure, { kind: 'end' | 'account' }>,
  retries: number,
  retryingSince: number,
): number | undefined {
  if (!holdsPrediction(job.checkpoint)) return undefined;
  const { providerRetentionMs, retentionMarginMs, postCreateRetryMs, retryBaseMs, retryCapMs } = deps.settings;
  const retentionDeadline = postCreateDeadlineMs(job.checkpoint, {
    retentionMs: providerRetentionMs,
    marginMs: retentionMarginMs,
  });
  const deadline = Math.min(retentionDeadline ?? Number.NEGATIVE_INFINITY, retryingSince + postCreateRetryMs);
  const backoff = backoffDelayMs({ attempt: retries + 1, baseMs: retryBaseMs, capMs: retryCapMs, random: deps.random });
  const delayMs = failure.kind === 'throttled' ? Math.max(backoff, failure.retryAfterMs) : backoff;
  const leftMs = deadline - deps.now();
  if (leftMs <= 0) return undefined;
  // A delay that would overshoot the deadline is cut short: the last try comes at the deadline, not never.
  return Math.min(delayMs, leftMs);
}

/** A failure this attempt cannot get past: the queue retries the job, or, on the last attempt, it ends here. */
async function failAttempt(
  deps: StepDeps,
  job: RenderJobState,
  failure: Exclude<Failure, { kind: 'end' | 'account' }>,
): Promise<JobResult> {
  // A 429 on a create spends no attempt: the whole queue waits instead.
  if (failure.kind === 'throttled' && !holdsPrediction(job.checkpoint)) {
    job.log.warn({ retryAfterMs: failure.retryAfterMs }, 'provider throttled: the whole queue waits');
    return { kind: 'throttled', retryAfterMs: failure.retryAfterMs, message: failure.error.message };
  }
  if (job.isLastAttempt) {
    await finishUnsuccessfully(deps, job, {
      status: 'failed',
      reason: 'attempts-exhausted',
      message: failure.error.message,
    });
  } else {
    job.log.warn({ err: failure.error.message }, 'transient failure: will retry');
  }
  return { kind: 'retry', error: failure.error };
}

async function endWith(
  deps: StepDeps,
  job: RenderJobState,
  failure: Extract<Failure, { kind: 'end' }>,
): Promise<JobResult> {
  try {
    await finishUnsuccessfully(deps, job, failure);
  } catch (error) {
    // Without its run there is no budget and no ledger to record in: nothing to retry for.
    if (!(error instanceof RunNotFoundError)) throw error;
  }
  return { kind: 'ended', message: failure.message };
}

/**
 * The provider refuses the account (401/403 token, 402 credit, 404 model or API): every job of the run would fail the
 * same way, each spending its attempts. The run is paused with the cause in the ledger (`depthq status` shows it; the
 * first job to meet it logs it, once) and this job parks, no attempt spent, until `depthq resume`.
 *
 * Money by the money rule: a job whose prediction stands at `none` (its create was refused: nothing was created) has
 * its reservation released; one whose prediction may run (an id, a lost create) keeps its reservation held, and resumes
 * that prediction after the resume — nothing is handed back for a prediction that may be billed, nothing paid twice.
 */
async function pauseForAccount(
  deps: StepDeps,
  job: RenderJobState,
  failure: Extract<Failure, { kind: 'account' }>,
): Promise<JobResult> {
  const { run } = job.payload;
  const pause = await deps.ledger.pauseFor(run, { reason: 'account', message: failure.message });
  // A canceled run stays canceled: the job ends by the cancel's rules instead.
  if (pause.current === 'canceled') return finishCanceled(deps, job, job.sighting);
  const standing = standingOf(job.checkpointReadable ? job.checkpoint : undefined, job.sighting);
  if (standing.kind === 'none') await deps.ledger.release(run, job.jobId);
  await deps.ledger.recordResult(run, job.jobId, rowOf(job, 'parked', { reason: 'account', error: failure.message }));
  if (pause.newCause) {
    job.log.error(
      { httpStatus: failure.httpStatus, err: failure.message },
      `run ${run} paused: ${failure.message} Then run \`depthq resume ${run}\`.`,
    );
  } else {
    job.log.info({ httpStatus: failure.httpStatus }, 'run paused for its account: parked');
  }
  return { kind: 'parked', untilMs: deps.now() + deps.settings.parkDelayMs };
}

/** The worker is closing: the job goes back to waiting with its checkpoint, no attempt spent. */
async function closing(deps: StepDeps, job: RenderJobState): Promise<JobResult> {
  job.log.info('worker closing: job returns to waiting');
  await deps.ledger.recordResult(job.payload.run, job.jobId, rowOf(job, 'queued'));
  return { kind: 'closing' };
}
