/**
 * The render job's checkpoint: what each finished step left for a resumed job to skip. It lives in `job.data.checkpoint`
 * and is only ever written fenced (only while this worker holds the job's lock), each write before the next step.
 */
import { z } from 'zod';
import { FatalJobError } from '../core/errors.js';

const storedObjectSchema = z.object({
  key: z.string().min(1),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  size: z.int().nonnegative(),
  contentType: z.string().min(1),
  etag: z.string().optional(),
  /** The provider URL it was copied from (no query string). */
  source: z.string(),
});
export type StoredOutput = z.output<typeof storedObjectSchema>;

/** A row's control image as the worker found it in S3 (ETag, digest, size), kept in the checkpoint and the sidecar. */
const controlImageFactsSchema = z.object({
  etag: z.string().optional(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  size: z.int().nonnegative(),
});
export type ControlImageFacts = z.output<typeof controlImageFactsSchema>;

/** The part of the prediction worth keeping once it succeeded: enough for the sidecar and the ledger. */
const finishedPredictionSchema = z.object({
  id: z.string().min(1),
  createdAt: z.string(),
  startedAt: z.string().nullable(),
  completedAt: z.string().nullable(),
  outputUrls: z.array(z.string()),
  imageCount: z.int().nonnegative(),
  predictTimeSeconds: z.number().nullable(),
  /** The seed the model says it used (`Using seed: N` in its logs), when it says so. */
  loggedSeed: z.int().nullable(),
});
export type FinishedPrediction = z.output<typeof finishedPredictionSchema>;

export const checkpointSchema = z.object({
  /**
   * Written just before a create is sent: what was sent (its fingerprint, never the input itself, whose presigned URL is
   * a credential) and when. A job resumed with this and no `predictionId` may have paid for a prediction whose id it
   * never saw: it looks for it by fingerprint before it creates anything.
   */
  creating: z
    .object({
      fingerprint: z.string().regex(/^[0-9a-f]{64}$/),
      /** When the first send of the create left. */
      sentAt: z.iso.datetime(),
      /** When the latest re-send left (after a send whose outcome was unknown). */
      lastSentAt: z.iso.datetime().optional(),
      /**
       * By then every send of this create had ended here (timed out, reset or aborted) without an answer that settles
       * it. Absent after a crash mid-send: the POST may then be in flight until the latest send + the longest send.
       */
      sendsEndedAt: z.iso.datetime().optional(),
    })
    .optional(),
  /** The prediction this attempt is waiting for. Cleared when a failure calls for a new prediction. */
  predictionId: z.string().min(1).optional(),
  /**
   * When the provider created `predictionId` (its `created_at`): the provider deletes the output a fixed time after it,
   * so this is the clock that bounds how long post-create work may be retried inside the job.
   */
  predictionCreatedAt: z.string().min(1).optional(),
  /** Every prediction this job created or adopted, for reconciling against the invoice. */
  predictionIds: z.array(z.string().min(1)).default([]),
  control: controlImageFactsSchema.optional(),
  finished: finishedPredictionSchema.optional(),
  stored: z.array(storedObjectSchema).optional(),
  /** The saved input was too old to be matched (past Replicate's retention): a prediction may have been lost and paid. */
  orphanSuspected: z.boolean().default(false),
  /** The job's money and result row are written: nothing is left to do. */
  recorded: z.boolean().default(false),
});

export type Checkpoint = z.output<typeof checkpointSchema>;

export const emptyCheckpoint: Checkpoint = { predictionIds: [], orphanSuspected: false, recorded: false };

/**
 * A checkpoint that cannot be read is fatal, not ignored: starting over could create (and pay for) a second prediction
 * for an image whose first one the unreadable checkpoint recorded.
 */
export function readCheckpoint(value: unknown): Checkpoint {
  if (value === undefined || value === null) return emptyCheckpoint;
  const parsed = checkpointSchema.safeParse(value);
  if (!parsed.success) {
    throw new FatalJobError(`the job's checkpoint is unreadable:\n${z.prettifyError(parsed.error)}`, {
      cause: parsed.error,
    });
  }
  return parsed.data;
}

/**
 * The checkpoint with `id` as its current prediction. `predictionIds` is a set: adopting a prediction this job already
 * knows (a lost create found again, a retry resuming it) never lists it twice.
 */
export function withCurrentPrediction(checkpoint: Checkpoint, id: string, createdAt: string | undefined): Checkpoint {
  const { predictionCreatedAt: _previous, ...rest } = checkpoint;
  return {
    ...rest,
    predictionId: id,
    ...(createdAt === undefined ? {} : { predictionCreatedAt: createdAt }),
    predictionIds: checkpoint.predictionIds.includes(id) ? checkpoint.predictionIds : [...checkpoint.predictionIds, id],
  };
}

/** The checkpoint with no current prediction and no create in flight: the next step creates a new one. */
export function withoutCurrentPrediction(checkpoint: Checkpoint): Checkpoint {
  const { predictionId: _id, predictionCreatedAt: _at, creating: _sent, ...rest } = checkpoint;
  return rest;
}
