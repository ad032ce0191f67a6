/**
 * The local stack for one integration test file: started in beforeAll, stopped in afterAll. Each file gets its own
 * redis-server, s3rver (and bucket) and simulator — never the Redis an operator may run on 6379 or REDIS_URL.
 */
import { randomBytes } from 'node:crypto';
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
