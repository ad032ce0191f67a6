/**
 * The create limiter's shape (src/queue/render-queue.ts `createLimiterOf`): a smooth rate with short bursts. A backlogged
 * fleet that starts jobs as fast as BullMQ's fixed window lets it — the window's `max` at its first instant, the next
 * window as soon as the last one expired — is played against the simulator's own token bucket (src/sim/rate-limit.ts)
 * on a fake clock: no create is refused, and the rate stays close to R. The old shape, `{ max: R, duration: 60 s }`,
 * fails the first check (the test says how often the bucket refuses it).
 */
import { describe, expect, it } from 'vitest';
import { type CreateLimiter, createLimiterOf } from '../../src/queue/render-queue.js';
import { defaultBurst, TokenBucket } from '../../src/sim/rate-limit.js';

interface Played {
  readonly sent: number;
  readonly refused: number;
}

/**
 * A fleet with more jobs than the limiter lets out, for `durationMs`: each window starts 1 ms after the last one
 * expired and lets its `max` jobs out at once. A create reaches the provider up to `jitterMs` after its job started:
 * every other window's creates arrive that late and the next window's at once, the worst order for the bucket (two
 * windows' creates as close together as they can be).
 */
function play(limiter: CreateLimiter, createsPerMinute: number, options: { durationMs: number; jitterMs: number }) {
  let now = 0;
  const bucket = new TokenBucket(createsPerMinute, defaultBurst(createsPerMinute), () => now);
  const arrivals: number[] = [];
  let window = 0;
  for (let windowStart = 0; windowStart < options.durationMs; windowStart += limiter.duration + 1) {
    const late = window % 2 === 0 ? options.jitterMs : 0;
    for (let index = 0; index < limiter.max; index++) arrivals.push(windowStart + late);
    window += 1;
  }
  arrivals.sort((a, b) => a - b);
  let refused = 0;
  for (const at of arrivals) {
    now = at;
    if (bucket.take() !== undefined) refused += 1;
  }
  return { sent: arrivals.length, refused } satisfies Played;
}

describe('the create limiter', () => {
  it('is about a second holding a second of the rate, one create per 60000/R ms below 60 a minute', () => {
    expect(createLimiterOf(600)).toEqual({ max: 10, duration: 1020 });
    expect(createLimiterOf(3_000)).toEqual({ max: 50, duration: 1020 });
    expect(createLimiterOf(100_000)).toEqual({ max: 1666, duration: 1020 });
    expect(createLimiterOf(90)).toEqual({ max: 1, duration: 680 });
    expect(createLimiterOf(6)).toEqual({ max: 1, duration: 10_200 });
    expect(() => createLimiterOf(0)).toThrow(RangeError);
    expect(() => createLimiterOf(Number.NaN)).toThrow(RangeError);
  });

  it('never lets a backlogged fleet meet a 429 from the provider token bucket, and keeps at least 0.95 R', () => {
    for (const createsPerMinute of [6, 60, 90, 600, 3_000]) {
      const durationMs = 10 * 60_000;
      const played = play(createLimiterOf(createsPerMinute), createsPerMinute, { durationMs, jitterMs: 150 });
      expect({ createsPerMinute, refused: played.refused }).toEqual({ createsPerMinute, refused: 0 });
      const perMinute = (played.sent * 60_000) / durationMs;
      expect(perMinute, `creates a minute at R = ${createsPerMinute}`).toBeGreaterThanOrEqual(0.95 * createsPerMinute);
      expect(perMinute, `creates a minute at R = ${createsPerMinute}`).toBeLessThanOrEqual(createsPerMinute);
    }
  });

  it('where the old one-minute window lets R out at once, and the bucket refuses all but its burst', () => {
    const played = play({ max: 600, duration: 60_000 }, 600, { durationMs: 60_000, jitterMs: 150 });
    expect(played.sent).toBe(600);
    expect(played.refused).toBeGreaterThan(500);
  });
});
