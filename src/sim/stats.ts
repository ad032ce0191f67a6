/**
 * What the simulator counts, so tests and demos can check the property that matters most — one paid prediction per
 * image — from the provider's side: `inputsBilledMoreThanOnce` must stay 0 however often workers crash and resume.
 */
import type { WebhookStats } from './webhooks.js';

export const predictionStatuses = ['starting', 'processing', 'succeeded', 'failed', 'canceled', 'aborted'] as const;
export type PredictionStatus = (typeof predictionStatuses)[number];

export interface DuplicateBilledInput {
  /** The content key: sha256 of model + complete input, image URLs replaced by the sha256 of their bytes. */
  readonly key: string;
  readonly count: number;
  readonly predictionIds: readonly string[];
}

export interface SimulatorStats {
  /** Every request under /v1, whatever its outcome. */
  readonly requests: number;
  /** Create requests received, whatever their outcome. */
  readonly createRequests: number;
  /** Predictions created (201, or created and then lost to an injected connection reset). */
  readonly creates: number;
  /** 429 answers. */
  readonly throttled: number;
  /** Injected 500/502/503 answers. */
  readonly serverErrors: number;
  /** Injected connection resets (creates and other requests). */
  readonly resets: number;
  readonly unauthorized: number;
  /** 422 answers to creates. */
  readonly validationErrors: number;
  readonly gets: number;
  readonly lists: number;
  readonly cancels: number;
  readonly modelGets: number;
  /** Predictions by their current status. */
  readonly predictions: Readonly<Record<PredictionStatus, number>>;
  /** Predictions that ended flagged (E005, or flux-depth-dev's NSFW message). */
  readonly flagged: number;
  /** Succeeded predictions plus predictions canceled while running (Replicate charges both; `aborted` is free). */
  readonly billedPredictions: number;
  /** Images of succeeded predictions: what a per-image price is charged for. */
  readonly billedImages: number;
  readonly canceledWhileRunning: number;
  /** Distinct content keys among billed predictions. */
  readonly billedInputs: number;
  /** Content keys billed more than once: duplicate paid work, which depthq must never cause. */
  readonly inputsBilledMoreThanOnce: number;
  readonly duplicateBilledInputs: readonly DuplicateBilledInput[];
  readonly webhooks: WebhookStats;
  /** Bytes of rendered outputs still held (released at retention). */
  readonly outputBytesHeld: number;
}

export interface RequestCounters {
  requests: number;
  createRequests: number;
  creates: number;
  throttled: number;
  serverErrors: number;
  resets: number;
  unauthorized: number;
  validationErrors: number;
  gets: number;
  lists: number;
  cancels: number;
  modelGets: number;
}

export function emptyRequestCounters(): RequestCounters {
  return {
    requests: 0,
    createRequests: 0,
    creates: 0,
    throttled: 0,
    serverErrors: 0,
    resets: 0,
    unauthorized: 0,
    validationErrors: 0,
    gets: 0,
    lists: 0,
    cancels: 0,
    modelGets: 0,
  };
}

/** Billed predictions per content key. */
export class BillingLedger {
  private readonly byKey = new Map<string, string[]>();
  predictions = 0;
  images = 0;

  record(contentKey: string, predictionId: string, images: number): void {
    const ids = this.byKey.get(contentKey);
    if (ids) ids.push(predictionId);
    else this.byKey.set(contentKey, [predictionId]);
    this.predictions += 1;
    this.images += images;
  }

  distinctInputs(): number {
    return this.byKey.size;
  }

  duplicates(): DuplicateBilledInput[] {
    const duplicates: DuplicateBilledInput[] = [];
    for (const [key, ids] of this.byKey) {
      if (ids.length > 1) duplicates.push({ key, count: ids.length, predictionIds: [...ids] });
    }
    return duplicates;
  }
}
