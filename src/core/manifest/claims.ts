/**
 * Uniqueness inside one manifest: which line claimed each row id and output key first, so a duplicate names both lines.
 *
 * Pure: no I/O, no clock, no environment (hashing only).
 */
import { createHash } from 'node:crypto';
import type { S3Location } from './s3-locations.js';

/** Long strings are remembered by a digest so 100,000 rows cost a few MB whatever their ids and keys look like. */
function compactKey(text: string): string {
  if (text.length <= 40) return `=${text}`;
  return `#${createHash('sha256').update(text, 'utf8').digest('base64url').slice(0, 22)}`;
}

/** Which line claimed each row id and output key first: duplicates name both lines. */
export class ManifestClaims {
  readonly #rowIds = new Map<string, number>();
  readonly #outputKeys = new Map<string, number>();

  /** Records the row id on `line`; returns the earlier line that has it, if any. */
  claimRowId(rowId: string, line: number): number | undefined {
    const key = compactKey(rowId);
    const previous = this.#rowIds.get(key);
    if (previous === undefined) this.#rowIds.set(key, line);
    return previous;
  }

  /** Records an output location on `line`; returns the earlier line that writes there, if any. */
  claimOutputKey(location: S3Location, line: number): number | undefined {
    const key = compactKey(`${location.bucket}/${location.key}`);
    const previous = this.#outputKeys.get(key);
    if (previous === undefined) this.#outputKeys.set(key, line);
    return previous === line ? undefined : previous;
  }
}
