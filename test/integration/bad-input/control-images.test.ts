/**
 * Control images as preflight finds them in S3 (docs/input-rules.md). Refused — a truncated JPEG or PNG, zero bytes,
 * text named .jpg, an animated GIF, 20,000 px sides, an SVG, a missing object — each with its exact message on the
 * row's control_image cell, exit code 2, no stack trace, nothing enqueued, spent or written. Accepted — a CMYK JPEG, a
 * progressive JPEG, a PNG with alpha — because the model (and the simulator standing in for it) decodes them: the
 * ingest enqueues them, and the simulator's renderer turns each into an output.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import type { Redis } from 'ioredis';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RunLedger } from '../../../src/ledger/run-ledger.js';
import { closeConnection, connectProducer, createProducerConnection } from '../../../src/queue/connections.js';
import { renderDepthImage } from '../../../src/sim/render-image.js';
import { putBytesObject } from '../../../src/storage/s3.js';
import {
  bucketSnapshot,
  controlImages,
  type EnvironmentChanges,
  expectRefused,
  runDepthq,
  type WorldSnapshotter,
  worldOf,
  writeCase,
} from '../../helpers/bad-inputs.js';
import { useLocalStack } from '../../helpers/stack.js';

/** Generous: the fixtures and a first ingest on a machine other test files load too. */
const SETUP_TIMEOUT_MS = 180_000;

const stack = useLocalStack({ simulator: false });
let redis: Redis;
let s3: S3Client;
let root: string;
let world: WorldSnapshotter;
let environment: EnvironmentChanges;
let bucket: string;

const PREFIX = 'badimages';
const ROWS_REFUSED =
  'nothing was enqueued. Fix them and ingest again, or pass --skip-invalid to enqueue the valid rows';

/** Every fixture, uploaded once under controls/<name>. */
const fixtures: Record<string, { readonly bytes: () => Promise<Buffer>; readonly contentType: string }> = {
  'good.jpg': { bytes: controlImages.jpeg, contentType: 'image/jpeg' },
  'truncated.jpg': { bytes: controlImages.truncatedJpeg, contentType: 'image/jpeg' },
  'truncated.png': {
    bytes: async () => {
      const whole = await controlImages.pngWithAlpha();
      return whole.subarray(0, whole.length - 40);
    },
    contentType: 'image/png',
  },
  'empty.jpg': { bytes: controlImages.empty, contentType: 'image/jpeg' },
  'note.jpg': { bytes: controlImages.text, contentType: 'image/jpeg' },
  'cmyk.jpg': { bytes: controlImages.cmykJpeg, contentType: 'image/jpeg' },
  'progressive.jpg': { bytes: controlImages.progressiveJpeg, contentType: 'image/jpeg' },
  'animated.gif': { bytes: controlImages.animatedGif, contentType: 'image/gif' },
  'alpha.png': { bytes: controlImages.pngWithAlpha, contentType: 'image/png' },
  'wide.png': { bytes: controlImages.wide, contentType: 'image/png' },
  'plan.svg': { bytes: controlImages.svg, contentType: 'image/svg+xml' },
};
const stored = new Map<string, Buffer>();

beforeAll(async () => {
  const running = stack();
  if (running.redis === undefined || running.s3 === undefined) throw new Error('the stack lacks Redis or S3');
  bucket = running.s3.bucket;
  redis = createProducerConnection(running.redis.url);
  await connectProducer(redis);
  s3 = running.s3.client();
  for (const [name, fixture] of Object.entries(fixtures)) {
    const bytes = await fixture.bytes();
    stored.set(name, bytes);
    await putBytesObject(s3, { bucket, key: `controls/${name}` }, bytes, fixture.contentType);
  }
  world = worldOf(redis, s3, bucket);
  environment = { ...running.env(), DEPTHQ_PREFIX: PREFIX };
  root = await mkdtemp(path.join(os.tmpdir(), 'depthq-bad-images-'));
  const baseline = await writeCase(root, 'shots.csv', 'id,control_image,prompt\na,controls/good.jpg,a house\n');
  const created = await runDepthq(['ingest', baseline, '--run', 'villa', '--budget', '10'], environment);
  expect(created.stderr).toBe('');
  expect(created.code).toBe(0);
}, SETUP_TIMEOUT_MS);

afterAll(async () => {
  await closeConnection(redis);
  await rm(root, { recursive: true, force: true });
});

