/**
 * The simulator fetching a prediction's image input (a control image, or any other image the model takes) the way the
 * model does when a prediction starts: an http(s) URL or a data: URI, bounded in size and time, and accepted only if
 * its bytes are jpeg, png, gif or webp (by magic bytes, not by Content-Type). Every failure becomes an ImageInputError
 * whose message is what the prediction's `error` shows: the input's name and what was found. URLs in messages lose
 * their query string, because presigned URLs carry credentials there.
 */
import { createHash } from 'node:crypto';
import { type ImageType, sniffImageType } from '../core/image-type.js';

export interface FetchedImage {
  readonly bytes: Buffer;
  readonly type: ImageType;
  readonly sha256: string;
}

export interface FetchImageOptions {
  readonly maxBytes: number;
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
}

export class ImageInputError extends Error {
  override readonly name = 'ImageInputError';
}

/**
 * `https://host/path?X-Amz-Signature=…` → `https://host/path`, `data:image/png;base64,…` → its head: enough to
 * recognise, nothing to leak. Unlike core's `redactUrl`, it takes data URIs too, which only image inputs carry.
 */
export function redactInputUri(uri: string): string {
  if (uri.startsWith('data:')) return `${uri.slice(0, Math.min(uri.indexOf(',') + 1 || 32, 48))}…`;
  try {
    const url = new URL(uri);
    return `${url.origin}${url.pathname}`;
  } catch {
    return uri.slice(0, 48);
  }
}

export async function fetchImageInput(
  inputName: string,
  uri: string,
  options: FetchImageOptions,
): Promise<FetchedImage> {
  const bytes = uri.startsWith('data:')
    ? decodeDataUri(inputName, uri, options.maxBytes)
    : await fetchHttp(inputName, uri, options);
  const type = sniffImageType(bytes);
  if (type === undefined) {
    throw new ImageInputError(
      `${inputName}: expected jpeg, png, gif or webp, got ${describeBytes(bytes)} from ${redactInputUri(uri)}`,
    );
  }
  return { bytes, type, sha256: createHash('sha256').update(bytes).digest('hex') };
}

function decodeDataUri(inputName: string, uri: string, maxBytes: number): Buffer {
  const comma = uri.indexOf(',');
  if (comma < 0) throw new ImageInputError(`${inputName}: malformed data URI (no comma): ${redactInputUri(uri)}`);
  const meta = uri.slice(5, comma);
  const payload = uri.slice(comma + 1);
  const bytes = meta.split(';').includes('base64')
    ? Buffer.from(payload, 'base64')
    : Buffer.from(decodeURIComponent(payload), 'utf8');
  if (bytes.length > maxBytes) {
    throw new ImageInputError(`${inputName}: data URI holds ${bytes.length} bytes, over the ${maxBytes}-byte limit`);
  }
  return bytes;
}

async function fetchHttp(inputName: string, uri: string, options: FetchImageOptions): Promise<Buffer> {
  const where = redactInputUri(uri);
  if (!/^https?:\/\//i.test(uri)) {
    throw new ImageInputError(`${inputName}: only http(s) URLs and data URIs can be fetched, got ${where}`);
  }
  const signals = [AbortSignal.timeout(options.timeoutMs)];
  if (options.signal) signals.push(options.signal);
  let response: Response;
  try {
    response = await fetch(uri, { redirect: 'follow', signal: AbortSignal.any(signals) });
  } catch (error) {
    throw new ImageInputError(`${inputName}: could not fetch ${where}: ${reasonOf(error)}`, { cause: error });
  }
  if (!response.ok) {
    await response.body?.cancel().catch(() => undefined);
    throw new ImageInputError(
      `${inputName}: fetching ${where} answered HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ''}`,
    );
  }
  const declared = Number(response.headers.get('content-length') ?? Number.NaN);
  if (Number.isFinite(declared) && declared > options.maxBytes) {
    await response.body?.cancel().catch(() => undefined);
    throw new ImageInputError(
      `${inputName}: ${where} is ${declared} bytes, over the ${options.maxBytes}-byte limit for image inputs`,
    );
  }
  return readBounded(inputName, where, response, options.maxBytes);
}

async function readBounded(inputName: string, where: string, response: Response, maxBytes: number): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  if (!response.body) return Buffer.alloc(0);
  const reader = response.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > maxBytes) {
        await reader.cancel().catch(() => undefined);
        throw new ImageInputError(`${inputName}: ${where} sent more than the ${maxBytes}-byte limit for image inputs`);
      }
      chunks.push(value);
    }
  } catch (error) {
    if (error instanceof ImageInputError) throw error;
    throw new ImageInputError(`${inputName}: reading ${where} failed: ${reasonOf(error)}`, { cause: error });
  }
  return Buffer.concat(chunks, total);
}

/** What the bytes look like, for the error: "text (first bytes "<html>…")" or "binary data (first bytes 00 01 …)". */
export function describeBytes(bytes: Uint8Array): string {
  if (bytes.length === 0) return 'an empty body';
  const head = bytes.subarray(0, 16);
  const looksLikeText = head.every((byte) => byte === 9 || byte === 10 || byte === 13 || (byte >= 32 && byte < 127));
  if (looksLikeText) {
    const text = Buffer.from(head).toString('latin1');
    const kind = /^\s*<svg|^\s*<\?xml/i.test(text) ? 'svg/xml text' : /^\s*</.test(text) ? 'html text' : 'text';
    return `${kind} (first bytes ${JSON.stringify(text)})`;
  }
  const hex = Array.from(bytes.subarray(0, 8), (byte) => byte.toString(16).padStart(2, '0')).join(' ');
  return `unrecognised binary data (first bytes ${hex})`;
}

function reasonOf(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  if (error.name === 'TimeoutError') return 'timed out';
  if (error.name === 'AbortError') return 'aborted';
  // undici wraps the socket error ("fetch failed"); its cause says what happened (ECONNREFUSED, ENOTFOUND…).
  const cause = error.cause;
  if (cause instanceof Error) return cause.message || error.message;
  return error.message;
}
