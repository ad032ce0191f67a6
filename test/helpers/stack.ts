/**
 * The local stack for one integration test file: started in beforeAll, stopped in afterAll. Each file gets its own
 * redis-server, s3rver (and bucket) and simulator — never the Redis an operator may run on 6379 or REDIS_URL.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { afterAll, beforeAll } from 'vitest';
import { type LocalStack, type LocalStackOptions, startLocalStack } from '../../src/local/stack.js';

/**
 * Starts the stack before the file's tests and stops it after them. The getter throws when used outside a test (before
 * beforeAll ran), which is a bug in the test file.
 */
export function useLocalStack(options: LocalStackOptions = {}): () => LocalStack {
  let stack: LocalStack | undefined;
  beforeAll(async () => {
    stack = await startLocalStack(options);
  });
  afterAll(async () => {
    await stack?.stop();
  });
  return () => {
    if (stack === undefined) throw new Error('useLocalStack(): the stack is used before beforeAll started it');
    return stack;
  };
}

let sequence = 0;

/**
 * A name no other test or file uses: `<prefix>-<pid>-<n>-<random>`, lowercase letters, digits and '-' only, so it is a
 * valid bucket name, BullMQ queue name and Redis key prefix alike.
 */
export function uniqueName(prefix: string): string {
  sequence += 1;
  return `${prefix}-${process.pid}-${sequence}-${randomBytes(3).toString('hex')}`;
}

/** True when nothing accepts TCP connections on 127.0.0.1:port (the connection is refused). */
export function portRefusesConnections(port: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.setTimeout(2_000, () => {
      socket.destroy();
      reject(new Error(`connecting to 127.0.0.1:${port} neither succeeded nor was refused within 2 s`));
    });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ECONNREFUSED') resolve(true);
      else reject(error);
    });
  });
}

/**
 * True when no process has this pid. A zombie counts as gone: it runs no code and holds no port, and whether it is
 * reaped depends on what this machine runs as pid 1, not on depthq.
 */
export function processIsGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return true;
    throw error;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The state follows the parenthesised command name, which may itself contain spaces or parentheses.
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return process.platform === 'linux';
  }
}

/** Polls `condition` every 50 ms until it holds or `timeoutMs` passes; returns whether it held. */
export async function eventually(condition: () => boolean | Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await condition()) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return condition();
}