/** A manifest whose one row uses controls/<name>; the ingest must refuse it with `problem` on that row. */
async function refusedImage(name: string, problem: string): Promise<void> {
  const file = await writeCase(root, 'shots.csv', `id,control_image,prompt\nb,controls/${name},a street\n`);
  await expectRefused(
    world,
    ['ingest', file, '--run', 'villa'],
    environment,
    `shots.csv:2:2 (control_image): control image s3://${bucket}/controls/${name} ${problem}\n` +
      `depthq: shots.csv: 1 problem in 1 row of 1; ${ROWS_REFUSED}\n`,
  );
}

describe('control images preflight refuses', () => {
  it('a truncated JPEG', async () => {
    await refusedImage(
      'truncated.jpg',
      'is cut short: a JPEG ends with an end-of-image marker (FF D9) and this one does not, so an upload or an export stopped early (or other data was appended to it); upload it again',
    );
  });

  it('a truncated PNG', async () => {
    await refusedImage(
      'truncated.png',
      'is cut short: a PNG ends with an IEND chunk and this one does not, so an upload or an export stopped early (or other data was appended to it); upload it again',
    );
  });

  it('zero bytes', async () => {
    await refusedImage('empty.jpg', 'is empty (0 bytes): upload the image again');
  });

  it('text named .jpg', async () => {
    await refusedImage(
      'note.jpg',
      "is not a JPEG, PNG, GIF or WebP image: found text (starts with 'this is a note, not a ph…'); upload it in one of those formats",
    );
  });

  it('an animated GIF', async () => {
    await refusedImage(
      'animated.gif',
      'is an animated GIF (3 frames): the model would use only its first frame; export the frame you want as a PNG or JPEG',
    );
  });

  it('20,000 px sides', async () => {
    await refusedImage(
      'wide.png',
      "is 20,000 × 16 px, over depthq's limit of 16,384 px a side and 40 megapixels (the model renders at about 1 megapixel): downscale it, e.g. to 2,048 px on its long side",
    );
  });

  it('an SVG', async () => {
    await refusedImage(
      'plan.svg',
      `is not a JPEG, PNG, GIF or WebP image: found SVG/XML text (starts with '<svg xmlns="http://www.w…'); upload it in one of those formats`,
    );
  });

  it('a missing object', async () => {
    await refusedImage(
      'not-uploaded.jpg',
      'does not exist: check the key (keys are case-sensitive) or upload the image',
    );
  });

  it('every bad image at once, on every row that uses it', async () => {
    const rows = ['truncated.jpg', 'animated.gif', 'truncated.jpg', 'good.jpg'];
    const file = await writeCase(
      root,
      'shots.csv',
      `id,control_image,prompt\n${rows.map((name, index) => `r${index},controls/${name},a street`).join('\n')}\n`,
    );
    const result = await expectRefused(
      world,
      ['ingest', file, '--run', 'villa'],
      environment,
      /^shots\.csv:2:2 .*truncated\.jpg is cut short.*\nshots\.csv:3:2 .*animated\.gif is an animated GIF.*\nshots\.csv:4:2 .*truncated\.jpg is cut short.*\ndepthq: shots\.csv: 3 problems in 3 rows of 4; /,
    );
    expect(result.stderr.split('\n')).toHaveLength(5);
  });
});

describe('control images preflight accepts', () => {
  const accepted = ['cmyk.jpg', 'progressive.jpg', 'alpha.png'];

  it('a CMYK JPEG, a progressive JPEG and a PNG with alpha: enqueued, nothing written to S3', async () => {
    const file = await writeCase(
      root,
      'shots.csv',
      `id,control_image,prompt\n${accepted.map((name, index) => `k${index},controls/${name},a facade`).join('\n')}\n`,
    );
    const objectsBefore = await bucketSnapshot(s3, bucket);
    const result = await runDepthq(['ingest', file, '--run', 'accepted'], environment);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('preflight  3 control images checked');
    expect(result.stdout).toContain('Enqueued 3 new jobs.');
    expect((await new RunLedger(redis, PREFIX).counters('accepted')).queued).toBe(3);
    expect(await bucketSnapshot(s3, bucket)).toEqual(objectsBefore);
  });

  it.each(accepted)('%s renders in the simulator', async (name) => {
    const control = stored.get(name);
    if (control === undefined) throw new Error(`no fixture ${name}`);
    const output = await renderDepthImage({
      controlImage: control,
      prompt: 'a facade at dusk',
      seed: 7,
      steps: 28,
      guidance: 3,
      outputFormat: 'png',
      maxSide: 64,
    });
    const metadata = await sharp(output).metadata();
    expect(metadata.format).toBe('png');
    expect(Math.max(metadata.width, metadata.height)).toBe(64);
  });
});
