/**
 * A prediction as the simulator holds it, and its JSON as Replicate's API shows it. Fields follow production: `version`
 * is "hidden" for official models, `started_at`/`completed_at` appear once they happen, `metrics` once it ended.
 */
import { randomBytes } from 'node:crypto';
import type { ModelDefinition, ModelInput } from '../core/models.js';
import type { PredictionStatus } from './stats.js';
import type { WebhookEventType } from './webhooks.js';

export interface PredictionRecord {
  readonly id: string;
  /** Creation order, for stable newest-first listing when two share a millisecond. */
  readonly sequence: number;
  readonly model: ModelDefinition;
  /** The input exactly as sent; emptied at retention. */
  input: Readonly<Record<string, unknown>>;
  /** Validated, defaults filled: what the model runs with. */
  readonly completeInput: ModelInput;
  /** The seed used: the input's, or a random one (printed in the logs, as FLUX models do). */
  readonly seed: number;
  readonly imageCount: number;
  status: PredictionStatus;
  output: string | string[] | null;
  logs: string;
  error: string | null;
  readonly createdAt: number;
  startedAt?: number;
  completedAt?: number;
  readonly deadlineAt?: number;
  dataRemoved: boolean;
  /** Retention passed while it still ran: remove the data as soon as it ends. */
  removeWhenDone: boolean;
  readonly webhook?: string;
  readonly webhookEvents: ReadonlySet<WebhookEventType>;
  /** Decided at create (PRNG): the prediction ends `failed` with a generic error. */
  readonly failByFault: boolean;
  canceledWhileRunning: boolean;
  /** Known once the image inputs were fetched. */
  contentKey?: string;
}

export const terminalStatuses: ReadonlySet<PredictionStatus> = new Set(['succeeded', 'failed', 'canceled', 'aborted']);

export function isTerminal(status: PredictionStatus): boolean {
  return terminalStatuses.has(status);
}

const idAlphabet = '0123456789abcdefghjkmnpqrstvwxyz';

/** 26 lowercase base32 characters, like Replicate's prediction ids. */
export function newPredictionId(): string {
  return Array.from(randomBytes(26), (byte) => idAlphabet[byte % 32]).join('');
}

function iso(ms: number | undefined): string | undefined {
  return ms === undefined ? undefined : new Date(ms).toISOString();
}

export function predictionJson(prediction: PredictionRecord, publicUrl: string): Record<string, unknown> {
  const apiUrl = `${publicUrl}/v1/predictions/${prediction.id}`;
  const json: Record<string, unknown> = {
    id: prediction.id,
    model: prediction.model.id,
    version: 'hidden',
    input: prediction.input,
    logs: prediction.logs,
    output: prediction.output,
    data_removed: prediction.dataRemoved,
    error: prediction.error,
    source: 'api',
    status: prediction.status,
    created_at: iso(prediction.createdAt),
  };
  if (prediction.startedAt !== undefined) json.started_at = iso(prediction.startedAt);
  if (prediction.completedAt !== undefined) json.completed_at = iso(prediction.completedAt);
  if (prediction.deadlineAt !== undefined) json.deadline = iso(prediction.deadlineAt);
  if (prediction.webhook !== undefined) {
    json.webhook = prediction.webhook;
    json.webhook_events_filter = [...prediction.webhookEvents];
  }
  json.urls = { get: apiUrl, cancel: `${apiUrl}/cancel`, web: `${publicUrl}/p/${prediction.id}` };
  if (prediction.completedAt !== undefined) {
    const metrics: Record<string, number> = {
      total_time: (prediction.completedAt - prediction.createdAt) / 1000,
    };
    if (prediction.startedAt !== undefined)
      metrics.predict_time = (prediction.completedAt - prediction.startedAt) / 1000;
    if (prediction.status === 'succeeded') metrics.image_count = prediction.imageCount;
    json.metrics = metrics;
  }
  return json;
}
