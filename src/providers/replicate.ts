/**
 * Replicate behind `ImageModelProvider`, through the official `replicate` client with depthq's own transport
 * (`transport.ts`): the transport owns retries; this module owns the meaning of a create whose answer was lost.
 *
 * "One paid prediction per image" rests on `create`: Replicate takes no idempotency key, so when a create's response is
 * lost (network error, timeout, 5xx) the prediction may or may not exist. It is never re-sent blindly: the predictions
 * created since just before the send are listed and the one whose input matches exactly is adopted; only when none does
 * is the create sent again.
 */
import Replicate from 'replicate';
import { z } from 'zod';
import type { ProviderIdentity } from '../core/errors.js';
import { inputFingerprint } from '../core/fingerprint.js';
import { type ModelId, type ModelInput, outputUrlsOf } from '../core/models.js';
import { ProviderHttpError, ProviderNetworkError } from './http-errors.js';
import {
  type AwaitOptions,
  type CreatedPrediction,
  CreateOutcomeUnknownError,
  type CreatePredictionRequest,
  type ImageModelProvider,
  type Prediction,
  ProviderCallError,
  predictionStatusSchema,
  terminalStatuses,
} from './provider.js';
import { abortableSleep, createProviderFetch, type TransportOptions } from './transport.js';

export interface PollPolicy {
  /** First wait between two GETs of one prediction; it doubles up to `maxMs`, jittered, so a fleet stays under the limit. */
  readonly initialMs: number;
  readonly maxMs: number;
}

export interface ReplicateProviderOptions {
  readonly apiToken: string;
  /** `https://api.replicate.com/v1`, or a depthq simulator's `…/v1`. */
  readonly baseUrl: string;
  readonly userAgent?: string;
  readonly transport?: TransportOptions;
  readonly poll?: Partial<PollPolicy>;
  /** How many times a create whose outcome was unknown (and found by nobody) is sent again. */
  readonly maxCreateAttempts?: number;
  /** Clock skew allowed between this machine and Replicate when listing by creation time. */
  readonly clockSkewMs?: number;
  /** How long Replicate keeps a prediction's inputs and outputs (one hour; a simulator's may be shorter). */
  readonly retentionMs?: number;
  readonly random?: () => number;
  readonly sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  readonly now?: () => number;
}

