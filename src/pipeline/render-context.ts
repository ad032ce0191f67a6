/**
 * What the render job's steps work with: the ports they call (provider, output store, ledger), the settings that bound
 * them, and the one job's mutable state while it runs. The ports are interfaces so the steps run in unit tests against a
 * fake provider, a fake store and an in-memory ledger; the real adapters are the Replicate provider,
 * `S3OutputStore` and `RunLedger`. See docs/render-job.md.
 */
import type { Logger } from 'pino';
import type { Checkpoint, ControlImageFacts } from '../core/checkpoint.js';
import type { ImageType } from '../core/image-type.js';
import type { ModelDefinition } from '../core/models.js';
import type { PredictionSighting } from '../core/money-rule.js';
import type { RenderJob } from '../core/render-job.js';
import { type AttemptProgress, freshAttempt } from '../core/render-state.js';
import type { Telemetry } from '../core/telemetry.js';
import { predictionFieldsOf, type ResultRow, type ResultStatus, type RunLedger } from '../ledger/run-ledger.js';
import type { ImageModelProvider, Prediction } from '../providers/provider.js';
import type { PredictionClaims } from '../queue/prediction-claims.js';
import type { RenderOutcome } from './sidecar.js';

/** The ledger calls a render job makes: `RunLedger` in production, an in-memory ledger in unit tests. */
export type RenderLedger = Pick<RunLedger, 'runState' | 'reserve' | 'settle' | 'release' | 'recordResult' | 'pauseFor'>;

export interface StoredOutputObject {
  readonly sha256: string;
  readonly size: number;
  readonly contentType: string;
  readonly etag: string | undefined;
}

export interface ObjectLocation {
  readonly bucket: string;
  readonly key: string;
}

/** Where control images are read and outputs written: S3 in production (`S3OutputStore`). */
export interface OutputStore {
  /** Size, sha256 and ETag of a control image; a missing, empty or non-image object is a `FatalJobError`. */
  controlImageFacts(ref: ObjectLocation, signal?: AbortSignal): Promise<ControlImageFacts>;
  /** A URL the provider can read the control image from, valid for `expiresInSeconds`. */
  presignControlImage(ref: ObjectLocation, expiresInSeconds: number): Promise<string>;
  /**
   * Streams a provider output into the store. A 404/410 from the provider is an `OutputExpiredError`; a download or
   * upload that takes longer than the store's timeout fails (and is retried like any transient failure).
   */
  copyOutput(request: {
    readonly url: string;
    readonly target: ObjectLocation;
    readonly imageType: ImageType;
    readonly metadata: Readonly<Record<string, string>>;
    readonly signal?: AbortSignal;
  }): Promise<StoredOutputObject>;
  putSidecar(ref: ObjectLocation, value: unknown, signal?: AbortSignal): Promise<void>;
}

export interface PipelineSettings {
  /** Seconds the create call holds for the prediction to finish (`Prefer: wait`); most need no poll at all. */
  readonly createWaitSeconds: number;
  /** The prediction is aborted (not started) or canceled (running) by the provider after this: the bound on a lost one. */
  readonly cancelAfterMs: number;
  /** The presigned control-image URL outlives the prediction's wait in the provider's queue by this much. */
  readonly presignMarginMs: number;
  /** The provider deletes inputs and outputs this long after creation: reconciliation is only possible inside it. */
  readonly providerRetentionMs: number;
  /** Post-create work stops this long before the retention ends, leaving time to download and store the output. */
  readonly retentionMarginMs: number;
  /**
   * How long one attempt keeps retrying failures once its prediction exists (await, download, upload), inside the job,
   * instead of failing the attempt and waiting behind the backlog. Bounded by the retention deadline either way.
   */
  readonly postCreateRetryMs: number;
  /** In-job retries back off from this delay, doubling with full jitter up to `retryCapMs`. */
  readonly retryBaseMs: number;
  readonly retryCapMs: number;
  /**
   * A parked (over-budget) job looks again after this on its own. A budget change releases parked jobs at once
   * (`releaseParkedJobs`), so this is only a fallback — long, because every wake-up takes a slot of the creates-per-minute
   * limiter from the runs that can spend.
   */
  readonly parkDelayMs: number;
  /** Clock skew allowed between this machine and the provider when listing predictions by creation time. */
  readonly clockSkewMs: number;
  /**
   * The longest one send of a create can stay in flight: the transport's per-request timeout plus the `Prefer: wait`
   * hold. Until a lost create's latest send + this + the clock skew, a lookup that finds nothing proves nothing: the
   * POST may still arrive.
   */
  readonly longestCreateSendMs: number;
}

