/**
 * Preflight: before a cent is spent, every distinct control image is HEADed and its first bytes read (p-limit bounds
 * how many at once), so a missing, empty, oversized or non-image object is a row error at ingest instead of a failed
 * (and possibly billed) prediction hours later. An image of an accepted type then gets a structure check (truncated,
 * animated, too many pixels: control-image-structure.ts).
 */
import type { S3Client } from '@aws-sdk/client-s3';
import pLimit from 'p-limit';
import { coerceError } from '../core/errors.js';
import {
  describeObject,
  type ImageObjectInfo,
  inspectImageObject,
  ObjectMissingError,
  type ObjectRef,
} from '../storage/s3.js';
import { controlImageStructureProblem } from './control-image-structure.js';

/** What the simulator accepts and what a depth model needs: larger control images are refused at ingest. */
export const DEFAULT_MAX_CONTROL_IMAGE_BYTES = 20 * 1024 * 1024;
export const DEFAULT_PREFLIGHT_CONCURRENCY = 32;

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} bytes`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

function startsWithAscii(bytes: Uint8Array, text: string, offset = 0): boolean {
  if (bytes.length < offset + text.length) return false;
  for (let index = 0; index < text.length; index++) {
    if (bytes[offset + index] !== text.charCodeAt(index)) return false;
  }
  return true;
}

/**
 * What the first bytes of an object that is not a usable image are, in words a user recognises: `a PDF document`,
 * `text (starts with 'hello')`, `a TIFF image`, or the bytes in hex.
 */
export function describeFirstBytes(bytes: Uint8Array): string {
  if (bytes.length === 0) return 'no bytes';
  if (startsWithAscii(bytes, '%PDF')) return 'a PDF document';
  if (startsWithAscii(bytes, 'PK\u0003\u0004')) return 'a ZIP archive (or an Office document)';
  if (startsWithAscii(bytes, 'BM')) return 'a BMP image, which the model does not accept';
  if (startsWithAscii(bytes, 'II*\u0000') || startsWithAscii(bytes, 'MM\u0000*')) {
    return 'a TIFF image, which the model does not accept';
  }
  if (startsWithAscii(bytes, 'ftyp', 4)) {
    const brand = String.fromCharCode(...bytes.subarray(8, 12));
    if (/^(heic|heix|hevc|mif1)/.test(brand)) return 'a HEIC image, which the model does not accept';
    if (/^avi[fs]/.test(brand)) return 'an AVIF image, which the model does not accept';
    return `an ISO media file (brand '${brand}')`;
  }
  // `stream: true` holds back a character cut in half at the end instead of decoding it as U+FFFD.
  const text = new TextDecoder('utf-8', { fatal: false }).decode(bytes.subarray(0, 48), { stream: true });
  // Text: no control characters but tab, newline and carriage return, and no undecodable bytes.
  const printable = !/[\p{Cc}\uFFFD]/u.test(text.replace(/[\t\n\r]/g, ''));
  if (printable) {
    const start = text.trimStart();
    const shown = start.slice(0, 24).replace(/\s+/g, ' ');
    const more = start.length > 24 ? '…' : '';
    if (/^<svg|^<\?xml/i.test(start)) return `SVG/XML text (starts with '${shown}${more}')`;
    if (/^</.test(start)) return `HTML text (starts with '${shown}${more}')`;
    if (/^[{[]/.test(start)) return `JSON text (starts with '${shown}${more}')`;
    return `text (starts with '${shown}${more}')`;
  }
  const hex = Array.from(bytes.subarray(0, 8), (byte) => byte.toString(16).padStart(2, '0')).join(' ');
  return `unrecognised binary data (starts with ${hex})`;
}

/** Why the inspected object cannot be a control image, or undefined when it can. */
export function unusableImageProblem(ref: ObjectRef, info: ImageObjectInfo, maxBytes: number): string | undefined {
  const where = describeObject(ref);
  if (info.size === 0) return `control image ${where} is empty (0 bytes): upload the image again`;
  if (info.size > maxBytes) {
    return `control image ${where} is ${formatBytes(info.size)}, over the ${formatBytes(maxBytes)} limit: resize or recompress it`;
  }
  if (info.imageType === undefined) {
    return `control image ${where} is not a JPEG, PNG, GIF or WebP image: found ${describeFirstBytes(info.head)}; upload it in one of those formats`;
  }
  return undefined;
}

export interface PreflightOptions {
  /** Objects inspected at once. @defaultValue 32 */
  readonly concurrency?: number;
  /** @defaultValue 20 MiB */
  readonly maxBytes?: number;
  /** Called after each object, for progress output. */
  readonly onChecked?: (checked: number, total: number) => void;
}

/** One control image's verdict: `undefined` problem means usable. */
export interface PreflightResult {
  readonly ref: ObjectRef;
  readonly problem: string | undefined;
}

/**
 * Inspects every object (HEAD + first bytes) with at most `concurrency` requests in flight and says what is wrong with
 * each unusable one. Never throws for one object's failure: an unreadable object is a problem of the rows that use it.
 */
export async function preflightControlImages(
  client: S3Client,
  refs: readonly ObjectRef[],
  options: PreflightOptions = {},
): Promise<PreflightResult[]> {
  const concurrency = options.concurrency ?? DEFAULT_PREFLIGHT_CONCURRENCY;
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_CONTROL_IMAGE_BYTES;
  const limit = pLimit(concurrency);
  let checked = 0;
  return Promise.all(
    refs.map((ref) =>
      limit(async (): Promise<PreflightResult> => {
        let problem: string | undefined;
        try {
          const info = await inspectImageObject(client, ref);
          problem = unusableImageProblem(ref, info, maxBytes);
          // The type is right; whether the image is whole, still and of a usable size takes a few more bytes.
          if (problem === undefined && info.imageType !== undefined) {
            problem = await controlImageStructureProblem(client, ref, info.imageType, info.size);
          }
        } catch (thrown) {
          if (thrown instanceof ObjectMissingError) {
            problem = `control image ${describeObject(ref)} does not exist: check the key (keys are case-sensitive) or upload the image`;
          } else {
            const error = coerceError(thrown);
            problem =
              `control image ${describeObject(ref)} could not be read (${error.name}: ${error.message}): ` +
              'check that the bucket exists and the credentials may read it (s3:GetObject)';
          }
        }
        checked++;
        options.onChecked?.(checked, refs.length);
        return { ref, problem };
      }),
    ),
  );
}
