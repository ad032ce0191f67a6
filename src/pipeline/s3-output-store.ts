/**
 * The render job's `OutputStore` on S3: control images are inspected and presigned, provider outputs streamed in, and
 * sidecars written — each call bounded by a timeout, so a stalled download or a hung S3 connection fails (and is
 * retried) instead of holding a job forever.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import type { Redis } from 'ioredis';
import type { ControlImageFacts } from '../core/checkpoint.js';
import { FatalJobError } from '../core/errors.js';
import {
  copyUrlToObject,
  inspectImageObject,
  ObjectMissingError,
  presignGetUrl,
  putJsonObject,
  sha256OfObject,
} from '../storage/s3.js';
import type { ObjectLocation, OutputStore, StoredOutputObject } from './render-context.js';

export interface S3OutputStoreOptions {
  readonly s3: S3Client;
  /** Where control-image digests are cached, one per object version. */
  readonly redis: Redis;
  readonly digestCacheKey: string;
  /** The longest an output download plus its upload may take. */
  readonly copyTimeoutMs: number;
  /** The longest a control-image read or a sidecar write may take. */
  readonly requestTimeoutMs: number;
  readonly fetch?: typeof fetch;
}

export const defaultStoreTimeouts = { copyTimeoutMs: 120_000, requestTimeoutMs: 30_000 } as const;

/** The job's signal (worker closing) and a timeout, whichever comes first. */
function bounded(signal: AbortSignal | undefined, timeoutMs: number): AbortSignal {
  const timeout = AbortSignal.timeout(timeoutMs);
  return signal === undefined ? timeout : AbortSignal.any([signal, timeout]);
}

export class S3OutputStore implements OutputStore {
  readonly #options: S3OutputStoreOptions;

  constructor(options: S3OutputStoreOptions) {
    this.#options = options;
  }

  async controlImageFacts(ref: ObjectLocation, signal?: AbortSignal): Promise<ControlImageFacts> {
    const { s3, redis, digestCacheKey, requestTimeoutMs } = this.#options;
    const abortSignal = bounded(signal, requestTimeoutMs);
    let info: Awaited<ReturnType<typeof inspectImageObject>>;
    try {
      info = await inspectImageObject(s3, ref, abortSignal);
    } catch (error) {
      if (error instanceof ObjectMissingError) {
        throw new FatalJobError(`control image ${error.message}: upload it or fix the manifest row`, { cause: error });
      }
      throw error;
    }
    if (info.size === 0) throw new FatalJobError(`control image s3://${ref.bucket}/${ref.key} is empty`);
    if (info.imageType === undefined) {
      throw new FatalJobError(`control image s3://${ref.bucket}/${ref.key} is not a jpeg, png, gif or webp image`);
    }
    // An ETag names one version of an object: its sha256 is computed once per version, not once per job.
    const field = `${ref.bucket}/${ref.key}@${info.etag ?? info.size}`;
    const etag = info.etag ? { etag: info.etag } : {};
    const cached = await redis.hget(digestCacheKey, field);
    if (cached !== null) return { ...etag, sha256: cached, size: info.size };
    const { sha256, size } = await sha256OfObject(s3, ref, bounded(signal, requestTimeoutMs));
    await redis.hset(digestCacheKey, field, sha256);
    return { ...etag, sha256, size };
  }

  presignControlImage(ref: ObjectLocation, expiresInSeconds: number): Promise<string> {
    return presignGetUrl(this.#options.s3, ref, expiresInSeconds);
  }

  copyOutput(request: Parameters<OutputStore['copyOutput']>[0]): Promise<StoredOutputObject> {
    const { s3, copyTimeoutMs } = this.#options;
    return copyUrlToObject(s3, {
      url: request.url,
      target: request.target,
      imageType: request.imageType,
      metadata: request.metadata,
      signal: bounded(request.signal, copyTimeoutMs),
      ...(this.#options.fetch ? { fetch: this.#options.fetch } : {}),
    });
  }

  putSidecar(ref: ObjectLocation, value: unknown, signal?: AbortSignal): Promise<void> {
    return putJsonObject(this.#options.s3, ref, value, bounded(signal, this.#options.requestTimeoutMs));
  }
}
