/**
 * How durable an acknowledged Redis write is, and waiting for durability where the server offers it.
 *
 * Redis acknowledges a write once it is in memory. With AOF `appendfsync everysec` a host crash loses up to a second
 * of them, and a failover promotes a replica that may never have received the latest. One of depthq's writes must not
 * be lost that way: the fenced `creating` mark written just before a create is sent — lose it and the next life of the
 * job pays again, with no trace. So after that write the worker waits for durability where the server can confirm it:
 * `WAIT 1 <ms>` (a replica has it) when replicas are connected, `WAITAOF 1 0 <ms>` (it is fsynced to the local AOF) on
 * Redis ≥ 7.2 with AOF on. Without either, nothing can be confirmed, and the worker says so once, at start.
 * See docs/durability.md.
 */
import type { Redis } from 'ioredis';
import { TransientJobError } from '../core/errors.js';

export interface DurabilityFacts {
  /** `major.minor.patch`, from INFO server. */
  readonly version: string;
  /** `yes`/`no`, or undefined when CONFIG is disabled (managed Redis). */
  readonly appendOnly: string | undefined;
  readonly appendFsync: string | undefined;
  readonly connectedReplicas: number;
}

function infoField(info: string, field: string): string | undefined {
  const match = new RegExp(`^${field}:(.*)$`, 'm').exec(info);
  return match?.[1]?.trim();
}

async function configValue(redis: Redis, name: string): Promise<string | undefined> {
  try {
    const reply = await redis.config('GET', name);
    return Array.isArray(reply) && typeof reply[1] === 'string' ? reply[1] : undefined;
  } catch {
    return undefined;
  }
}

export async function readDurability(redis: Redis): Promise<DurabilityFacts> {
  const [server, replication, appendOnly, appendFsync] = await Promise.all([
    redis.info('server'),
    redis.info('replication'),
    configValue(redis, 'appendonly'),
    configValue(redis, 'appendfsync'),
  ]);
  return {
    version: infoField(server, 'redis_version') ?? '0.0.0',
    appendOnly,
    appendFsync,
    connectedReplicas: Number(infoField(replication, 'connected_slaves') ?? '0'),
  };
}

/** WAITAOF exists from Redis 7.2. */
export function supportsWaitAof(version: string): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return major > 7 || (major === 7 && minor >= 2);
}

/** How the worker confirms a critical write, given the server's setup; `none` when it cannot. */
export type DurabilityCheck = 'replica' | 'aof' | 'none';

export function durabilityCheckOf(facts: DurabilityFacts): DurabilityCheck {
  if (facts.connectedReplicas > 0) return 'replica';
  if (facts.appendOnly === 'yes' && supportsWaitAof(facts.version)) return 'aof';
  return 'none';
}

/** One line for the log when a crash could lose writes Redis acknowledged; undefined when it cannot. */
export function durabilityWarning(facts: DurabilityFacts): string | undefined {
  if (facts.appendOnly === undefined) {
    return (
      'cannot read Redis persistence settings (CONFIG is disabled): depthq cannot tell whether a crash could lose ' +
      'acknowledged writes — make sure the server runs with appendonly yes and appendfsync always, or has a replica'
    );
  }
  if (facts.appendOnly === 'yes' && facts.appendFsync === 'always') return undefined;
  if (durabilityCheckOf(facts) !== 'none') return undefined;
  const setting =
    facts.appendOnly === 'yes' ? `appendfsync ${facts.appendFsync ?? 'unknown'}` : 'appendonly no (no AOF)';
  return (
    `Redis runs with ${setting} and no replica: a crash can lose writes it acknowledged, among them a job's record ` +
    'that its create was sent (the next worker would pay again). Set appendonly yes and appendfsync always ' +
    '(docker-compose.yml does), or connect a replica.'
  );
}

/** A critical write could not be confirmed durable in time: nothing that depends on it is done. */
export class NotDurableError extends TransientJobError {
  override readonly name: string = 'NotDurableError';
}

export interface DurableWritesOptions {
  /** How long to wait for a replica's (or the AOF's) acknowledgement. @defaultValue 2000 */
  readonly timeoutMs?: number;
  /** How often the server's setup (replicas come and go) is read again. @defaultValue 30000 */
  readonly refreshMs?: number;
  readonly now?: () => number;
}

/**
 * Confirms the writes made so far on `redis` (the connection that made them: WAIT and WAITAOF count per connection)
 * are durable, where the server can say so.
 */
export class DurableWrites {
  readonly #redis: Redis;
  readonly #timeoutMs: number;
  readonly #refreshMs: number;
  readonly #now: () => number;
  #facts: DurabilityFacts | undefined;
  #readAt = Number.NEGATIVE_INFINITY;

  constructor(redis: Redis, options: DurableWritesOptions = {}) {
    this.#redis = redis;
    this.#timeoutMs = options.timeoutMs ?? 2_000;
    this.#refreshMs = options.refreshMs ?? 30_000;
    this.#now = options.now ?? Date.now;
  }

  async facts(): Promise<DurabilityFacts> {
    if (this.#facts === undefined || this.#now() - this.#readAt >= this.#refreshMs) {
      this.#facts = await readDurability(this.#redis);
      this.#readAt = this.#now();
    }
    return this.#facts;
  }

  /** Resolves once the writes so far are on a replica (or fsynced), or at once when the server cannot confirm it. */
  async confirm(): Promise<DurabilityCheck> {
    const check = durabilityCheckOf(await this.facts());
    if (check === 'replica') {
      const acknowledged = Number(await this.#redis.call('WAIT', '1', String(this.#timeoutMs)));
      if (acknowledged < 1) {
        // The replica may be gone: read the setup again next time, rather than wait on a replica that left.
        this.#readAt = Number.NEGATIVE_INFINITY;
        throw new NotDurableError(`no replica acknowledged the write within ${this.#timeoutMs} ms`);
      }
    } else if (check === 'aof') {
      const reply = await this.#redis.call('WAITAOF', '1', '0', String(this.#timeoutMs));
      const local = Array.isArray(reply) ? Number(reply[0]) : 0;
      if (local < 1) throw new NotDurableError(`the write was not fsynced to the AOF within ${this.#timeoutMs} ms`);
    }
    return check;
  }
}