/** The part of Replicate's prediction object depthq relies on; everything else passes through untouched. */
export const replicatePredictionSchema = z.looseObject({
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
export type ReplicatePrediction = z.infer<typeof replicatePredictionSchema>;

/** The seed flux models print (`Using seed: 42`). */
function loggedSeedOf(logs: string | null | undefined): number | null {
  const match = /Using seed: (\d+)/.exec(logs ?? '');
  return match ? Number(match[1]) : null;
}

function errorTextOf(error: unknown): string | null {
  if (typeof error === 'string') return error;
  if (error === null || error === undefined) return null;
  return JSON.stringify(error);
}

/** Replicate's JSON as depthq's provider-neutral `Prediction`. */
export function predictionOfReplicate(raw: ReplicatePrediction): Prediction {
  const imageCount = raw.metrics?.image_count;
  return {
    id: raw.id,
    status: raw.status,
    createdAt: raw.created_at,
    startedAt: raw.started_at ?? null,
    completedAt: raw.completed_at ?? null,
    outputUrls: outputUrlsOf(raw.output),
    ...(imageCount === undefined ? {} : { imageCount }),
    predictTimeSeconds: raw.metrics?.predict_time ?? null,
    loggedSeed: loggedSeedOf(raw.logs),
    error: errorTextOf(raw.error),
    ...(raw.input ? { input: raw.input } : {}),
    dataRemoved: raw.data_removed ?? false,
  };
}

/** How failure messages name Replicate and where its account problems are fixed. */
export const replicateIdentity: ProviderIdentity = {
  name: 'Replicate',
  tokenSetting: 'REPLICATE_API_TOKEN',
  baseUrlSetting: 'REPLICATE_BASE_URL',
  billingUrl: 'https://replicate.com/account/billing',
};

/** Replicate deletes a prediction's inputs and outputs one hour after its creation. */
export const replicateRetentionMs = 60 * 60_000;

export const defaultPollPolicy: PollPolicy = { initialMs: 1_000, maxMs: 15_000 };

/** The prediction is still running when the caller's deadline passed; it goes on at Replicate (and may be adopted later). */
export class AwaitDeadlineError extends Error {
  override readonly name = 'AwaitDeadlineError';

  constructor(readonly prediction: Prediction) {
    super(`prediction ${prediction.id} is still ${prediction.status} at the deadline`);
  }
}

/** Whole seconds, as Replicate's `Cancel-After` header takes durations (`90s`). */
export function cancelAfterHeader(ms: number): string {
  return `${Math.max(1, Math.ceil(ms / 1000))}s`;
}

function isOutcomeUnknown(error: unknown): boolean {
  if (error instanceof ProviderNetworkError) return true;
  // A 5xx may come from a proxy after the prediction was created: its outcome is as unknown as a reset's.
  return error instanceof ProviderHttpError && error.status >= 500;
}

export class ReplicateProvider implements ImageModelProvider {
  readonly identity = replicateIdentity;
  readonly retentionMs: number;
  /** The logs of each prediction this adapter answered with: `awaitTerminal` reports a change of logs too. */
  private readonly logsOf = new WeakMap<Prediction, string | null | undefined>();
  private readonly client: Replicate;
  private readonly poll: PollPolicy;
  private readonly maxCreateAttempts: number;
  private readonly clockSkewMs: number;
  private readonly random: () => number;
  private readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  private readonly now: () => number;

  constructor(options: ReplicateProviderOptions) {
    this.random = options.random ?? Math.random;
    this.sleep = options.sleep ?? abortableSleep;
    this.now = options.now ?? Date.now;
    this.client = new Replicate({
      auth: options.apiToken,
      baseUrl: options.baseUrl,
      userAgent: options.userAgent ?? 'depthq/0.1',
      // Outputs are downloaded by depthq's storage (streamed and hashed into S3), not wrapped by the client.
      useFileOutput: false,
      fetch: createProviderFetch({
        random: this.random,
        sleep: this.sleep,
        now: this.now,
        provider: replicateIdentity,
        ...options.transport,
      }),
    });
    this.poll = { ...defaultPollPolicy, ...options.poll };
    this.maxCreateAttempts = options.maxCreateAttempts ?? 3;
    this.clockSkewMs = options.clockSkewMs ?? 60_000;
    this.retentionMs = options.retentionMs ?? replicateRetentionMs;
  }

  async create(request: CreatePredictionRequest): Promise<CreatedPrediction> {
    const headers: Record<string, string> = {};
    if (request.waitSeconds !== undefined && request.waitSeconds > 0) {
      headers.Prefer = `wait=${Math.min(60, Math.ceil(request.waitSeconds))}`;
    }
    if (request.cancelAfterMs !== undefined) headers['Cancel-After'] = cancelAfterHeader(request.cancelAfterMs);
    const body: Record<string, unknown> = { input: request.input };
    if (request.webhook) {
      body.webhook = request.webhook.url;
      body.webhook_events_filter = [...request.webhook.events];
    }
    const sentAt = this.now();
    let outcomeUnknown = false;
    for (let send = 1; ; send++) {
      try {
        if (send > 1) await request.beforeResend?.(send);
        const response = await this.client.request(`/models/${request.model}/predictions`, {
          method: 'POST',
          headers,
          data: body,
          ...(request.signal ? { signal: request.signal } : {}),
        });
        return { prediction: this.parse(await response.json()), adopted: false };
      } catch (error) {
        // Once a send's outcome was unknown, no later answer (a 4xx to a re-send, a 429 on the list) can say that
        // nothing was created: only finding the prediction, or the caller's own reconciliation, can settle it.
        const failure =
          outcomeUnknown && error instanceof ProviderCallError ? new CreateOutcomeUnknownError(error) : error;
        if (!isOutcomeUnknown(error) || request.signal?.aborted) throw failure;
        outcomeUnknown = true;
        let found: Prediction | undefined;
        try {
          found = await this.findByInput(
            request.model,
            request.input,
            new Date(sentAt - this.clockSkewMs),
            request.signal,
            request.mayAdopt,
          );
        } catch (lookupError) {
          throw lookupError instanceof ProviderCallError ? new CreateOutcomeUnknownError(lookupError) : lookupError;
        }
        if (found) return { prediction: found, adopted: true };
        if (send >= this.maxCreateAttempts) throw failure;
        await this.sleep(this.poll.initialMs * 2 ** (send - 1) * (0.5 + this.random() / 2), request.signal);
      }
    }
  }

  private parse(raw: unknown): Prediction {
    return this.mapped(replicatePredictionSchema.parse(raw));
  }

  private mapped(raw: ReplicatePrediction): Prediction {
    const prediction = predictionOfReplicate(raw);
    this.logsOf.set(prediction, raw.logs);
    return prediction;
  }

  async get(id: string, signal?: AbortSignal): Promise<Prediction> {
    const raw: unknown = await this.client.predictions.get(id, signal ? { signal } : {});
    return this.parse(raw);
  }

  async cancel(id: string, signal?: AbortSignal): Promise<Prediction> {
    const raw: unknown = await this.client.predictions.cancel(id, signal ? { signal } : {});
    return this.parse(raw);
  }

  /**
   * Replicate lists newest first. The window is also sent as filters, but paging stops on its own once a page reaches
   * predictions older than `since`: a server that ignores the filters must not make a lookup page through an hour of an
   * account's predictions (hundreds of pages against a 3,000 GET/min limit). An item that does not parse (a foreign
   * prediction with a status or field depthq does not know) is skipped: it cannot be one of depthq's, and one odd
   * prediction must not make every reconciliation fail.
   */
  async *listCreatedBetween(since: Date, until: Date, signal?: AbortSignal): AsyncGenerator<Prediction> {
    for await (const raw of this.listRawCreatedBetween(since, until, signal)) yield this.mapped(raw);
  }

  private async *listRawCreatedBetween(
    since: Date,
    until: Date,
    signal?: AbortSignal,
  ): AsyncGenerator<ReplicatePrediction> {
    let route: string | URL = '/predictions';
    let params: Record<string, string> | undefined = {
      created_after: since.toISOString(),
      created_before: until.toISOString(),
    };
    const sinceMs = since.getTime();
    const untilMs = until.getTime();
    for (;;) {
      const response = await this.client.request(route, {
        method: 'GET',
        ...(params ? { params } : {}),
        ...(signal ? { signal } : {}),
      });
      const page = (await response.json()) as { results?: unknown[]; next?: string | null };
      let pastWindow = false;
      for (const item of page.results ?? []) {
        const parsed = replicatePredictionSchema.safeParse(item);
        if (!parsed.success) continue;
        const createdMs = Date.parse(parsed.data.created_at);
        if (createdMs < sinceMs) {
          pastWindow = true;
          continue;
        }
        if (createdMs > untilMs) continue;
        yield parsed.data;
      }
      if (!page.next || pastWindow) return;
      // `next` is a full URL that already carries the cursor and the filters.
      route = new URL(page.next);
      params = undefined;
    }
  }

  findByInput(
    model: ModelId,
    input: ModelInput,
    since: Date,
    signal?: AbortSignal,
    accept?: (prediction: Prediction) => Promise<boolean>,
  ): Promise<Prediction | undefined> {
    return this.findByFingerprint(model, inputFingerprint(input), since, signal, undefined, accept);
  }

  async findByFingerprint(
    model: ModelId,
    fingerprint: string,
    since: Date,
    signal?: AbortSignal,
    until: Date = new Date(this.now() + this.clockSkewMs),
    accept?: (prediction: Prediction) => Promise<boolean>,
  ): Promise<Prediction | undefined> {
    for await (const raw of this.listRawCreatedBetween(since, until, signal)) {
      if (raw.model !== undefined && raw.model !== model) continue;
      if (!raw.input || inputFingerprint(raw.input) !== fingerprint) continue;
      const prediction = this.mapped(raw);
      if (accept === undefined || (await accept(prediction))) return prediction;
    }
    return undefined;
  }

  async awaitTerminal(prediction: Prediction, options: AwaitOptions = {}): Promise<Prediction> {
    let current = prediction;
    let intervalMs = this.poll.initialMs;
    while (!terminalStatuses.has(current.status)) {
      // Equal jitter: never much sooner than the interval (so the fleet's GET rate stays bounded), never in lock-step.
      let waitMs = intervalMs / 2 + (this.random() * intervalMs) / 2;
      if (options.deadlineMs !== undefined) {
        const left = options.deadlineMs - this.now();
        if (left <= 0) throw new AwaitDeadlineError(current);
        waitMs = Math.min(waitMs, left);
      }
      await this.sleep(waitMs, options.signal);
      const next = await this.get(current.id, options.signal);
      if (next.status !== current.status || this.logsOf.get(next) !== this.logsOf.get(current)) {
        await options.onUpdate?.(next);
      }
      current = next;
      intervalMs = Math.min(intervalMs * 2, this.poll.maxMs);
    }
    return current;
  }
}
