/**
 * Webhook deliveries, signed the Standard Webhooks way Replicate does: headers `webhook-id`, `webhook-timestamp`
 * (Unix seconds) and `webhook-signature` = `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, keyed by the base64-decoded
 * part of the `whsec_…` secret. A message keeps its id across retries (receivers deduplicate on it) and is re-signed
 * with a fresh timestamp per attempt. Deliveries for one prediction go out in order; non-2xx answers (redirects
 * included: Replicate follows none) and network errors are retried with doubling delays.
 */
import { createHmac, randomBytes } from 'node:crypto';
import type { TimerSet } from './timer-set.js';

export const webhookEventTypes = ['start', 'output', 'logs', 'completed'] as const;
export type WebhookEventType = (typeof webhookEventTypes)[number];

export function isWebhookEventType(value: unknown): value is WebhookEventType {
  return typeof value === 'string' && (webhookEventTypes as readonly string[]).includes(value);
}

export function generateWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

export function signWebhook(secret: string, id: string, timestamp: number, body: string): string {
  const key = Buffer.from(secret.slice(secret.indexOf('_') + 1), 'base64');
  return `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
}

export interface WebhookDeliveryOptions {
  readonly secret: string;
  /** Attempts per message, the first included. */
  readonly attempts: number;
  readonly initialDelayMs: number;
  readonly timeoutMs: number;
  readonly timers: TimerSet;
}

export interface WebhookStats {
  /** Messages queued (one per event per prediction). */
  readonly messages: number;
  /** HTTP requests made, retries included. */
  readonly attempts: number;
  readonly delivered: number;
  /** Messages given up on after every attempt failed. */
  readonly failed: number;
}

export class WebhookDispatcher {
  private readonly chains = new Map<string, Promise<void>>();
  private readonly inFlight = new Set<AbortController>();
  private closed = false;
  private counts = { messages: 0, attempts: 0, delivered: 0, failed: 0 };

  constructor(private readonly options: WebhookDeliveryOptions) {}

  /** Queues `payload` (serialised now: later changes to the prediction do not leak into this event). */
  send(predictionId: string, url: string, payload: unknown): void {
    if (this.closed) return;
    this.counts.messages += 1;
    const body = JSON.stringify(payload);
    const id = `msg_${randomBytes(16).toString('hex')}`;
    const previous = this.chains.get(predictionId) ?? Promise.resolve();
    const next = previous.then(() => this.deliver(url, id, body));
    this.chains.set(predictionId, next);
    void next.then(() => {
      if (this.chains.get(predictionId) === next) this.chains.delete(predictionId);
    });
  }

  stats(): WebhookStats {
    return { ...this.counts };
  }

  close(): void {
    this.closed = true;
    for (const controller of this.inFlight) controller.abort();
    this.inFlight.clear();
  }

  private async deliver(url: string, id: string, body: string): Promise<void> {
    for (let attempt = 1; attempt <= this.options.attempts; attempt++) {
      if (this.closed) return;
      if (await this.attempt(url, id, body)) {
        this.counts.delivered += 1;
        return;
      }
      if (attempt < this.options.attempts) {
        await this.options.timers.sleep(this.options.initialDelayMs * 2 ** (attempt - 1));
      }
    }
    if (!this.closed) this.counts.failed += 1;
  }

  private async attempt(url: string, id: string, body: string): Promise<boolean> {
    this.counts.attempts += 1;
    const timestamp = Math.floor(Date.now() / 1000);
    const controller = new AbortController();
    this.inFlight.add(controller);
    const cancelTimeout = this.options.timers.after(this.options.timeoutMs, () => controller.abort());
    try {
      const response = await fetch(url, {
        method: 'POST',
        redirect: 'manual',
        signal: controller.signal,
        headers: {
          'Content-Type': 'application/json',
          'User-Agent': 'depthq-sim-webhooks',
          'webhook-id': id,
          'webhook-timestamp': String(timestamp),
          'webhook-signature': signWebhook(this.options.secret, id, timestamp, body),
        },
        body,
      });
      await response.body?.cancel().catch(() => undefined);
      return response.status >= 200 && response.status < 300;
    } catch {
      return false;
    } finally {
      cancelTimeout();
      this.inFlight.delete(controller);
    }
  }
}
