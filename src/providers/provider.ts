/**
 * The model API as depthq needs it, behind one interface, so the pipeline never sees HTTP and a second provider (or a
 * replay of recorded predictions) can stand in. Replicate is the one implementation (`replicate.ts`).
 */
import { z } from 'zod';
import type { FailureFacts, ProviderIdentity } from '../core/errors.js';
import type { ModelId, ModelInput } from '../core/models.js';
import type { PredictionSighting } from '../core/money-rule.js';

/**
 * A call to the model API that failed once the provider's own retries were spent, as data the pipeline classifies with
 * core's `classifyFailure`. Every provider throws its failures as subclasses of this, so the pipeline knows no HTTP.
 */
export abstract class ProviderCallError extends Error {
  /** Status, body, headers or network error code: what `classifyFailure` decides from. */
  abstract get facts(): FailureFacts;
  /** The provider answered, and its answer says nothing was created (a 4xx to a create): nothing can have been billed. */
  abstract get nothingCreated(): boolean;
}

/**
 * A create failed after an earlier send of it had an unknown outcome (no answer, a 5xx): whatever the last answer says,
 * the earlier send may have created a prediction, so this never claims that nothing was created. Classified by the
 * last failure's facts (a 429 on the reconciling list is still a throttle).
 */
export class CreateOutcomeUnknownError extends ProviderCallError {
  override readonly name = 'CreateOutcomeUnknownError';

  constructor(readonly last: ProviderCallError) {
    super(`${last.message} (after a send whose outcome is unknown: a prediction may exist)`, { cause: last });
  }

  get facts(): FailureFacts {
    return this.last.facts;
  }

  get nothingCreated(): boolean {
    return false;
  }
}

export const predictionStatusSchema = z.enum(['starting', 'processing', 'succeeded', 'failed', 'canceled', 'aborted']);
export type PredictionStatus = z.infer<typeof predictionStatusSchema>;

export const terminalStatuses: ReadonlySet<PredictionStatus> = new Set(['succeeded', 'failed', 'canceled', 'aborted']);

/**
 * A prediction as depthq knows it, whatever provider made it: each adapter maps its own answers to this (Replicate's JSON
 * in `replicate.ts`), so the pipeline, `depthq cancel` and the money rule never see a provider's wire format.
 */
export interface Prediction {
  readonly id: string;
  readonly status: PredictionStatus;
  /** When the provider created it (ISO 8601): its outputs are deleted `retentionMs` after this. */
  readonly createdAt: string;
  /** When it started running (ISO 8601); null while queued, or when it never ran. */
  readonly startedAt: string | null;
  readonly completedAt: string | null;
  /** The output images' URLs, in order; empty until it succeeds, or once its data was removed. */
  readonly outputUrls: readonly string[];
  /** How many images the provider says it made (and billed), when it says. */
  readonly imageCount?: number;
  /** Seconds the model ran, when the provider says. */
  readonly predictTimeSeconds: number | null;
  /** The seed the model's own logs say it used, when they say. */
  readonly loggedSeed: number | null;
  /** Why it failed, as the provider put it; null when it did not say. */
  readonly error: string | null;
  /** The input it ran with, when the provider echoes it (what reconciliation compares). */
  readonly input?: Readonly<Record<string, unknown>>;
  /** The provider removed its inputs and outputs (past its retention). */
  readonly dataRemoved: boolean;
}

export interface CreatePredictionRequest {
  readonly model: ModelId;
  /** The exact, complete input: it is also what reconciliation matches a lost create against. */
  readonly input: ModelInput;
  /** Hold the create call up to this many seconds (Replicate caps it at 60) so most predictions need no polling. */
  readonly waitSeconds?: number;
  /** Ask Replicate to abort the prediction if it has not finished by then: it bounds what a forgotten one can cost. */
  readonly cancelAfterMs?: number;
  readonly webhook?: { readonly url: string; readonly events: readonly ('start' | 'output' | 'logs' | 'completed')[] };
  readonly signal?: AbortSignal;
  /**
   * Called before every re-send of this create (after a send whose outcome was unknown and that reconciliation did not
   * find): the caller's fence. It throws to stop — e.g. when the job's lock was lost, so another worker owns the create.
   */
  readonly beforeResend?: (send: number) => Promise<void>;
  /**
   * Whether a prediction found by input while reconciling this create may be adopted (e.g. no other job owns it): two
   * jobs can send the same input, and each must adopt only its own prediction.
   */
  readonly mayAdopt?: (prediction: Prediction) => Promise<boolean>;
}

