/**
 * How an input sent to the model is recognised again. Replicate takes no idempotency key, so a create whose answer was
 * lost can only be found by listing recent predictions and comparing inputs. A job keeps the sha256 of the canonical
 * JSON of what it sent — not the input itself, whose presigned control-image URL is a short-lived credential that must
 * not sit in Redis.
 *
 * Pure (hashing only).
 */
import { createHash } from 'node:crypto';

/** The same JSON whatever the key order; `undefined` members are dropped as JSON.stringify drops them. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((item) => canonicalJson(item ?? null)).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, item]) => item !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/**
 * An http(s) URL without its query and fragment: a presigned control-image URL names its object (bucket and key) in the
 * path, while the query is the signature — which a provider need not echo byte for byte (re-encoded, reordered).
 */
function withoutQuery(value: string): string {
  if (!/^https?:\/\//i.test(value)) return value;
  const end = value.search(/[?#]/);
  return end === -1 ? value : value.slice(0, end);
}

function withUrlsWithoutQuery(value: unknown): unknown {
  if (typeof value === 'string') return withoutQuery(value);
  if (Array.isArray(value)) return value.map(withUrlsWithoutQuery);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, withUrlsWithoutQuery(item)]));
  }
  return value;
}

/**
 * sha256 (hex) of the canonical JSON of an input, URLs compared without their query: equal exactly when the inputs are
 * equal as JSON values and name the same objects, whatever their signatures.
 */
export function inputFingerprint(input: unknown): string {
  return createHash('sha256')
    .update(canonicalJson(withUrlsWithoutQuery(input)))
    .digest('hex');
}
