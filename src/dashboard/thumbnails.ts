/**
 * The gallery's images and provenance, served by the dashboard itself: a browser never gets a bucket URL, a presigned
 * URL or a key to ask for. A request names a run and one of its job ids; the object is the one that job's ledger row
 * (its output key) or kept payload (its control image) names, so no path, `..` or encoded slash in a request can reach
 * any other object, and a job id from another run names nothing here (404).
 *
 * Thumbnails are made with sharp (longer side 320 px, JPEG) and kept in a small in-memory LRU keyed by bucket and key:
 * a row re-rendered under a new key gets a new thumbnail.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import type { Context } from 'hono';
import { isValidRunId, sidecarKeyOf } from '../core/keys.js';
import { parseRenderJob } from '../core/render-job.js';
import type { RunLedger } from '../ledger/run-ledger.js';
import { thumbnailJpeg } from '../runs/thumbnail.js';
import { getObjectBytes, type ObjectRef } from '../storage/s3.js';
import { scrubJson } from './run-views.js';

export const THUMBNAIL_KINDS = ['output', 'control'] as const;
export type ThumbnailKind = (typeof THUMBNAIL_KINDS)[number];

/** Least recently used first; a Map keeps insertion order, and a hit is moved to the end. */
export class ThumbnailCache {
  readonly #entries = new Map<string, Buffer>();
  readonly #maxEntries: number;

  constructor(maxEntries = 500) {
    this.#maxEntries = maxEntries;
  }

  get(key: string): Buffer | undefined {
    const value = this.#entries.get(key);
    if (value !== undefined) {
      this.#entries.delete(key);
      this.#entries.set(key, value);
    }
    return value;
  }

  set(key: string, value: Buffer): void {
    this.#entries.delete(key);
    this.#entries.set(key, value);
    while (this.#entries.size > this.#maxEntries) {
      const oldest = this.#entries.keys().next();
      if (oldest.done === true) break;
      this.#entries.delete(oldest.value);
    }
  }

  get size(): number {
    return this.#entries.size;
  }
}

export interface RunObjectsDeps {
  readonly ledger: RunLedger;
  readonly s3: S3Client;
  readonly cache: ThumbnailCache;
}

/** The object a job of this run names for `kind`, or `undefined` (no such run, job, row, output or payload). */
export async function objectOfJob(
  ledger: RunLedger,
  run: string,
  jobId: string,
  kind: ThumbnailKind | 'sidecar',
): Promise<ObjectRef | undefined> {
  if (!isValidRunId(run) || jobId === '' || jobId.length > 1000) return undefined;
  const meta = await ledger.getRun(run);
  if (meta === undefined) return undefined;
  // The job must have a row in this run: that is what makes it one of the run's jobs.
  const row = await ledger.result(run, jobId).catch(() => undefined);
  if (row === undefined) return undefined;
  if (kind === 'control') {
    const payload = await ledger.payload(run, jobId).catch(() => undefined);
    if (payload === undefined) return undefined;
    try {
      const job = parseRenderJob(payload);
      return job.run === run ? job.controlImage : undefined;
    } catch {
      return undefined;
    }
  }
  if (row.status !== 'succeeded' || row.outputKey === undefined) return undefined;
  const output = { bucket: meta.output.bucket, key: row.outputKey };
  return kind === 'output' ? output : { bucket: output.bucket, key: sidecarKeyOf(output.key) };
}

function notFound(c: Context): Response {
  return c.text('Not found', 404);
}

export async function serveThumbnail(
  c: Context,
  deps: RunObjectsDeps,
  run: string,
  jobId: string,
  kind: ThumbnailKind,
): Promise<Response> {
  const ref = await objectOfJob(deps.ledger, run, jobId, kind);
  if (ref === undefined) return notFound(c);
  const cacheKey = `${ref.bucket}\u0000${ref.key}`;
  let thumbnail = deps.cache.get(cacheKey);
  if (thumbnail === undefined) {
    try {
      thumbnail = await thumbnailJpeg(await getObjectBytes(deps.s3, ref));
    } catch {
      // Gone from S3 or not an image: the page shows its alt text; the reason is for `depthq sheet`, not a browser.
      return notFound(c);
    }
    deps.cache.set(cacheKey, thumbnail);
  }
  c.header('Content-Type', 'image/jpeg');
  c.header('Cache-Control', 'private, max-age=60');
  return c.body(new Uint8Array(thumbnail));
}

export async function serveSidecar(c: Context, deps: RunObjectsDeps, run: string, jobId: string): Promise<Response> {
  const ref = await objectOfJob(deps.ledger, run, jobId, 'sidecar');
  if (ref === undefined) return notFound(c);
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(await getObjectBytes(deps.s3, ref)).toString('utf8'));
  } catch {
    return notFound(c);
  }
  c.header('Cache-Control', 'private, no-cache');
  return c.json(scrubJson(parsed) as object);
}
