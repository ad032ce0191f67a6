/**
 * Preflight's second look at a control image whose first bytes name an accepted type: its structure (src/core/
 * image-structure.ts) from the first 16 KiB and the last bytes (read with the HEAD's inspection), then wherever the
 * walk over its segments leads — so a truncated, animated or oversized image is a row error at ingest, not a failed and
 * possibly billed prediction. Rules and messages: docs/input-rules.md.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { examineImage, type ImageWindow, TAIL_BYTES } from '../core/image-structure.js';
import type { ImageType } from '../core/image-type.js';
import { describeObject, type ObjectRef, readObjectRange } from '../storage/s3.js';

/** What preflight's inspection reads for this check, with the HEAD: the first 16 KiB and, at once, the last bytes. */
export const STRUCTURE_WINDOWS = { headBytes: 16 * 1024, tailBytes: TAIL_BYTES } as const;
/**
 * Reads one image may take. A JPEG needs a read per 16 KiB hop over its metadata and a GIF one per MiB; an image still
 * unsettled after this many is taken as it is (its type is known to be right) rather than read further.
 */
const MAX_READS = 40;

/**
 * Why the image at `ref` (of `type`, `size` bytes) cannot be a control image, or undefined when it can; `read` holds
 * the windows inspected already (its first bytes, usually its last).
 */
export async function controlImageStructureProblem(
  client: S3Client,
  ref: ObjectRef,
  image: { readonly type: ImageType; readonly size: number; readonly read: readonly ImageWindow[] },
): Promise<string | undefined> {
  const { type, size } = image;
  const windows: ImageWindow[] = [...image.read];
  for (let reads = 0; reads < MAX_READS; reads++) {
    const verdict = examineImage(type, size, windows);
    if (verdict.kind === 'facts') return undefined;
    if (verdict.kind === 'problem') return `control image ${describeObject(ref)} ${verdict.problem}`;
    const offset = Math.max(0, Math.min(verdict.offset, size - 1));
    windows.push({
      offset,
      bytes: await readObjectRange(client, ref, offset, Math.min(verdict.length, size - offset)),
    });
  }
  return undefined;
}
