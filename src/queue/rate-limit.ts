/**
 * The queue-wide wait that honours a provider's 429, without ever shortening a wait already in force.
 *
 * BullMQ's `Queue.rateLimit(ms)` (6.7.0; the same in taskforcesh/bullmq's src/classes/redis-queue-backend.ts
 * `setRateLimit`) is one command: `SET <prefix>:<queue>:limiter 9007199254740991 PX ms` — the key the worker limiter
 * counts creates in (`QueueKeys`: `<prefix>:<queue>:limiter`). Workers stop fetching while the key's value is at least
 * the limiter's `max` and its PTTL is positive (commands/includes/getRateLimitTTL.lua). So `rateLimit(1000)` during a
 * longer wait in force (an earlier 429's 30 s `retry_after`, a saturated limiter window) *replaces* it with one of 1 s,
 * and the whole fleet bursts again into an account that is already over its limit. `holdQueueRateLimit` keeps the
 * longer of the two waits instead.
 */
import type { Redis } from 'ioredis';
import { type LuaScript, withLuaScripts } from './lua-scripts.js';

export interface QueueRateLimitHold {
  /** BullMQ's qualified queue name, `<prefix>:<queue>` (`queueKeyPrefixOf`). */
  readonly queueKeyPrefix: string;
  /** How long the queue must wait now (a 429's `retry_after`), in ms. */
  readonly ms: number;
  /**
   * The workers' limiter `max` (`createLimiterOf(createsPerMinute).max`): a counter at or above it is a wait in force.
   * BullMQ's own `setGlobalRateLimit` (the queue meta's `max`) wins over it, as it does in moveToActive.
   */
  readonly limiterMax: number;
}

const holdQueueRateLimitScript: LuaScript = {
  name: 'depthqHoldQueueRateLimit',
  numberOfKeys: 2,
  lua: `--[[
  Makes the queue wait at least ARGV[1] ms, keeping a longer wait already in force.

  Input:
    KEYS[1] the limiter key, <prefix>:<queue>:limiter
    KEYS[2] the queue's meta hash, <prefix>:<queue>:meta

    ARGV[1] the wait asked for, ms (a whole number > 0)
    ARGV[2] the workers' limiter max

  Output: the queue's wait after the call, ms (the PTTL of the limiter key)

  A wait is in force when the limiter's value is at least max (BullMQ's rateLimit writes 2^53 - 1) and its PTTL is
  positive: it is kept when it is the longer one. Otherwise the key becomes a wait of ARGV[1], exactly as rateLimit
  writes it (an unsaturated counting window is replaced, as BullMQ does: the queue must stop now).
]]
local rcall = redis.call
local wanted = tonumber(ARGV[1])
local max = tonumber(rcall('HGET', KEYS[2], 'max') or ARGV[2])
local count = tonumber(rcall('GET', KEYS[1]) or '0') or 0
if max and count >= max then
  local pttl = rcall('PTTL', KEYS[1])
  if pttl >= wanted then return pttl end
end
rcall('SET', KEYS[1], '9007199254740991', 'PX', wanted)
return wanted
`,
};

interface RateLimitCommands {
  depthqHoldQueueRateLimit(limiterKey: string, metaKey: string, ms: string, max: string): Promise<unknown>;
}

/**
 * Makes every worker of the queue wait at least `ms` from now, keeping a longer wait already in force (a saturated
 * limiter window, an earlier 429's longer `retry_after`). Returns the wait in force after the call, in ms.
 */
export async function holdQueueRateLimit(redis: Redis, hold: QueueRateLimitHold): Promise<number> {
  const { queueKeyPrefix, limiterMax } = hold;
  if (queueKeyPrefix === '') throw new RangeError('queueKeyPrefix must not be empty');
  if (!Number.isSafeInteger(limiterMax) || limiterMax < 1) {
    throw new RangeError(`limiterMax must be a whole number ≥ 1, got ${limiterMax}`);
  }
  // PX takes a whole number ≥ 1; a 429 without a usable retry_after still stops the queue for a moment.
  const ms = Math.max(1, Math.ceil(hold.ms));
  if (!Number.isSafeInteger(ms)) throw new RangeError(`ms must be a finite number of milliseconds, got ${hold.ms}`);
  const reply = await withLuaScripts<RateLimitCommands>(
    redis,
    [holdQueueRateLimitScript],
    'the queue rate-limit command',
  ).depthqHoldQueueRateLimit(`${queueKeyPrefix}:limiter`, `${queueKeyPrefix}:meta`, String(ms), String(limiterMax));
  if (typeof reply !== 'number') throw new Error(`the rate-limit script replied ${JSON.stringify(reply)}`);
  return reply;
}
