/**
 * Which job owns which prediction. Reconciliation finds a lost create by its input, and two jobs can send the same input
 * (a manifest with a seed column ingested as two runs, a duplicated row): without an owner, both could adopt one
 * prediction — one paid image recorded twice, another paid and recorded by nobody. A prediction is claimed by the job
 * that created or adopted it (`HSETNX`), and a lookup skips predictions another job has claimed.
 *
 * One hash per queue prefix, one field per prediction: 101 bytes of Redis each, 10 MB per 100,000 predictions
 * (`npm run bench:ledger-memory`, docs/queue-and-ledger.md). Fields are never removed:
 * a prediction id is never reused, and the hash is what says, after the fact, which job paid for which prediction.
 */
import type { Redis } from 'ioredis';

/** The claims port of the render job: `RedisPredictionClaims` in production, a Map in unit tests. */
export interface PredictionClaims {
  /** True when `jobId` owns the prediction now (it claimed it now or before); false when another job owns it. */
  claim(predictionId: string, jobId: string): Promise<boolean>;
  /** The job that owns the prediction, if one does. */
  ownerOf(predictionId: string): Promise<string | undefined>;
}

export class RedisPredictionClaims implements PredictionClaims {
  readonly #redis: Redis;
  readonly #key: string;

  /** `queueKeyPrefix`: `<prefix>:<queue>`, as BullMQ names the queue's keys. */
  constructor(redis: Redis, queueKeyPrefix: string) {
    this.#redis = redis;
    this.#key = `${queueKeyPrefix}:prediction-owner`;
  }

  async claim(predictionId: string, jobId: string): Promise<boolean> {
    if ((await this.#redis.hsetnx(this.#key, predictionId, jobId)) === 1) return true;
    return (await this.#redis.hget(this.#key, predictionId)) === jobId;
  }

  async ownerOf(predictionId: string): Promise<string | undefined> {
    return (await this.#redis.hget(this.#key, predictionId)) ?? undefined;
  }
}

/** In memory: for unit tests and single-process tools. */
export class MemoryPredictionClaims implements PredictionClaims {
  readonly owners = new Map<string, string>();

  async claim(predictionId: string, jobId: string): Promise<boolean> {
    const owner = this.owners.get(predictionId);
    if (owner === undefined) this.owners.set(predictionId, jobId);
    return (owner ?? jobId) === jobId;
  }

  async ownerOf(predictionId: string): Promise<string | undefined> {
    return this.owners.get(predictionId);
  }
}
