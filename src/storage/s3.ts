/**
 * depthq's S3 adapter: what a run reads (control images) and writes (outputs and their provenance sidecars).
 *
 * - Control images are presigned when a prediction is created, not at ingest: a URL made at ingest would expire in a
 *   queue that runs for hours, and one valid for hours is a leak that lives for hours.
 * - Outputs are streamed from the provider's URL into S3 and hashed on the way, never buffered whole or written to
 *   disk; the sha256 in the sidecar is of the exact bytes stored.
 */
import { createHash } from 'node:crypto';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import {
  GetObjectCommand,
  HeadObjectCommand,
  type HeadObjectCommandOutput,
  NotFound,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { OutputExpiredError } from '../core/errors.js';
import { contentTypeOfImageType, type ImageType, MIN_SNIFF_BYTES, sniffImageType } from '../core/image-type.js';
import { redactUrl } from '../core/redact.js';

export interface ObjectRef {
  readonly bucket: string;
  readonly key: string;
}

export function describeObject(ref: ObjectRef): string {
  return `s3://${ref.bucket}/${ref.key}`;
}

/** A presigned GET for the model to fetch the control image with; `expiresInSeconds` is capped at one hour. */
export async function presignGetUrl(client: S3Client, ref: ObjectRef, expiresInSeconds: number): Promise<string> {
  const expiresIn = Math.max(1, Math.min(3600, Math.ceil(expiresInSeconds)));
  return getSignedUrl(client, new GetObjectCommand({ Bucket: ref.bucket, Key: ref.key }), { expiresIn });
}

export interface ImageObjectInfo {
  readonly etag: string | undefined;
  readonly size: number;
  readonly contentType: string | undefined;
  /** What the first bytes say the object is; undefined when they match no image format the model accepts. */
  readonly imageType: ImageType | undefined;
  /** The first bytes, for messages that say what was found instead of an image. */
  readonly head: Uint8Array;
}

/** The object does not exist (HEAD answered 404). */
export class ObjectMissingError extends Error {
  override readonly name = 'ObjectMissingError';

  constructor(readonly ref: ObjectRef) {
    super(`${describeObject(ref)} does not exist`);
  }
}

async function readAll(body: unknown): Promise<Uint8Array> {
  if (body instanceof Uint8Array) return body;
  if (body && typeof body === 'object' && 'transformToByteArray' in body) {
    const transform = (body as { transformToByteArray: () => Promise<Uint8Array> }).transformToByteArray;
    return transform.call(body);
  }
  throw new TypeError('unexpected S3 body type');
}

/** The SDK's per-call options: an abort signal only when there is one (the types refuse an explicit undefined). */
function sendOptions(abortSignal: AbortSignal | undefined): { abortSignal?: AbortSignal } {
  return abortSignal === undefined ? {} : { abortSignal };
}

/** HEAD plus the first bytes: enough to tell a missing, empty or non-image object from a usable one, without a download. */
export async function inspectImageObject(
  client: S3Client,
  ref: ObjectRef,
  abortSignal?: AbortSignal,
): Promise<ImageObjectInfo> {
  let head: HeadObjectCommandOutput;
  try {
    head = await client.send(new HeadObjectCommand({ Bucket: ref.bucket, Key: ref.key }), sendOptions(abortSignal));
  } catch (error) {
    if (error instanceof NotFound || (error as { name?: string }).name === 'NotFound')
      throw new ObjectMissingError(ref);
    throw error;
  }
  const size = head.ContentLength ?? 0;
  let first: Uint8Array = new Uint8Array(0);
  if (size > 0) {
    const range = `bytes=0-${Math.min(size, 64) - 1}`;
    const got = await client.send(
      new GetObjectCommand({ Bucket: ref.bucket, Key: ref.key, Range: range }),
      sendOptions(abortSignal),
    );
    first = await readAll(got.Body);
  }
  return {
    etag: head.ETag,
    size,
    contentType: head.ContentType,
    imageType: first.length >= MIN_SNIFF_BYTES ? sniffImageType(first) : undefined,
    head: first,
  };
}

/** `length` bytes of an object from `offset` (fewer at its end): a window for checks that need more than its head. */
export async function readObjectRange(
  client: S3Client,
  ref: ObjectRef,
  offset: number,
  length: number,
  abortSignal?: AbortSignal,
): Promise<Uint8Array> {
  const range = `bytes=${offset}-${offset + Math.max(1, length) - 1}`;
  const got = await client.send(
    new GetObjectCommand({ Bucket: ref.bucket, Key: ref.key, Range: range }),
    sendOptions(abortSignal),
  );
  return readAll(got.Body);
}

/** The sha256 of a whole object, streamed (the provenance of a control image: an ETag is not a content hash). */
export async function sha256OfObject(
  client: S3Client,
  ref: ObjectRef,
  abortSignal?: AbortSignal,
): Promise<{ sha256: string; size: number }> {
  const got = await client.send(new GetObjectCommand({ Bucket: ref.bucket, Key: ref.key }), sendOptions(abortSignal));
  const body = got.Body;
  if (!(body instanceof Readable)) throw new TypeError(`unexpected body type for ${describeObject(ref)}`);
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of body) {
    const bytes = chunk as Buffer;
    hash.update(bytes);
    size += bytes.length;
  }
  return { sha256: hash.digest('hex'), size };
}

