/**
 * A Redis hash's fields, fetched with HSCAN in batches, so a run's 100k rows or payloads never block Redis or load at
 * once. HSCAN may return a field twice while the hash grows (a rehash); each field is yielded once (its name is
 * remembered). Fields written during the scan may or may not be seen.
 */
import type { Redis } from 'ioredis';

export async function* scanHash(redis: Redis, key: string, batchSize: number): AsyncGenerator<[string, string]> {
  if (!Number.isSafeInteger(batchSize) || batchSize < 1) {
    throw new RangeError(`batchSize must be a whole number ≥ 1, got ${batchSize}`);
  }
  const seen = new Set<string>();
  let cursor = '0';
  do {
    const [next, entries] = await redis.hscan(key, cursor, 'COUNT', batchSize);
    for (let index = 0; index + 1 < entries.length; index += 2) {
      const field = entries[index];
      const value = entries[index + 1];
      if (field === undefined || value === undefined || seen.has(field)) continue;
      seen.add(field);
      yield [field, value];
    }
    cursor = next;
  } while (cursor !== '0');
}
