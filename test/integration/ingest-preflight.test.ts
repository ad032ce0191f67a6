/**
 * Preflight against s3rver: every distinct control image is HEADed and its first bytes read before anything is
 * enqueued; a missing object, a text file named .jpg, an empty object and an oversized one are row errors naming the
 * key and what was found, on every row that uses them; a real WebP (made with sharp) passes.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import type { Redis } from 'ioredis';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatManifestProblem } from '../../src/core/manifest/index.js';
import { ingestManifest, ManifestInvalidError } from '../../src/ingest/ingest-manifest.js';
import type { IngestRequest } from '../../src/ingest/ingest-settings.js';
import { RunLedger } from '../../src/ledger/run-ledger.js';
import { closeConnection, connectProducer, createProducerConnection } from '../../src/queue/connections.js';
import { putBytesObject } from '../../src/storage/s3.js';
import { uniqueName, useLocalStack } from '../helpers/stack.js';

const stack = useLocalStack({ simulator: false });
let redis: Redis;
let s3: S3Client;
let bucket: string;
let workDirectory: string;

beforeAll(async () => {
  const running = stack();
  if (running.redis === undefined || running.s3 === undefined) throw new Error('the stack lacks Redis or S3');
  redis = createProducerConnection(running.redis.url);
  await connectProducer(redis);
  s3 = running.s3.client();
  bucket = running.s3.bucket;
  workDirectory = await mkdtemp(path.join(os.tmpdir(), 'depthq-preflight-test-'));
  const pixels = { create: { width: 24, height: 16, channels: 3, background: '#336699' } } as const;
  const put = (key: string, bytes: Uint8Array, contentType: string) =>
    putBytesObject(s3, { bucket, key }, bytes, contentType);
  await put('controls/room.webp', await sharp(pixels).webp().toBuffer(), 'image/webp');
  await put('controls/hall.png', await sharp(pixels).png().toBuffer(), 'image/png');
  await put(
    'controls/big.png',
    await sharp({ create: { ...pixels.create, width: 256, height: 256 } })
      .png()
      .toBuffer(),
    'image/png',
  );
  await put('controls/notes.jpg', Buffer.from('hello, this is a text file with a .jpg name\n'), 'image/jpeg');
  await put('controls/empty.png', new Uint8Array(0), 'image/png');
});

afterAll(async () => {
  await closeConnection(redis);
  await rm(workDirectory, { recursive: true, force: true });
});

async function ingest(prefix: string, manifest: string, request: Partial<IngestRequest> = {}) {
  const directory = await mkdtemp(path.join(workDirectory, 'case-'));
  const manifestPath = path.join(directory, 'manifest.csv');
  await writeFile(manifestPath, manifest);
  return ingestManifest(
    { manifestPath, run: 'run-1', preflightConcurrency: 2, ...request },
    { redis, ledger: new RunLedger(redis, prefix), prefix, bucket, s3 },
  );
}

describe('preflight', () => {
  it('reports a missing object, a text file named .jpg and an empty object on every row using them; a WebP passes', async () => {
    const prefix = uniqueName('pre');
    const attempt = ingest(
      prefix,
      'id,control_image,prompt\n' +
        'room,controls/room.webp,A room\n' +
        'gone,controls/missing.png,Gone\n' +
        'notes,controls/notes.jpg,Notes\n' +
        'empty,controls/empty.png,Empty\n' +
        `again,s3://${bucket}/controls/missing.png,Gone again\n`,
    );
    const error = await attempt.then(
      () => undefined,
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(ManifestInvalidError);
    if (!(error instanceof ManifestInvalidError)) return;
    expect(error.manifestProblems.map(formatManifestProblem)).toEqual([
      `manifest.csv:3:2 (control_image): control image s3://${bucket}/controls/missing.png does not exist: check the key (keys are case-sensitive) or upload the image`,
      `manifest.csv:4:2 (control_image): control image s3://${bucket}/controls/notes.jpg is not a JPEG, PNG, GIF or WebP image: found text (starts with 'hello, this is a text fi…'); upload it in one of those formats`,
      `manifest.csv:5:2 (control_image): control image s3://${bucket}/controls/empty.png is empty (0 bytes): upload the image again`,
      `manifest.csv:6:2 (control_image): control image s3://${bucket}/controls/missing.png does not exist: check the key (keys are case-sensitive) or upload the image`,
    ]);
    expect(await redis.keys(`${prefix}:*`)).toEqual([]);
  });

  it('refuses an image over the size limit, and checks each distinct image once', async () => {
    const prefix = uniqueName('pre');
    const attempt = ingest(prefix, 'id,control_image,prompt\nbig,controls/big.png,Big\n', {
      maxControlImageBytes: 100,
    });
    await expect(attempt).rejects.toThrow(ManifestInvalidError);
    const error = await attempt.catch((caught: unknown) => caught);
    if (!(error instanceof ManifestInvalidError)) throw new Error('expected a ManifestInvalidError');
    expect(error.manifestProblems[0]?.message).toMatch(/controls\/big\.png is [\d.]+ KiB, over the 100 bytes limit/);

    const outcome = await ingest(
      prefix,
      'id,control_image,prompt\na,controls/hall.png,A\nb,controls/hall.png,B\nc,controls/room.webp,C\n',
    );
    expect(outcome).toMatchObject({ preflighted: 2, added: 3 });
  });

  it('skips the check with preflight off, and skips the failing rows with --skip-invalid', async () => {
    const prefix = uniqueName('pre');
    const manifest = 'id,control_image,prompt\na,controls/hall.png,A\nb,controls/missing.png,B\n';
    const unchecked = await ingest(prefix, manifest, { preflight: false, dryRun: true });
    expect(unchecked).toMatchObject({ preflighted: undefined, jobs: { total: 2 } });
    const skipped = await ingest(prefix, manifest, { skipInvalid: true });
    expect(skipped).toMatchObject({ preflighted: 2, added: 1, invalidRows: 1 });
    expect(skipped.problems[0]?.message).toContain('controls/missing.png does not exist');
  });
});
