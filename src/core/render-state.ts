/**
 * The render job's named states: which step comes next is a pure function of the checkpoint (what earlier attempts
 * finished and wrote down) and of what this attempt has done so far. The processor (`pipeline/run-job.ts`) loops over
 * `stepOf` and runs one transition per step; see docs/render-job.md for the diagram and the rules.
 *
 * Pure: no I/O, no clock.
 */
import type { Checkpoint } from './checkpoint.js';

/** Replicate deletes a prediction's inputs and outputs one hour after its creation. */
export const REPLICATE_RETENTION_MS = 60 * 60_000;

/**
 * How long before the retention ends post-create work stops, unless configured: five minutes to download and store an
 * output, or a quarter of a short retention (a test's simulator keeps outputs for seconds).
 */
export function defaultRetentionMarginMs(retentionMs: number): number {
  return Math.min(5 * 60_000, Math.floor(retentionMs / 4));
}

export const RENDER_STEPS = ['gate', 'reserve', 'adopt', 'create', 'await', 'store', 'record', 'done'] as const;
/**
 * - gate: the run's state (paused parks, canceled ends) is read before anything new starts;
 * - reserve: the job's price is held against the run's budget (idempotent per job);
 * - adopt: a create was sent by an attempt that never saw its answer: look for that prediction before paying again;
 * - create: send the one create this job pays for (fenced);
 * - await: wait for the current prediction to end;
 * - store: copy its outputs and their sidecars to S3;
 * - record: settle the money and write the `succeeded` row;
 * - done: nothing is left to do.
 */
export type RenderStep = (typeof RENDER_STEPS)[number];

/** What the current attempt has done that is not worth a checkpoint write (it is redone, idempotently, by each attempt). */
export interface AttemptProgress {
  readonly gated: boolean;
  readonly reserved: boolean;
  /** The lost create of `checkpoint.creating` was looked for (found or not) in this attempt. */
  readonly lookedForLostCreate: boolean;
}

export const freshAttempt: AttemptProgress = { gated: false, reserved: false, lookedForLostCreate: false };

export function stepOf(checkpoint: Checkpoint, progress: AttemptProgress): RenderStep {
  if (checkpoint.recorded) return 'done';
  if (!progress.gated) return 'gate';
  if (!progress.reserved) return 'reserve';
  if (checkpoint.finished !== undefined) return checkpoint.stored === undefined ? 'store' : 'record';
  if (checkpoint.predictionId !== undefined) return 'await';
  if (checkpoint.creating !== undefined && !progress.lookedForLostCreate) return 'adopt';
  return 'create';
}

/** True once a prediction exists for the job: from here on, failures risk a paid image, not just time. */
export function holdsPrediction(checkpoint: Checkpoint): boolean {
  return checkpoint.predictionId !== undefined || checkpoint.finished !== undefined;
}

/**
 * The instant (ms since the epoch) until which post-create work may be retried inside the job: the provider deletes a
 * prediction's output `retentionMs` after its creation, and `marginMs` leaves time to download and store it. Undefined
 * when the job holds no prediction.
 */
export function postCreateDeadlineMs(
  checkpoint: Checkpoint,
  limits: { readonly retentionMs: number; readonly marginMs: number },
): number | undefined {
  if (!holdsPrediction(checkpoint)) return undefined;
  const createdAt =
    checkpoint.finished?.createdAt ?? checkpoint.predictionCreatedAt ?? checkpoint.creating?.sentAt ?? undefined;
  const createdMs = createdAt === undefined ? Number.NaN : Date.parse(createdAt);
  if (Number.isNaN(createdMs)) return undefined;
  return createdMs + limits.retentionMs - limits.marginMs;
}

export interface RetryResumeLimits {
  readonly nowMs: number;
  readonly retentionMs: number;
  readonly marginMs: number;
}

export interface RetryResume {
  readonly checkpoint: Checkpoint;
  /**
   * The retried job goes on with the prediction (or the unknown create) its last life had: the money its end settled
   * is reopened into a reservation, to be settled again by what that prediction turns out to be.
   */
  readonly resumesPrediction: boolean;
}

/**
 * The checkpoint a `depthq retry` gives a job that ended without an image. Retry keeps what was paid: a succeeded
 * prediction whose output the provider still holds is stored, not created again; a prediction that may still run is
 * awaited; a create whose answer was lost is looked for. Only a job with no prediction, or one whose output is past the
 * provider's retention, creates anew (the expired one stays spent). A new seed (`sameSeed: false`) always starts anew.
 * Every prediction id is kept either way, for the invoice.
 */
export function checkpointForRetry(old: Checkpoint, sameSeed: boolean, limits: RetryResumeLimits): RetryResume {
  const fresh: Checkpoint = {
    predictionIds: old.predictionIds,
    orphanSuspected: old.orphanSuspected,
    recorded: false,
    ...(old.control === undefined ? {} : { control: old.control }),
  };
  if (!sameSeed) return { checkpoint: fresh, resumesPrediction: false };
  const deadline = postCreateDeadlineMs(old, limits);
  if (deadline !== undefined) {
    if (limits.nowMs >= deadline) return { checkpoint: fresh, resumesPrediction: false };
    return { checkpoint: { ...old, recorded: false }, resumesPrediction: true };
  }
  if (old.creating !== undefined) {
    const sentMs = Date.parse(old.creating.sentAt);
    if (limits.nowMs < sentMs + limits.retentionMs - limits.marginMs) {
      return { checkpoint: { ...fresh, creating: old.creating }, resumesPrediction: true };
    }
  }
  return { checkpoint: fresh, resumesPrediction: false };
}
