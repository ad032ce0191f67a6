/**
 * `copyUrlToObject` stores exactly the bytes a URL serves, hashed on the way, whether the server announces their length
 * (one streamed PutObject, any size) or not (lib-storage's Upload), against a real s3rver. s3rver 3.7.1 has no
 * multipart upload, so the Upload case stays under Upload's 5 MB part size (one PutObject of the buffered part).
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningS3, startS3Server } from '../../src/local/s3.js';
import { copyUrlToObject, getObjectBytes } from '../../src/storage/s3.js';
import { uniqueName } from '../helpers/stack.js';

let s3: RunningS3;
let files: Server;
let filesUrl = '';
/** 6 MiB: more than one of Upload's 5 MB parts, streamed in one PUT all the same. */
const large = randomBytes(6 * 1024 * 1024);
const small = randomBytes(1024 * 1024);

beforeAll(async () => {
  s3 = await startS3Server({ bucket: uniqueName('copy') });
  files = createServer((request, response) => {
    if (request.url === '/with-length') {
      response.writeHead(200, { 'Content-Type': 'image/png', 'Content-Length': large.length });
      response.end(large);
      return;
    }
    // No Content-Length: Node sends the body chunked.
    response.writeHead(200, { 'Content-Type': 'image/png' });
    for (let start = 0; start < small.length; start += 256 * 1024)
      response.write(small.subarray(start, start + 256 * 1024));
    response.end();
  });
  await new Promise<void>((resolve) => files.listen(0, '127.0.0.1', resolve));
  filesUrl = `http://127.0.0.1:${(files.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => files.close(() => resolve()));
  await s3.stop();
});

describe('copyUrlToObject', () => {
  it.each([
    ['announces its length (one streamed PUT)', '/with-length', large],
    ['sends it chunked, without a length (Upload)', '/chunked', small],
  ])('stores the exact bytes when the server %s', async (_, path, body) => {
    const client = s3.client();
    const target = { bucket: s3.bucket, key: `outputs${path}.png` };
    const stored = await copyUrlToObject(client, { url: `${filesUrl}${path}`, target, imageType: 'png' });
    const sha256 = createHash('sha256').update(body).digest('hex');
    expect(stored).toMatchObject({ ref: target, sha256, size: body.length, contentType: 'image/png' });
    const read = Buffer.from(await getObjectBytes(client, target));
    expect(read.length).toBe(body.length);
    expect(read.equals(body)).toBe(true);
  });
});
