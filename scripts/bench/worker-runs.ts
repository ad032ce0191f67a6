/**
 * One measured pass of jobs through worker processes, for the orchestration, memory and scale sections: the jobs are
 * enqueued on a paused queue, the workers start (each in its own process), the Redis counters are reset, the queue is
 * resumed, and the pass ends when BullMQ's completed set holds every job. Nothing in the pass is simulated: a real
 * redis-server, s3rver and the project's Replicate simulator (src/sim), the simulator answering at once (latency 0).
 */
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { loadConfig } from '../../src/config/index.js';
import { fluxDepthPro } from '../../src/core/models.js';
import { buildRenderJob, type RenderJob } from '../../src/core/render-job.js';
import { RunLedger } from '../../src/ledger/run-ledger.js';
import { makeControlImages } from '../../src/local/control-images/index.js';
import { type LocalStack, startLocalStack } from '../../src/local/stack.js';
import { closeConnection, connectProducer, createProducerConnection } from '../../src/queue/connections.js';
import {
  createRenderQueue,
  defaultRenderQueueSettings,
  enqueueRenderJobs,
  RENDER_QUEUE_NAME,
} from '../../src/queue/render-queue.js';
import { putBytesObject } from '../../src/storage/s3.js';
import {
  type CommandCounts,
  commandCounts,
  redisCpuMs,
  startWorkerChild,
  type WorkerChild,
  type WorkerFigures,
  waitUntil,
} from './processes.js';

const CONTROL_KEY = 'controls/bench.png';

export interface BenchStack {
  readonly stack: LocalStack;
  /** The parent's own connection: enqueueing, polling, INFO. */
  readonly redis: Redis;
  readonly redisUrl: string;
  readonly bucket: string;
  readonly env: Readonly<Record<string, string>>;
  stop(): Promise<void>;
}

/**
 * The local stack with the simulator at latency 0 and limits out of the way, and one control image in the bucket.
 * `outputMinBytes` pads every output to that size (the memory section's 8 MB outputs).
 */
export async function startBenchStack(options: { readonly outputMinBytes?: number } = {}): Promise<BenchStack> {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const stack = await startLocalStack({
    simulator: {
      startDelayMs: { min: 0, max: 0 },
      latencyMs: { min: 0, max: 0 },
      outputMaxSide: 64,
      outputMinBytes: options.outputMinBytes ?? 0,
      createsPerMinute: 10_000_000,
      requestsPerMinute: 10_000_000,
    },
  });
  const s3Server = stack.s3;
  const redisServer = stack.redis;
  if (s3Server === undefined || redisServer === undefined) throw new Error('the bench stack lacks S3 or Redis');
  const s3 = s3Server.client();
  const [control] = await makeControlImages({ count: 1, width: 128, height: 96 });
  if (control === undefined) throw new Error('no control image');
  await putBytesObject(s3, { bucket: s3Server.bucket, key: CONTROL_KEY }, control.bytes, control.contentType);
  s3.destroy();
  const redis = createProducerConnection(redisServer.url);
  await connectProducer(redis);
  const env = {
    ...stack.env(),
    LOG_LEVEL: 'silent',
    DEPTHQ_CREATES_PER_MINUTE: '100000',
    DEPTHQ_GLOBAL_CONCURRENCY: '100000',
    DEPTHQ_POLL_INITIAL_MS: '20',
    DEPTHQ_POLL_MAX_MS: '100',
  };
  return {
    stack,
    redis,
    redisUrl: redisServer.url,
    bucket: s3Server.bucket,
    env,
    async stop() {
      await closeConnection(redis);
      await stack.stop();
    },
  };
}

/** `count` render jobs of one run, each a different row (its own seed, output key and prompt). */
export function benchJobs(run: string, bucket: string, count: number): RenderJob[] {
  return Array.from({ length: count }, (_, index) =>
    buildRenderJob({
      run,
      rowId: `row-${String(index).padStart(6, '0')}`,
      style: 'bench',
      model: fluxDepthPro.id,
      controlImage: { bucket, key: CONTROL_KEY },
      input: { prompt: `a bright open-plan living room at dusk, oak floor, render ${index}`, steps: 15 },
      output: { bucket, prefix: run },
      metadata: { sku: `SKU-${index}` },
    }),
  );
}