export const defaultPipelineSettings: PipelineSettings = {
  createWaitSeconds: 60,
  cancelAfterMs: 15 * 60_000,
  presignMarginMs: 5 * 60_000,
  providerRetentionMs: 60 * 60_000,
  retentionMarginMs: 5 * 60_000,
  postCreateRetryMs: Number.POSITIVE_INFINITY,
  retryBaseMs: 1_000,
  retryCapMs: 30_000,
  parkDelayMs: 10 * 60_000,
  clockSkewMs: 60_000,
  longestCreateSendMs: 90_000,
};

/** What the steps need from outside the job. */
export interface StepDeps {
  readonly provider: ImageModelProvider;
  readonly store: OutputStore;
  readonly ledger: RenderLedger;
  readonly settings: PipelineSettings;
  readonly now: () => number;
  /** Which job owns which prediction: a lookup by input never adopts another job's prediction. */
  readonly claims: PredictionClaims;
  /** In [0, 1): the jitter of in-job retry delays. */
  readonly random: () => number;
  /**
   * Resolves once the checkpoint writes made so far are durable where the server can confirm it (a replica has them,
   * or they are fsynced), throws when that cannot be confirmed in time. Called before a create is sent.
   */
  readonly confirmDurable?: () => Promise<unknown>;
  readonly log: Logger;
  /** Prediction latencies and images stored, for /metrics (docs/metrics.md); nothing is counted when absent. */
  readonly telemetry?: Telemetry;
}

/** One render job while it runs: who it is, what it has done, and the fenced write that records it. */
export interface RenderJobState {
  readonly payload: RenderJob;
  readonly model: ModelDefinition;
  readonly jobId: string;
  /** 1-based attempt number, as BullMQ counts attempts. */
  readonly attempt: number;
  readonly isLastAttempt: boolean;
  readonly reservation: number;
  readonly expectedImages: number;
  readonly signal: AbortSignal | undefined;
  readonly log: Logger;
  checkpoint: Checkpoint;
  /** False when the stored checkpoint could not be read: anything may have been sent, so its money counts as unknown. */
  readonly checkpointReadable: boolean;
  progress: AttemptProgress;
  /** When this attempt got past its reservation; every later row of the attempt carries it, so reports have timings. */
  attemptStartedAt: string | undefined;
  /** The latest answer seen for the current prediction, not yet acted on (e.g. the create's `Prefer: wait` answer). */
  pending: Prediction | undefined;
  /** The latest sighting of the current prediction: what the money rule decides an unsuccessful end from. */
  sighting: PredictionSighting | undefined;
  /** Writes the checkpoint only while this worker holds the job's lock; throws `LockLostError` otherwise. */
  save(next: Checkpoint): Promise<void>;
}

export function newAttemptProgress(): AttemptProgress {
  return { ...freshAttempt };
}

/** The job's ledger row as of now: what happened to its one output image. */
export function rowOf(job: RenderJobState, status: ResultStatus, extra: Partial<ResultRow> = {}): ResultRow {
  const { payload, checkpoint } = job;
  return {
    status,
    rowId: payload.rowId,
    style: payload.style,
    outputKey: payload.output.key,
    seed: Number(payload.input.seed),
    ...predictionFieldsOf(checkpoint.predictionIds),
    attempts: job.attempt,
    ...(checkpoint.orphanSuspected ? { orphanSuspected: true } : {}),
    ...(Object.keys(payload.metadata).length > 0 ? { metadata: payload.metadata } : {}),
    ...(typeof payload.input.prompt === 'string' ? { prompt: payload.input.prompt } : {}),
    ...(job.attemptStartedAt === undefined ? {} : { startedAt: job.attemptStartedAt }),
    ...extra,
  };
}

/** How one processing of a job ended; the BullMQ adapter (`render.ts`) turns each into the queue's move. */
export type JobResult =
  | { readonly kind: 'succeeded'; readonly outcome: RenderOutcome }
  /** Nothing was spent: the job waits until `untilMs` (a paused run, an exhausted budget). */
  | { readonly kind: 'parked'; readonly untilMs: number }
  /** The job ended for good, its row and money recorded: never retried. */
  | { readonly kind: 'ended'; readonly message: string }
  /** This attempt failed and the queue retries it later (its row says `failed` when it was the last attempt). */
  | { readonly kind: 'retry'; readonly error: Error }
  /** The provider throttled a create: the whole queue waits, no attempt spent. */
  | { readonly kind: 'throttled'; readonly retryAfterMs: number; readonly message: string }
  /** The worker is closing: the job goes back to waiting with its checkpoint, no attempt spent. */
  | { readonly kind: 'closing' };
