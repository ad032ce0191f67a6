/**
 * Helpers for tests that run render jobs end to end on the local stack: control images uploaded to s3rver, a run in the
 * ledger, jobs enqueued through `enqueueRenderJobs`, and ways to wait for the ledger to settle.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterAll } from 'vitest';
import { z } from 'zod';
import { type Config, loadConfig } from '../../src/config/index.js';
import { fluxDepthPro, type ModelDefinition } from '../../src/core/models.js';
import { buildRenderJob, type RenderJob } from '../../src/core/render-job.js';
import { type RunCounters, RunLedger } from '../../src/ledger/run-ledger.js';
import { makeControlImages } from '../../src/local/control-images/index.js';
import type { LocalStack } from '../../src/local/stack.js';
import { closeConnection, connectProducer, createProducerConnection } from '../../src/queue/connections.js';
import {
  createRenderQueue,
  defaultRenderQueueSettings,
  enqueueRenderJobs,
  type RenderJobData,
} from '../../src/queue/render-queue.js';
import { putBytesObject } from '../../src/storage/s3.js';
import type { RunningRenderWorker } from '../../src/worker/start.js';
import { uniqueName } from './stack.js';

export interface RenderRunFixture {
  readonly prefix: string;
  readonly run: string;
  readonly bucket: string;
  readonly config: Config;
  readonly redis: Redis;
  readonly ledger: RunLedger;
  readonly queue: Queue<RenderJobData>;
  readonly s3: S3Client;
  readonly jobs: readonly RenderJob[];
  close(): Promise<void>;
}

export interface RenderRunOptions {
  readonly images: number;
  readonly styles: readonly string[];
  readonly budgetMicros?: number | null;
  /** Extra environment for the worker config (DEPTHQ_* tuning). */
  readonly env?: Record<string, string>;
  /** Give every row a seed of its own (manifest seed) instead of a derived one. */
  readonly manifestSeeds?: boolean;
  readonly input?: Record<string, string | number | boolean>;
  /** @defaultValue flux-depth-pro (with `steps: 15`); another model gets only `input` beside the prompt */
  readonly model?: ModelDefinition;
}

/** The environment a worker (in-process or child) needs for this stack, plus fast timings for tests. */
export function workerEnvironment(
  stack: LocalStack,
  prefix: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    ...stack.env(),
    DEPTHQ_PREFIX: prefix,
    DEPTHQ_LOCK_DURATION_MS: '4000',
    DEPTHQ_STALLED_INTERVAL_MS: '2000',
    DEPTHQ_BACKOFF_BASE_MS: '100',
    DEPTHQ_POLL_INITIAL_MS: '100',
    DEPTHQ_POLL_MAX_MS: '400',
    DEPTHQ_CREATE_WAIT_SECONDS: '2',
    LOG_LEVEL: 'silent',
    ...extra,
  };
}

export async function prepareRenderRun(stack: LocalStack, options: RenderRunOptions): Promise<RenderRunFixture> {
  const s3Server = stack.s3;
  if (s3Server === undefined) throw new Error('the stack has no S3');
  const prefix = uniqueName('dq').replace(/-/g, '_');
  const run = uniqueName('run');
  const env = workerEnvironment(stack, prefix, options.env);
  // The AWS SDK's credential chain reads process.env: in-process clients need s3rver's keys there.
  process.env.AWS_ACCESS_KEY_ID = env.AWS_ACCESS_KEY_ID;
  process.env.AWS_SECRET_ACCESS_KEY = env.AWS_SECRET_ACCESS_KEY;
  const config = loadConfig(env);
  const s3 = s3Server.client();
  const bucket = s3Server.bucket;
  const images = await makeControlImages({ count: options.images, width: 256, height: 192 });
  await Promise.all(
    images.map((image) =>
      putBytesObject(s3, { bucket, key: `controls/${image.name}.png` }, image.bytes, image.contentType),
    ),
  );
  const redis = createProducerConnection(config.redisUrl);
  await connectProducer(redis);
  const ledger = new RunLedger(redis, prefix);
  const model = options.model ?? fluxDepthPro;
  await ledger.createRun(run, {
    model: model.id,
    budgetMicros: options.budgetMicros ?? null,
    manifest: { name: 'test.csv', sha256: '0'.repeat(64) },
    output: { bucket, prefix: 'out', keyTemplate: '{run}/{style}/{id}.{ext}' },
    defaults: {},
  });
  if (options.budgetMicros !== undefined) await ledger.setBudget(run, options.budgetMicros);
  const jobs: RenderJob[] = [];
  for (const [index, image] of images.entries()) {
    for (const style of options.styles) {
      jobs.push(
        buildRenderJob({
          run,
          rowId: image.name,
          style,
          model: model.id,
          controlImage: { bucket, key: `controls/${image.name}.png` },
          input: {
            prompt: `${image.description}, ${style} style`,
            ...(model.id === fluxDepthPro.id ? { steps: 15 } : {}),
            ...(options.manifestSeeds ? { seed: 1_000 + index } : {}),
            ...options.input,
          },
          output: { bucket, prefix: 'out' },
          metadata: { source: 'test' },
        }),
      );
    }
  }
  // Jobs get their attempts when they are added, as `depthq ingest` adds them: DEPTHQ_JOB_ATTEMPTS, or the default.
  const attempts = config.worker.attempts;
  const queue = createRenderQueue(redis, prefix, {
    ...defaultRenderQueueSettings,
    ...(attempts === undefined ? {} : { attempts }),
  });
  await enqueueRenderJobs(queue, ledger, run, jobs);
  return {
    prefix,
    run,
    bucket,
    config,
    redis,
    ledger,
    queue,
    s3,
    jobs,
    async close() {
      await queue.close();
      await closeConnection(redis);
    },
  };
}

