/**
 * Waiting for durability on real redis-server processes: a primary and its replica (`REPLICAOF`). The `creating` mark
 * of a create must be on the replica before the create is sent; with the replica stopped (SIGSTOP), the write cannot be
 * confirmed, and the worker must not go on as if it were.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningRedis, startRedisServer } from '../../src/local/redis.js';
import { DurableWrites, NotDurableError, readDurability } from '../../src/queue/durability.js';
import { eventually } from '../helpers/stack.js';

let primary: RunningRedis;
let replica: RunningRedis;
let writer: Redis;
let reader: Redis;

beforeAll(async () => {
  primary = await startRedisServer();
  replica = await startRedisServer();
  writer = new Redis(primary.url, { maxRetriesPerRequest: 1 });
  reader = new Redis(replica.url, { maxRetriesPerRequest: 1 });
  await reader.call('REPLICAOF', primary.host, String(primary.port));
  // Connected is not enough: until its first full sync is done, a replica acknowledges nothing.
  const linked = await eventually(
    async () =>
      (await readDurability(writer)).connectedReplicas === 1 &&
      /master_link_status:up/.test(await reader.info('replication')),
    15_000,
  );
  if (!linked) throw new Error('the replica did not connect to the primary');
}, 30_000);

afterAll(async () => {
  if (replica !== undefined) process.kill(replica.pid, 'SIGCONT');
  reader?.disconnect();
  writer?.disconnect();
  await replica?.stop();
  await primary?.stop();
});

describe('DurableWrites on a primary with a replica', () => {
  it('returns once the replica has the write', async () => {
    const durable = new DurableWrites(writer, { timeoutMs: 5_000 });
    await writer.set('creating-mark', 'sent-at-1');
    expect(await durable.confirm()).toBe('replica');
    // WAIT returned: the replica acknowledged the write, so it is there to read.
    expect(await reader.get('creating-mark')).toBe('sent-at-1');
  });

  it('refuses to confirm while the replica is stopped, and confirms again once it is back', async () => {
    const durable = new DurableWrites(writer, { timeoutMs: 300 });
    expect(await durable.confirm()).toBe('replica');
    process.kill(replica.pid, 'SIGSTOP');
    try {
      await writer.set('creating-mark', 'sent-at-2');
      const started = Date.now();
      await expect(durable.confirm()).rejects.toBeInstanceOf(NotDurableError);
      expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    } finally {
      process.kill(replica.pid, 'SIGCONT');
    }
    const back = await eventually(async () => {
      try {
        await durable.confirm();
        return true;
      } catch {
        return false;
      }
    }, 15_000);
    expect(back).toBe(true);
    expect(await reader.get('creating-mark')).toBe('sent-at-2');
  });
});