export interface CreatedPrediction {
  readonly prediction: Prediction;
  /** True when the create's response was lost and the prediction was found again by its input instead of re-created. */
  readonly adopted: boolean;
}

export interface AwaitOptions {
  readonly signal?: AbortSignal;
  /** Give up waiting (the prediction goes on) when this instant passes; ms since the epoch. */
  readonly deadlineMs?: number;
  /** Called with every new state seen while waiting, e.g. to checkpoint progress. */
  readonly onUpdate?: (prediction: Prediction) => void | Promise<void>;
}

/**
 * A model API as the pipeline uses it. Creating, reading, canceling and awaiting predictions are required;
 * reconciliation — finding the prediction of a create whose answer was lost — is an optional capability: a provider that
 * can list its predictions (Replicate) implements `findByFingerprint`; one that cannot (an API with no list endpoint)
 * leaves it out, and the pipeline then waits out the lost create's in-flight window and creates anew, marked
 * `orphanSuspected` for the invoice (`adopt` in `src/pipeline/steps.ts`), and `depthq cancel` counts such a job
 * possibly billed without looking. See docs/render-job.md, "Lost creates".
 */
export interface ImageModelProvider {
  /** Who this is, as failure messages name it (`classifyFailure`). */
  readonly identity: ProviderIdentity;
  /** How long the provider keeps a prediction's inputs and outputs after its creation: a lookup can only find it inside. */
  readonly retentionMs: number;
  create(request: CreatePredictionRequest): Promise<CreatedPrediction>;
  get(id: string, signal?: AbortSignal): Promise<Prediction>;
  cancel(id: string, signal?: AbortSignal): Promise<Prediction>;
  /** Predictions created in [since, until], newest first, as Replicate lists them (account-wide). */
  listCreatedBetween?(since: Date, until: Date, signal?: AbortSignal): AsyncGenerator<Prediction>;
  /** The prediction of `model` created since `since` whose input equals `input` exactly, if one exists. */
  findByInput?(
    model: ModelId,
    input: ModelInput,
    since: Date,
    signal?: AbortSignal,
    accept?: (prediction: Prediction) => Promise<boolean>,
  ): Promise<Prediction | undefined>;
  /**
   * The same, by the input's `inputFingerprint`: what a job that crashed mid-create kept of what it sent. Looks only at
   * predictions created in [since, until] (`until` defaults to now + the clock skew), newest first, and returns the
   * first that `accept` (default: any) takes.
   */
  findByFingerprint?(
    model: ModelId,
    fingerprint: string,
    since: Date,
    signal?: AbortSignal,
    until?: Date,
    accept?: (prediction: Prediction) => Promise<boolean>,
  ): Promise<Prediction | undefined>;
  /** Resolves once the prediction is succeeded, failed, canceled or aborted, polling with growing intervals. */
  awaitTerminal(prediction: Prediction, options?: AwaitOptions): Promise<Prediction>;
}

/** What the money rule knows of a prediction from one of its answers. */
export function sightingOf(prediction: Prediction, flagged = false): PredictionSighting {
  const started = prediction.status !== 'aborted' && Boolean(prediction.startedAt);
  return {
    status: prediction.status,
    started,
    ...(flagged ? { flagged } : {}),
    ...(prediction.status === 'succeeded' ? { imageCount: imageCountOfPrediction(prediction) } : {}),
  };
}

/** The images a succeeded prediction made (and was billed for): its metrics say, else its output URLs, else one. */
export function imageCountOfPrediction(prediction: Prediction, expectedImages = 1): number {
  const urls = prediction.outputUrls.length;
  return prediction.imageCount ?? (urls > 0 ? urls : expectedImages);
}