/** Polls the ledger until `done(counters)` or the timeout; returns the last counters either way. */
export async function waitForCounters(
  ledger: RunLedger,
  run: string,
  done: (counters: RunCounters) => boolean,
  timeoutMs = 60_000,
): Promise<RunCounters> {
  const deadline = Date.now() + timeoutMs;
  let counters = await ledger.counters(run);
  while (!done(counters) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    counters = await ledger.counters(run);
  }
  return counters;
}

export function s3ClientFor(stack: LocalStack): S3Client {
  const s3 = stack.s3;
  if (s3 === undefined) throw new Error('the stack has no S3');
  return s3.client();
}

/** A prediction as the simulator's public API shows it: the fields the render tests read. */
const simulatorPredictionSchema = z.object({
  id: z.string(),
  model: z.string(),
  status: z.string(),
  input: z.record(z.string(), z.unknown()),
  output: z.unknown(),
  error: z.unknown(),
  logs: z.string().nullish(),
});
export type SimulatorPrediction = z.output<typeof simulatorPredictionSchema>;

const simulatorPageSchema = z.object({
  results: z.array(simulatorPredictionSchema),
  next: z.string().nullish(),
});

function simulatorApi(stack: LocalStack): { readonly baseUrl: string; readonly headers: Record<string, string> } {
  const env = stack.env();
  const baseUrl = env.REPLICATE_BASE_URL;
  if (baseUrl === undefined) throw new Error('the stack has no simulator');
  return { baseUrl, headers: { Authorization: `Bearer ${env.REPLICATE_API_TOKEN ?? ''}` } };
}

async function simulatorJson(url: string, headers: Record<string, string>): Promise<unknown> {
  const response = await fetch(url, { headers });
  if (!response.ok) throw new Error(`GET ${url} answered HTTP ${response.status}: ${await response.text()}`);
  return response.json();
}

/**
 * Every prediction the simulator holds, read through its public list API page by page, as a client would see them.
 * Injected faults and throttling apply to these requests too: turn them off first.
 */
export async function listSimulatorPredictions(stack: LocalStack): Promise<SimulatorPrediction[]> {
  const { baseUrl, headers } = simulatorApi(stack);
  const predictions: SimulatorPrediction[] = [];
  let url: string | null | undefined = `${baseUrl}/predictions`;
  while (url) {
    const page = simulatorPageSchema.parse(await simulatorJson(url, headers));
    predictions.push(...page.results);
    url = page.next;
  }
  return predictions;
}

/** One prediction by id, through the simulator's public API. */
export async function getSimulatorPrediction(stack: LocalStack, id: string): Promise<SimulatorPrediction> {
  const { baseUrl, headers } = simulatorApi(stack);
  return simulatorPredictionSchema.parse(await simulatorJson(`${baseUrl}/predictions/${id}`, headers));
}

/**
 * What identifies the job a prediction was made for, from its input alone: the prompt and the seed (the control image
 * URL differs between attempts, being presigned anew each time). Unique per job in runs built by `prepareRenderRun`.
 */
export function predictionSubjectOf(input: Readonly<Record<string, unknown>>): string {
  return JSON.stringify([input.prompt, input.seed]);
}

/**
 * The runs and in-process workers a test file starts, closed after its tests: workers first, since they use the runs'
 * Redis. Push what a test starts into the returned arrays.
 */
export function useRenderRunCleanup(): {
  readonly fixtures: RenderRunFixture[];
  readonly workers: RunningRenderWorker[];
} {
  const fixtures: RenderRunFixture[] = [];
  const workers: RunningRenderWorker[] = [];
  afterAll(async () => {
    for (const worker of workers) await worker.close();
    for (const fixture of fixtures) await fixture.close();
  });
  return { fixtures, workers };
}