/** Counts and hashes the bytes that flow through it, so what is stored is what is described. */
class HashingStream extends Transform {
  private readonly hash = createHash('sha256');
  size = 0;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    callback(null, chunk);
  }

  digest(): string {
    return this.hash.digest('hex');
  }
}

export interface StoredObject {
  readonly ref: ObjectRef;
  readonly sha256: string;
  readonly size: number;
  readonly contentType: string;
  readonly etag: string | undefined;
}

export interface CopyFromUrlRequest {
  readonly url: string;
  readonly target: ObjectRef;
  /** What the object is stored as; the format the model was asked for decides it, not the server's header. */
  readonly imageType: ImageType;
  readonly metadata?: Readonly<Record<string, string>>;
  readonly signal?: AbortSignal;
  readonly fetch?: typeof fetch;
}

/**
 * Streams a provider's output URL into S3. A 404/410 means the provider has deleted it (Replicate: one hour after
 * creation): `OutputExpiredError`, so the caller never mistakes a lost, paid image for a transient failure.
 */
/** S3's limit for one PUT: a longer output goes through the multipart `Upload`. */
const MAX_SINGLE_PUT_BYTES = 5 * 1024 ** 3;

/** The response's Content-Length when it counts the stored bytes and one PUT can take them; `undefined` otherwise. */
function contentLengthOf(response: Response): number | undefined {
  // fetch decodes a compressed body, so the header would count other bytes than the ones stored.
  const encoding = response.headers.get('content-encoding');
  if (encoding !== null && encoding.trim().toLowerCase() !== 'identity') return undefined;
  const header = response.headers.get('content-length');
  if (header === null || !/^\d+$/.test(header.trim())) return undefined;
  const length = Number(header.trim());
  return Number.isSafeInteger(length) && length <= MAX_SINGLE_PUT_BYTES ? length : undefined;
}

export async function copyUrlToObject(client: S3Client, request: CopyFromUrlRequest): Promise<StoredObject> {
  const fetchImpl = request.fetch ?? globalThis.fetch;
  const response = await fetchImpl(request.url, request.signal ? { signal: request.signal } : {});
  if (response.status === 404 || response.status === 410) {
    await response.body?.cancel();
    throw new OutputExpiredError(`the output at ${redactUrl(request.url)} is gone (HTTP ${response.status})`);
  }
  if (!response.ok || response.body === null) {
    await response.body?.cancel();
    throw new Error(`downloading ${redactUrl(request.url)} failed with HTTP ${response.status}`);
  }
  const hashing = new HashingStream();
  const source = Readable.fromWeb(response.body as import('node:stream/web').ReadableStream<Uint8Array>);
  source.on('error', (error) => hashing.destroy(error));
  source.pipe(hashing);
  const contentType = contentTypeOfImageType(request.imageType);
  const length = contentLengthOf(response);
  if (length !== undefined) {
    // The length is known (Replicate's file server sends it): one PUT streamed as the bytes arrive, holding no more
    // than the sockets' buffers. `Upload` would buffer up to a 5 MB part per output first, 320 MB for 64 jobs in
    // flight (docs/bench-orchestration.md).
    const result = await client.send(
      new PutObjectCommand({
        Bucket: request.target.bucket,
        Key: request.target.key,
        Body: hashing,
        ContentLength: length,
        ContentType: contentType,
        ...(request.metadata ? { Metadata: { ...request.metadata } } : {}),
      }),
      sendOptions(request.signal),
    );
    if (hashing.size !== length) {
      throw new Error(
        `downloading ${redactUrl(request.url)} gave ${hashing.size} bytes, not the ${length} it announced`,
      );
    }
    return { ref: request.target, sha256: hashing.digest(), size: hashing.size, contentType, etag: result.ETag };
  }
  const upload = new Upload({
    client,
    params: {
      Bucket: request.target.bucket,
      Key: request.target.key,
      Body: hashing,
      ContentType: contentType,
      ...(request.metadata ? { Metadata: { ...request.metadata } } : {}),
    },
  });
  const onAbort = () => void upload.abort();
  request.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const result = await upload.done();
    return {
      ref: request.target,
      sha256: hashing.digest(),
      size: hashing.size,
      contentType,
      etag: 'ETag' in result ? result.ETag : undefined,
    };
  } finally {
    request.signal?.removeEventListener('abort', onAbort);
  }
}

/** The provenance sidecar sits beside the object it describes: `<key>.json`. */
export function sidecarRefOf(ref: ObjectRef): ObjectRef {
  return { bucket: ref.bucket, key: `${ref.key}.json` };
}

export async function putJsonObject(
  client: S3Client,
  ref: ObjectRef,
  value: unknown,
  abortSignal?: AbortSignal,
): Promise<void> {
  await client.send(
    new PutObjectCommand({
      Bucket: ref.bucket,
      Key: ref.key,
      Body: `${JSON.stringify(value, null, 2)}\n`,
      ContentType: 'application/json',
    }),
    sendOptions(abortSignal),
  );
}

export async function putBytesObject(
  client: S3Client,
  ref: ObjectRef,
  bytes: Uint8Array,
  contentType: string,
): Promise<void> {
  await client.send(new PutObjectCommand({ Bucket: ref.bucket, Key: ref.key, Body: bytes, ContentType: contentType }));
}

export async function getObjectBytes(client: S3Client, ref: ObjectRef): Promise<Uint8Array> {
  const got = await client.send(new GetObjectCommand({ Bucket: ref.bucket, Key: ref.key }));
  return readAll(got.Body);
}
