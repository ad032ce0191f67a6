/**
 * Replicate's account rate limits as token buckets: one for prediction creates, one for every other API request.
 * A bucket holds `burst` tokens and refills at `perMinute / 60` tokens a second, which is "N per minute, short bursts
 * allowed". `throttleNext` forces the next requests to 429 whatever the buckets hold, for tests of a 429 storm.
 */

export type RequestKind = 'create' | 'other';

export interface Throttled {
  readonly retryAfterSeconds: number;
}

export class TokenBucket {
  private tokens: number;
  private updatedAt: number;
  private readonly perMs: number;

  constructor(
    perMinute: number,
    private readonly capacity: number,
    private readonly now: () => number,
  ) {
    this.perMs = perMinute / 60_000;
    this.tokens = capacity;
    this.updatedAt = now();
  }

  /** Takes one token, or says how many whole seconds until one is there. */
  take(): Throttled | undefined {
    const now = this.now();
    this.tokens = Math.min(this.capacity, this.tokens + (now - this.updatedAt) * this.perMs);
    this.updatedAt = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return undefined;
    }
    return { retryAfterSeconds: Math.max(1, Math.ceil((1 - this.tokens) / this.perMs / 1000)) };
  }
}

export interface RateLimiterOptions {
  readonly createsPerMinute: number;
  readonly requestsPerMinute: number;
  readonly createsBurst: number;
  readonly requestsBurst: number;
  readonly now?: () => number;
}

export class RateLimiter {
  private readonly creates: TokenBucket;
  private readonly others: TokenBucket;
  private forced: { remaining: number; retryAfterSeconds: number } = { remaining: 0, retryAfterSeconds: 1 };

  constructor(options: RateLimiterOptions) {
    const now = options.now ?? Date.now;
    this.creates = new TokenBucket(options.createsPerMinute, options.createsBurst, now);
    this.others = new TokenBucket(options.requestsPerMinute, options.requestsBurst, now);
  }

  /** Forces the next `count` API requests (of any kind) to 429 with this Retry-After. */
  throttleNext(count: number, retryAfterSeconds: number): void {
    if (!Number.isInteger(count) || count < 0) throw new RangeError(`count must be a whole number ≥ 0, got ${count}`);
    if (!Number.isInteger(retryAfterSeconds) || retryAfterSeconds < 1) {
      throw new RangeError(`retryAfterSeconds must be a whole number ≥ 1, got ${retryAfterSeconds}`);
    }
    this.forced = { remaining: count, retryAfterSeconds };
  }

  check(kind: RequestKind): Throttled | undefined {
    if (this.forced.remaining > 0) {
      this.forced.remaining -= 1;
      return { retryAfterSeconds: this.forced.retryAfterSeconds };
    }
    return (kind === 'create' ? this.creates : this.others).take();
  }
}

/** Replicate's "short bursts": a tenth of a minute's allowance, at least one request. */
export function defaultBurst(perMinute: number): number {
  return Math.max(1, Math.floor(perMinute / 10));
}
