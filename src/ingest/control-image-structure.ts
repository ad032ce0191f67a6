/**
 * Preflight's second look at a control image whose first bytes name an accepted type: its structure (src/core/
 * image-structure.ts) from a few ranged reads — the first 16 KiB and the last bytes at once, then wherever the walk
 * over its segments leads — so a truncated, animated or oversized image is a row error at ingest, not a failed and
 * possibly billed prediction. Rules and messages: docs/input-rules.md.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { examineImage, type ImageWindow, TAIL_BYTES } from '../core/image-structure.js';
import type { ImageType } from '../core/image-type.js';
import { describeObject, type ObjectRef, readObjectRange } from '../storage/s3.js';

const HEAD_WINDOW = 16 * 1024;
/**
 * Reads one image may take. A JPEG needs a read per 16 KiB hop over its metadata and a GIF one per MiB; an image still
 * unsettled after this many is taken as it is (its type is known to be right) rather than read further.
 */
const MAX_READS = 40;

/** Why the image at `ref` (of `type`, `size` bytes) cannot be a control image, or undefined when it can. */
export async function controlImageStructureProblem(
  client: S3Client,
  ref: ObjectRef,
  type: ImageType,
  size: number,
): Promise<string | undefined> {
  const read = async (offset: number, length: number): Promise<ImageWindow> => {
    const start = Math.max(0, Math.min(offset, size - 1));
    return { offset: start, bytes: await readObjectRange(client, ref, start, Math.min(length, size - start)) };
  };
  const windows: ImageWindow[] =
    size <= HEAD_WINDOW
      ? [await read(0, size)]
      : await Promise.all([read(0, HEAD_WINDOW), read(size - TAIL_BYTES, TAIL_BYTES)]);
  for (let reads = windows.length; reads <= MAX_READS; reads++) {
    const verdict = examineImage(type, size, windows);
    if (verdict.kind === 'facts') return undefined;
    if (verdict.kind === 'problem') return `control image ${describeObject(ref)} ${verdict.problem}`;
    windows.push(await read(verdict.offset, verdict.length));
  }
  return undefined;
}