export interface PassFigures {
  readonly jobs: number;
  readonly workers: readonly WorkerFigures[];
  /** From resume to the last job in BullMQ's completed set. */
  readonly seconds: number;
  readonly redisCpuMs: number;
  readonly commands: CommandCounts;
}

/** Queue names are per pass: each pass has its own key prefix, so no pass sees another's jobs or counters. */
let passCount = 0;

export interface PassRequest {
  readonly kind: 'bare' | 'depthq';
  readonly jobs: number;
  readonly processes: number;
  readonly concurrency: number;
}

/** Enqueues `jobs` on a paused queue, starts the workers, resumes, and measures until every job completed. */
export async function measurePass(bench: BenchStack, request: PassRequest): Promise<PassFigures> {
  passCount++;
  const prefix = `b${passCount}${request.kind}`;
  const run = `bench-${passCount}-${request.kind}`;
  const jobs = benchJobs(run, bench.bucket, request.jobs);
  const queue =
    request.kind === 'bare'
      ? new Queue(RENDER_QUEUE_NAME, { connection: bench.redis, prefix })
      : createRenderQueue(bench.redis, prefix, defaultRenderQueueSettings);
  const children: WorkerChild[] = [];
  try {
    await queue.pause();
    if (request.kind === 'bare') {
      // The same payloads, added the way a bare BullMQ producer would: addBulk, nothing else.
      for (let start = 0; start < jobs.length; start += 1000) {
        await queue.addBulk(jobs.slice(start, start + 1000).map((job) => ({ name: run, data: job })));
      }
    } else {
      const ledger = new RunLedger(bench.redis, prefix);
      await ledger.createRun(run, {
        model: fluxDepthPro.id,
        budgetMicros: null,
        manifest: { name: 'bench.csv', sha256: '0'.repeat(64) },
        output: { bucket: bench.bucket, prefix: run, keyTemplate: '{run}/{style}/{id}.{ext}' },
        defaults: {},
      });
      await enqueueRenderJobs(queue, ledger, run, jobs);
    }
    const env = { ...bench.env, DEPTHQ_PREFIX: prefix };
    // The config must parse here too: a mistake shows before any child starts.
    loadConfig(env);
    for (let index = 0; index < request.processes; index++) {
      children.push(
        await startWorkerChild(
          request.kind === 'bare'
            ? { kind: 'bare', redisUrl: bench.redisUrl, prefix, concurrency: request.concurrency }
            : { kind: 'depthq', env, concurrency: request.concurrency },
        ),
      );
    }
    const completedKey = `${prefix}:${RENDER_QUEUE_NAME}:completed`;
    const failedKey = `${prefix}:${RENDER_QUEUE_NAME}:failed`;
    await bench.redis.config('RESETSTAT');
    const cpuBefore = await redisCpuMs(bench.redis);
    const started = performance.now();
    await queue.resume();
    const polls = await waitUntil(async () => {
      const [completed, failed] = await Promise.all([bench.redis.zcard(completedKey), bench.redis.zcard(failedKey)]);
      if (failed > 0) throw new Error(`${failed} ${request.kind} job(s) failed: the pass measures nothing`);
      return completed >= request.jobs;
    }, `${request.jobs} ${request.kind} jobs to complete`);
    const seconds = (performance.now() - started) / 1000;
    const cpuAfter = await redisCpuMs(bench.redis);
    const counted = await commandCounts(bench.redis);
    // The bench's own commands (two ZCARDs a poll, the resume script) are not the workers'.
    const commands = { ...counted, total: counted.total - 2 * polls - 1, scripts: counted.scripts - 1 };
    const workers: WorkerFigures[] = [];
    for (const child of children.splice(0)) workers.push(await child.stop());
    return { jobs: request.jobs, workers, seconds, redisCpuMs: cpuAfter - cpuBefore, commands };
  } finally {
    for (const child of children) child.kill();
    await queue.close();
  }
}

/** Sum of a figure over the pass's workers. */
export function totalOf(pass: PassFigures, figure: (worker: WorkerFigures) => number): number {
  return pass.workers.reduce((sum, worker) => sum + figure(worker), 0);
}
