/**
 * Publishes a worker's telemetry (src/core/telemetry.ts) to Redis for the dashboard's /metrics: every `intervalMs` one
 * pipelined batch — an HINCRBY per field that changed, the worker's heartbeat (HSET worker id → now) and the heartbeat
 * hash's expiry. The cost per image is nothing: a worker makes one round trip every interval, however many images it
 * renders. A batch that fails (Redis away) is given back to the accumulator and sent with the next one.
 * Keys: `telemetryKeys` (src/core/keys.ts); the whole picture: docs/metrics.md.
 */
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import { telemetryKeys } from '../core/keys.js';
import { TelemetryAccumulator } from '../core/telemetry.js';

/** @defaultValue how often workers publish: often enough for a 15 s scrape, rare enough to cost Redis nothing. */
export const DEFAULT_TELEMETRY_INTERVAL_MS = 2_000;

/** The heartbeat hash lives a day past its last write, so a fleet that is gone for good leaves nothing behind. */
const HEARTBEATS_TTL_MS = 24 * 3_600_000;

/** How long a closing worker waits for its last batch. */
const STOP_DEADLINE_MS = 2_000;

export interface TelemetryPublisherOptions {
  /** How this worker is named in the heartbeats: `<hostname>:<pid>` by default (a container's hostname is its id). */
  readonly workerId?: string;
  readonly intervalMs?: number;
  readonly now?: () => number;
  /** A failed publish (the counts are kept for the next one). */
  readonly onError?: (error: unknown) => void;
}

export class RedisTelemetryPublisher {
  /** What the worker's hooks count into. */
  readonly telemetry = new TelemetryAccumulator();
  readonly workerId: string;
  readonly #redis: Redis;
  readonly #keys: ReturnType<typeof telemetryKeys>;
  readonly #intervalMs: number;
  readonly #now: () => number;
  readonly #onError: (error: unknown) => void;
  #timer: NodeJS.Timeout | undefined;
  #publishing: Promise<void> | undefined;

  constructor(redis: Redis, prefix: string, options: TelemetryPublisherOptions = {}) {
    this.#redis = redis;
    this.#keys = telemetryKeys(prefix);
    this.workerId = options.workerId ?? `${hostname()}:${process.pid}`;
    this.#intervalMs = options.intervalMs ?? DEFAULT_TELEMETRY_INTERVAL_MS;
    this.#now = options.now ?? Date.now;
    this.#onError = options.onError ?? (() => undefined);
  }

  /** Publishes now (the first heartbeat) and then every interval, until `stop`. */
  start(): void {
    if (this.#timer !== undefined) return;
    void this.publish();
    this.#timer = setInterval(() => void this.publish(), this.#intervalMs);
    // Telemetry never keeps a process alive.
    this.#timer.unref();
  }

  /**
   * One batch: the counts so far and the heartbeat. While one is in flight (a slow Redis) a tick joins it instead of
   * sending another, so nothing piles up. Never throws: a failure goes to `onError` and the counts stay for the next.
   */
  publish(): Promise<void> {
    this.#publishing ??= this.#publishOnce().finally(() => {
      this.#publishing = undefined;
    });
    return this.#publishing;
  }

  async #publishOnce(): Promise<void> {
    // A connection that is not ready would queue the batch (workers' connections retry for ever): keep the counts.
    if (this.#redis.status !== 'ready') return;
    const counts = this.telemetry.drain();
    const batch = this.#redis.pipeline();
    for (const [field, amount] of counts) batch.hincrby(this.#keys.counters, field, amount);
    batch.hset(this.#keys.workers, this.workerId, String(this.#now()));
    batch.pexpire(this.#keys.workers, HEARTBEATS_TTL_MS);
    try {
      const replies = await batch.exec();
      const failed = replies?.find(([error]) => error !== null)?.[0];
      if (replies === null || failed) throw failed ?? new Error('the telemetry pipeline was not executed');
    } catch (error) {
      // HINCRBY either applied or not: with a lost reply (a connection cut mid-batch) a count may be sent twice. It is
      // telemetry, not money; the ledger is the record of what was spent.
      this.telemetry.restore(counts);
      this.#onError(error);
    }
  }

  /**
   * Stops the timer and publishes what is left, with the heartbeat removed: a worker that shut down cleanly is not
   * shown as alive until its heartbeat ages out.
   */
  async stop(deadlineMs = STOP_DEADLINE_MS): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    const last = (async () => {
      await this.#publishing;
      await this.publish();
      if (this.#redis.status === 'ready') await this.#redis.hdel(this.#keys.workers, this.workerId);
    })().catch((error: unknown) => this.#onError(error));
    // A Redis that went away mid-batch would hold the worker's shutdown for ever: telemetry gives up first.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([last, new Promise((resolve) => (timer = setTimeout(resolve, deadlineMs)))]);
    clearTimeout(timer);
  }
}
