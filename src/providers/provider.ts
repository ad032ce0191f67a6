/**
 * The model API as depthq needs it, behind one interface, so the pipeline never sees HTTP and a second provider (or a
 * replay of recorded predictions) can stand in. Replicate is the one implementation (`replicate.ts`).
 */
import { z } from 'zod';
import type { FailureFacts, ProviderIdentity } from '../core/errors.js';
import { type ModelId, type ModelInput, outputUrlsOf } from '../core/models.js';
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

/** The part of Replicate's prediction object depthq relies on; everything else passes through untouched. */
export const predictionSchema = z.looseObject({
  id: z.string().min(1),
  model: z.string().optional(),
  version: z.string().optional(),
  status: predictionStatusSchema,
  input: z.record(z.string(), z.unknown()).nullish(),
  output: z.unknown().optional(),
  error: z.unknown().optional(),
  logs: z.string().nullish(),
  data_removed: z.boolean().optional(),
  created_at: z.string(),
  started_at: z.string().nullish(),
  completed_at: z.string().nullish(),
  metrics: z
    .looseObject({
      predict_time: z.number().optional(),
      total_time: z.number().optional(),
      image_count: z.number().optional(),
    })
    .nullish(),
});
export type Prediction = z.infer<typeof predictionSchema>;

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

export interface ImageModelProvider {
  /** Who this is, as failure messages name it (`classifyFailure`). */
  readonly identity: ProviderIdentity;
  create(request: CreatePredictionRequest): Promise<CreatedPrediction>;
  get(id: string, signal?: AbortSignal): Promise<Prediction>;
  cancel(id: string, signal?: AbortSignal): Promise<Prediction>;
  /** Predictions created in [since, until], newest first, as Replicate lists them (account-wide). */
  listCreatedBetween(since: Date, until: Date, signal?: AbortSignal): AsyncGenerator<Prediction>;
  /** The prediction of `model` created since `since` whose input equals `input` exactly, if one exists. */
  findByInput(
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
  findByFingerprint(
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
  const started = prediction.status !== 'aborted' && Boolean(prediction.started_at);
  return {
    status: prediction.status,
    started,
    ...(flagged ? { flagged } : {}),
    ...(prediction.status === 'succeeded' ? { imageCount: imageCountOfPrediction(prediction) } : {}),
  };
}

/** The images a succeeded prediction made (and was billed for): its metrics say, else its output URLs, else one. */
export function imageCountOfPrediction(prediction: Prediction, expectedImages = 1): number {
  const urls = outputUrlsOf(prediction.output).length;
  return prediction.metrics?.image_count ?? (urls > 0 ? urls : expectedImages);
}
