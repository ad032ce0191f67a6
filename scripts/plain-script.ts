/**
 * The baseline `npm run bench` measures depthq against: the plain script a user would write to render N images on
 * Replicate without depthq — `p-limit(C)` around the official client's `predictions.create`, `wait()` (its default
 * 500 ms polls), a download of the output and one `PutObject`. No queue, no ledger, no checkpoints, no retries beyond
 * the client's own (it retries a 429 on any request and a 5xx on a GET). An image whose chain throws is not delivered.
 *
 *   node --import tsx scripts/plain-script.ts --count 400 --concurrency 40 --control controls/bench.png --prefix plain
 *
 * Endpoints and credentials come from the environment (REPLICATE_BASE_URL, REPLICATE_API_TOKEN, S3_*), as for depthq.
 * It prints one JSON line: { makespanMs, delivered, failed, firstError, cpuMs }, the makespan (and the CPU time) measured
 * from the first create to the last stored image, inside this process (its start-up is not counted).
 */

import { parseArgs } from 'node:util';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import pLimit from 'p-limit';
import Replicate from 'replicate';
import { loadConfig, requireReplicateToken } from '../src/config/index.js';
import { fluxDepthPro } from '../src/core/models.js';
import { presignGetUrl } from '../src/storage/s3.js';
import { s3ClientForConfig } from '../src/storage/s3-client.js';

export interface PlainScriptResult {
  readonly makespanMs: number;
  readonly delivered: number;
  readonly failed: number;
  readonly firstError: string | undefined;
  /** CPU time this process spent from the first create to the last stored image (user + system), ms. */
  readonly cpuMs: number;
}

const { values } = parseArgs({
  options: {
    count: { type: 'string' },
    concurrency: { type: 'string' },
    control: { type: 'string' },
    prefix: { type: 'string', default: 'plain' },
  },
});
const count = Number(values.count);
const concurrency = Number(values.concurrency);
if (!Number.isSafeInteger(count) || count < 1 || !Number.isSafeInteger(concurrency) || concurrency < 1) {
  process.stderr.write('--count and --concurrency take whole numbers of at least 1\n');
  process.exit(2);
}
if (values.control === undefined) {
  process.stderr.write('--control takes the S3 key of the control image\n');
  process.exit(2);
}
const controlKey = values.control;
const prefix = values.prefix;

const config = loadConfig();
const bucket = config.s3.bucket;
if (bucket === undefined) {
  process.stderr.write('S3_BUCKET must be set\n');
  process.exit(2);
}
const s3 = s3ClientForConfig(config);
const replicate = new Replicate({ auth: requireReplicateToken(config), baseUrl: config.replicate.baseUrl });
const controlUrl = await presignGetUrl(s3, { bucket, key: controlKey }, 3600);

async function renderOne(index: number): Promise<void> {
  const created = await replicate.predictions.create({
    model: fluxDepthPro.id,
    input: { prompt: `benchmark facade ${index}`, control_image: controlUrl, steps: 15, seed: index },
  });
  const done = await replicate.wait(created, {});
  if (done.status !== 'succeeded') throw new Error(`prediction ${done.id} ended ${done.status}: ${done.error}`);
  const url = Array.isArray(done.output) ? done.output[0] : done.output;
  if (typeof url !== 'string') throw new Error(`prediction ${done.id} has no output URL`);
  const response = await fetch(url);
  if (!response.ok) throw new Error(`GET ${url}: ${response.status}`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  await s3.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: `${prefix}/${index}.webp`,
      Body: bytes,
      ContentType: response.headers.get('content-type') ?? 'application/octet-stream',
    }),
  );
}

const limit = pLimit(concurrency);
const startedAt = performance.now();
const cpuBefore = process.cpuUsage();
const outcomes = await Promise.allSettled(Array.from({ length: count }, (_, index) => limit(() => renderOne(index))));
const makespanMs = performance.now() - startedAt;
const cpu = process.cpuUsage(cpuBefore);
s3.destroy();

const failures = outcomes.flatMap((outcome) => (outcome.status === 'rejected' ? [outcome.reason] : []));
const firstFailure: unknown = failures[0];
const result: PlainScriptResult = {
  makespanMs,
  delivered: count - failures.length,
  failed: failures.length,
  cpuMs: (cpu.user + cpu.system) / 1000,
  firstError:
    firstFailure === undefined
      ? undefined
      : String(firstFailure instanceof Error ? firstFailure.message : firstFailure),
};
process.stdout.write(`${JSON.stringify(result)}\n`);
