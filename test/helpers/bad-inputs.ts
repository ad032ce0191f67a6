/**
 * The bad-input corpus's tools (test/integration/bad-input/): fixtures built in the test (images with sharp, manifests
 * as bytes in any encoding), `depthq` run in-process through `runCli` with its output captured, and snapshots of
 * everything a command could have written — every Redis key with its value, every object in the bucket — so a case can
 * assert that a refused command enqueued, spent and wrote nothing.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import type { Redis } from 'ioredis';
import sharp, { type Sharp } from 'sharp';
import { expect } from 'vitest';
import { runCli } from '../../src/cli/program.js';

const repoRoot = path.resolve(import.meta.dirname, '../..');

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Environment changes for one command: a string sets the variable, `undefined` removes it. */
export type EnvironmentChanges = Readonly<Record<string, string | undefined>>;

/**
 * Runs `depthq <args>` in this process, as bin/depthq.js would, with `environment` applied to process.env for the
 * command's duration; returns its exit code and what it wrote. Commands run one at a time (a test file's cases are
 * sequential), which is what makes patching process.env and the two streams safe.
 */
export async function runDepthq(args: readonly string[], environment: EnvironmentChanges): Promise<CliResult> {
  const savedEnvironment = { ...process.env };
  for (const [name, value] of Object.entries(environment)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  let stdout = '';
  let stderr = '';
  const writeOut = process.stdout.write;
  const writeErr = process.stderr.write;
  const capture =
    (append: (text: string) => void) =>
    (chunk: string | Uint8Array, ...rest: unknown[]): boolean => {
      append(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
      const callback = rest.find((argument) => typeof argument === 'function');
      if (typeof callback === 'function') callback();
      return true;
    };
  process.stdout.write = capture((text) => {
    stdout += text;
  }) as typeof process.stdout.write;
  process.stderr.write = capture((text) => {
    stderr += text;
  }) as typeof process.stderr.write;
  try {
    const code = await runCli(['node', 'depthq', ...args]);
    return { code, stdout, stderr };
  } finally {
    process.stdout.write = writeOut;
    process.stderr.write = writeErr;
    for (const name of Object.keys(process.env)) if (!(name in savedEnvironment)) delete process.env[name];
    Object.assign(process.env, savedEnvironment);
  }
}

/** Runs the real `node bin/depthq.js <args>` as a user does; asynchronous, so this process's s3rver keeps answering. */
export function spawnDepthq(
  args: readonly string[],
  environment: Readonly<Record<string, string>>,
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['bin/depthq.js', ...args], {
      cwd: repoRoot,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '/tmp',
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
        ...environment,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    // Generous: the machine is shared; this only stops a hung child from outliving the test.
    const timer = setTimeout(() => child.kill('SIGKILL'), 240_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

/**
 * A key's content in a form that does not depend on how Redis stores it: DUMP would not do, because a hash table's
 * serialisation order changes when a mere read makes Redis take an incremental rehash step.
 */
async function keyContent(redis: Redis, key: string): Promise<unknown> {
  const type = await redis.type(key);
  switch (type) {
    case 'string':
      return { type, value: await redis.get(key) };
    case 'hash':
      return { type, value: Object.entries(await redis.hgetall(key)).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)) };
    case 'list':
      return { type, value: await redis.lrange(key, 0, -1) };
    case 'set':
      return { type, value: (await redis.smembers(key)).sort() };
    case 'zset':
      return { type, value: await redis.zrange(key, '0', '-1', 'WITHSCORES') };
    case 'stream':
      return { type, value: await redis.xrange(key, '-', '+') };
    case 'none':
      return { type };
    default:
      throw new Error(`redisSnapshot: key ${key} has a type this snapshot does not read: ${type}`);
  }
}

/** Every key of the Redis with its type and content, sorted: equal snapshots mean nothing was written. */
export async function redisSnapshot(redis: Redis): Promise<ReadonlyArray<readonly [string, unknown]>> {
  const keys = (await redis.keys('*')).sort();
  const entries: Array<readonly [string, unknown]> = [];
  for (const key of keys) entries.push([key, await keyContent(redis, key)]);
  return entries;
}

/** Every object of the bucket with its ETag and size, sorted. */
export async function bucketSnapshot(s3: S3Client, bucket: string): Promise<readonly string[]> {
  const objects: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(
      new ListObjectsV2Command({ Bucket: bucket, ...(token === undefined ? {} : { ContinuationToken: token }) }),
    );
    for (const object of page.Contents ?? []) objects.push(`${object.Key} ${object.ETag} ${object.Size}`);
    token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
  } while (token !== undefined);
  return objects.sort();
}

/** What a refused command must leave untouched: Redis (queue, ledger, sources) and the bucket. */
export interface WorldSnapshotter {
  snapshot(): Promise<unknown>;
}

export function worldOf(redis: Redis, s3: S3Client, bucket: string): WorldSnapshotter {
  return {
    snapshot: async () => ({ redis: await redisSnapshot(redis), bucket: await bucketSnapshot(s3, bucket) }),
  };
}

/** A stack trace line as Node prints one. */
export const STACK_LINE = /\n\s+at /;

/**
 * Runs a command that must be refused: exit code 2, exactly `expected` on stderr (a string, or a regular expression
 * for a message that holds a temp path), nothing on stdout, no stack trace, and `world` unchanged.
 */
export async function expectRefused(
  world: WorldSnapshotter,
  args: readonly string[],
  environment: EnvironmentChanges,
  expected: string | RegExp,
): Promise<CliResult> {
  const before = await world.snapshot();
  const result = await runDepthq(args, environment);
  if (typeof expected === 'string') expect(result.stderr).toBe(expected);
  else expect(result.stderr).toMatch(expected);
  expect(result.stderr).not.toMatch(STACK_LINE);
  expect(result.stdout).toBe('');
  expect(result.code).toBe(2);
  expect(await world.snapshot()).toEqual(before);
  return result;
}

/** Escapes a string for a RegExp. */
export function literal(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

// ---------------------------------------------------------------------------------------------------------------------
// Fixtures

/** A fresh directory under `root` with `name` holding `content` (bytes as given: no encoding applied). */
export async function writeCase(root: string, name: string, content: string | Uint8Array): Promise<string> {
  const directory = await mkdtemp(path.join(root, 'case-'));
  const file = path.join(directory, name);
  await writeFile(file, content);
  return file;
}

/** A photo-like image (noise), so its image data outweighs its headers: cutting it cuts pixels, not the header. */
function noise(width: number, height: number, channels: 3 | 4): Buffer {
  const pixels = Buffer.alloc(width * height * channels);
  let state = 12_345;
  for (let index = 0; index < pixels.length; index++) {
    state = (state * 1_103_515_245 + 12_345) & 0x7fffffff;
    pixels[index] = state >>> 23;
  }
  return pixels;
}

export function noisyImage(width: number, height: number, channels: 3 | 4 = 3): Sharp {
  return sharp(noise(width, height, channels), { raw: { width, height, channels } });
}

export const controlImages = {
  jpeg: () => noisyImage(96, 64).jpeg({ quality: 90 }).toBuffer(),
  /** The first 60% of a JPEG: its header is whole, its pixels and end marker are not. */
  truncatedJpeg: async () => {
    const whole = await noisyImage(96, 64).jpeg({ quality: 90 }).toBuffer();
    return whole.subarray(0, Math.floor(whole.length * 0.6));
  },
  cmykJpeg: () => noisyImage(96, 64).toColourspace('cmyk').jpeg().toBuffer(),
  progressiveJpeg: () => noisyImage(96, 64).jpeg({ progressive: true }).toBuffer(),
  pngWithAlpha: () => noisyImage(96, 64, 4).png().toBuffer(),
  /** Three 32×32 frames. */
  animatedGif: async () => {
    const frame = (colour: string) =>
      sharp({ create: { width: 32, height: 32, channels: 3, background: colour } })
        .png()
        .toBuffer();
    const frames = await Promise.all(['#ff0000', '#00ff00', '#0000ff'].map(frame));
    return sharp(frames, { join: { animated: true } })
      .gif()
      .toBuffer();
  },
  /** 20,000 px wide: cheap to make (one colour), far over the side limit. */
  wide: () =>
    sharp({ create: { width: 20_000, height: 16, channels: 3, background: '#808080' } })
      .png()
      .toBuffer(),
  svg: () =>
    Promise.resolve(
      Buffer.from(
        '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64" fill="#888"/></svg>\n',
      ),
    ),
  text: () => Promise.resolve(Buffer.from('this is a note, not a photo\n')),
  empty: () => Promise.resolve(Buffer.alloc(0)),
};

/** `text` as UTF-16LE with a byte-order mark, as Excel's "Unicode Text" and PowerShell write it. */
export function utf16le(text: string, byteOrderMark = true): Buffer {
  const body = Buffer.from(text, 'utf16le');
  return byteOrderMark ? Buffer.concat([Buffer.from([0xff, 0xfe]), body]) : body;
}

/** `text` in Latin-1 (ISO-8859-1): é is the single byte E9, which is not UTF-8. */
export function latin1(text: string): Buffer {
  return Buffer.from(text, 'latin1');
}
