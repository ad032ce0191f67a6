/**
 * Redis connections, built in one place because BullMQ wants two different kinds:
 * - a worker's connection blocks on BRPOPLPUSH-style commands and must wait out a Redis restart rather than fail a
 *   command: `maxRetriesPerRequest: null` (BullMQ refuses to start otherwise);
 * - a producer (ingest, the CLI) should fail fast when Redis is down instead of queueing commands in memory:
 *   `enableOfflineQueue: false`.
 * BullMQ never closes a connection it was given: the owner calls `closeConnection`.
 */
import { Redis } from 'ioredis';
import { ConfigError, coerceError } from '../core/errors.js';
import { redactUrl } from '../core/redact.js';

export interface ConnectionOptions {
  /** Shown in `CLIENT LIST`, so an operator can tell workers from producers. */
  readonly name?: string;
}

export function createWorkerConnection(redisUrl: string, options: ConnectionOptions = {}): Redis {
  return new Redis(redisUrl, {
    maxRetriesPerRequest: null,
    enableReadyCheck: true,
    ...(options.name ? { connectionName: options.name } : {}),
  });
}

export function createProducerConnection(redisUrl: string, options: ConnectionOptions = {}): Redis {
  return new Redis(redisUrl, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 3,
    lazyConnect: true,
    ...(options.name ? { connectionName: options.name } : {}),
  });
}

/** Connects a lazy producer connection, waiting at most `timeoutMs`; rejects with ioredis's own error otherwise. */
export async function connectProducer(connection: Redis, timeoutMs = 5_000): Promise<void> {
  if (connection.status === 'ready') return;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      connection.connect(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer from Redis within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Redis did not answer: nothing a producer does can work without it. A ConfigError: the user fixes REDIS_URL. */
export class RedisUnreachableError extends ConfigError {
  override readonly name: string = 'RedisUnreachableError';
}

/**
 * A connected producer connection, or a RedisUnreachableError naming REDIS_URL with the socket's own error
 * (ECONNREFUSED …) — ioredis's rejection only says the connection is closed.
 */
export async function openProducerConnection(
  redisUrl: string,
  options: ConnectionOptions & { readonly timeoutMs?: number } = {},
): Promise<Redis> {
  const redis = createProducerConnection(redisUrl, options);
  let socketError: Error | undefined;
  // Later errors surface through the commands that fail; without a listener ioredis would also print every retry.
  redis.on('error', (error: Error) => {
    socketError ??= error;
  });
  try {
    await connectProducer(redis, options.timeoutMs);
  } catch (error) {
    redis.disconnect();
    throw new RedisUnreachableError(
      `cannot reach Redis at ${redactUrl(redisUrl)} (REDIS_URL): ${(socketError ?? coerceError(error)).message}`,
      { cause: socketError ?? error },
    );
  }
  return redis;
}

/** QUIT when the server answers, DISCONNECT when it does not: closing must never hang a shutdown. */
export async function closeConnection(connection: Redis): Promise<void> {
  if (connection.status === 'end') return;
  if (connection.status !== 'ready') {
    connection.disconnect();
    return;
  }
  try {
    await connection.quit();
  } catch {
    connection.disconnect();
  }
}
