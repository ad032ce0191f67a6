/**
 * Looks for secrets where they must never be: logs, command output, Redis, reports, sidecars, web pages, /metrics.
 * A secret is found in any of the forms it could be written in — as it is, URL-encoded, JSON-escaped, base64 — and a
 * presigned URL is found by its signature (`X-Amz-Signature=<hex>`), which is a credential for as long as it is valid.
 *
 * `findSecretLeaks` and `findPresignedSignatures` work on any text; `dumpRedis` turns a whole Redis (every key of every
 * type, BullMQ's included) into text to scan.
 */
import type { Redis } from 'ioredis';

/** The forms a secret can take once written somewhere: each is searched for. */
function formsOf(secret: string): Array<readonly [string, string]> {
  const forms: Array<readonly [string, string]> = [
    ['as is', secret],
    ['URL-encoded', encodeURIComponent(secret)],
    ['JSON-escaped', JSON.stringify(secret).slice(1, -1)],
    ['base64', Buffer.from(secret, 'utf8').toString('base64').replace(/=+$/, '')],
    ['base64url', Buffer.from(secret, 'utf8').toString('base64url')],
  ];
  const distinct = new Map<string, string>();
  for (const [name, form] of forms) if (!distinct.has(form)) distinct.set(form, name);
  return [...distinct].map(([form, name]) => [name, form] as const);
}

/** A secret shown in a message: enough to say which, never the whole value. */
export function maskSecret(secret: string): string {
  return secret.length <= 8 ? '***' : `${secret.slice(0, 4)}…${secret.slice(-2)} (${secret.length} chars)`;
}

function around(text: string, index: number, length: number): string {
  const start = Math.max(0, index - 60);
  const end = Math.min(text.length, index + length + 60);
  return text.slice(start, end).replace(/\s+/g, ' ');
}

/**
 * Every place a secret occurs in `text`, one line each: which secret (masked), in which form, and the text around it
 * with the secret masked. Empty when there is none. Secrets shorter than 6 characters are refused: they would match by
 * chance.
 */
export function findSecretLeaks(text: string, secrets: readonly string[], where = 'text'): string[] {
  const leaks: string[] = [];
  for (const secret of secrets) {
    if (secret.length < 6) throw new Error(`a secret to scan for must be at least 6 characters, got ${secret.length}`);
    for (const [form, value] of formsOf(secret)) {
      let index = text.indexOf(value);
      while (index !== -1) {
        const context = around(text, index, value.length).split(value).join('<SECRET>');
        leaks.push(`${where}: secret ${maskSecret(secret)} ${form} at ${index}: …${context}…`);
        index = text.indexOf(value, index + value.length);
      }
    }
  }
  return leaks;
}

/** The S3 (SigV4) signature parameter of a presigned URL, with its value, in any case and URL encoding of `=`. */
const PRESIGNED_SIGNATURE = /X-Amz-Signature(?:=|%3D)([0-9a-f]{16,})/gi;

/** Every presigned URL signature in `text`, one line each with the text around it (the signature itself masked). */
export function findPresignedSignatures(text: string, where = 'text'): string[] {
  const found: string[] = [];
  for (const match of text.matchAll(PRESIGNED_SIGNATURE)) {
    const signature = match[1] ?? '';
    const context = around(text, match.index, match[0].length).split(signature).join('<SIGNATURE>');
    found.push(`${where}: a presigned URL's signature at ${match.index}: …${context}…`);
  }
  return found;
}

const SCAN_COUNT = 500;

async function dumpedValue(redis: Redis, key: string, type: string): Promise<unknown> {
  switch (type) {
    case 'string':
      return redis.get(key);
    case 'hash':
      return redis.hgetall(key);
    case 'list':
      return redis.lrange(key, 0, -1);
    case 'set':
      return redis.smembers(key);
    case 'zset':
      return redis.zrange(key, '0', '-1', 'WITHSCORES');
    case 'stream':
      return redis.xrange(key, '-', '+');
    default:
      // A type this dump does not know (a module's) is still shown by name, so a scan sees it was not read.
      return `<${type}: not dumped>`;
  }
}

/**
 * Every key of the selected database with its type and whole value, one JSON line per key, sorted by key: the text a
 * leak scan reads. SCAN, so a large database is read in steps; a key deleted meanwhile is skipped.
 */
export async function dumpRedis(redis: Redis): Promise<{ readonly text: string; readonly keys: number }> {
  const keys = new Set<string>();
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'COUNT', SCAN_COUNT);
    for (const key of batch) keys.add(key);
    cursor = next;
  } while (cursor !== '0');
  const lines: string[] = [];
  for (const key of [...keys].sort()) {
    const type = await redis.type(key);
    if (type === 'none') continue;
    lines.push(JSON.stringify({ key, type, value: await dumpedValue(redis, key, type) }));
  }
  return { text: lines.join('\n'), keys: lines.length };
}
