/**
 * A checkpoint write that only the job's current owner can make.
 *
 * BullMQ's `job.updateData` checks no lock: a worker whose event loop stalled past `lockDuration` keeps running after
 * another worker took its job over, and its writes still succeed — it can overwrite the new owner's checkpoint, even
 * after the job completed (docs/stack-facts.md). The pipeline's "one paid prediction per image" rests on the
 * checkpoint, so every checkpoint write goes through here: one Lua script compares the job's lock to the worker's token
 * and writes only while they match. Whoever loses the fence must stop without side effects.
 *
 * Written exactly as BullMQ 6.7.0 writes it (redis-queue-backend.js `updateData` → commands/updateData-1.lua): the job
 * hash is `<prefix>:<queue>:<jobId>`, its `data` field holds `JSON.stringify(data)`, and the lock is the string key
 * `<prefix>:<queue>:<jobId>:lock` holding the token the worker passed to the processor (`processor(job, token, signal)`,
 * `${worker.id}:${n}`), set by moveToActive with `PX lockDuration`. So `Job.fromId(...).data` reads back what we wrote.
 */
import type { Redis } from 'ioredis';
import { DepthqError } from '../core/errors.js';
import { type LuaScript, withLuaScripts } from './lua-scripts.js';

export interface FencedCheckpointWrite {
  /** BullMQ's qualified queue name, `<prefix>:<queueName>` (e.g. `bull:render`; a Queue's `qualifiedName`). */
  readonly queueKeyPrefix: string;
  readonly jobId: string;
  /** The token BullMQ passed to the processor with the job. */
  readonly token: string;
  /** The job's complete new data: like `updateData`, this replaces `job.data`, so write `{ ...job.data, step }`. */
  readonly data: unknown;
}

export type FencedWriteOutcome = 'written' | 'lock-lost';

/** This worker no longer owns the job (its lock expired and another worker may run it): stop without side effects. */
export class LockLostError extends DepthqError {
  override readonly name: string = 'LockLostError';
  readonly jobId: string;

  constructor(jobId: string, options?: ErrorOptions) {
    super(
      `Job ${JSON.stringify(jobId)} is no longer locked by this worker (its lock expired or was taken over); ` +
        'stopping without side effects',
      options,
    );
    this.jobId = jobId;
  }
}

const writeCheckpointScript: LuaScript = {
  name: 'depthqWriteCheckpointFenced',
  numberOfKeys: 2,
  lua: `--[[
  Replaces the job's data if, and only if, the job's lock still holds the worker's token.

  Input:
    KEYS[1] the job hash, <prefix>:<queue>:<jobId>
    KEYS[2] the job's lock, <prefix>:<queue>:<jobId>:lock

    ARGV[1] the worker's lock token
    ARGV[2] the job's data as JSON

  Output:
    1 written
    0 the lock is missing or held by another token, or the job hash is gone (removed): nothing written
]]
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
-- HSET on a removed job would create a stray hash holding only 'data'.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'data', ARGV[2])
return 1
`,
};

interface FencedCheckpointCommands {
  depthqWriteCheckpointFenced(jobKey: string, lockKey: string, token: string, dataJson: string): Promise<unknown>;
}

/**
 * Replaces the job's data with `data` if, and only if, the job's lock still holds `token`, in one atomic step.
 * On 'written' a caller that keeps using its `Job` object should set `job.data = data` itself, as `updateData` does.
 */
export async function writeCheckpointFenced(redis: Redis, write: FencedCheckpointWrite): Promise<FencedWriteOutcome> {
  const { queueKeyPrefix, jobId, token, data } = write;
  if (queueKeyPrefix === '' || jobId === '') throw new RangeError('queueKeyPrefix and jobId must not be empty');
  // No lock ever holds an empty token: BullMQ's token "0" means "no lock", and an empty one is a caller's bug.
  if (token === '' || token === '0')
    throw new RangeError(`a job's lock token is required, got ${JSON.stringify(token)}`);
  const json = JSON.stringify(data);
  if (json === undefined)
    throw new TypeError('checkpoint data must be JSON-serialisable (got undefined or a function)');
  const jobKey = `${queueKeyPrefix}:${jobId}`;
  const reply = await withLuaScripts<FencedCheckpointCommands>(
    redis,
    [writeCheckpointScript],
    'the fenced checkpoint command',
  ).depthqWriteCheckpointFenced(jobKey, `${jobKey}:lock`, token, json);
  if (reply === 1) return 'written';
  if (reply === 0) return 'lock-lost';
  throw new Error(`the fenced checkpoint script replied ${JSON.stringify(reply)}, not 0 or 1`);
}
