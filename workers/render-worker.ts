/**
 * The render worker's composition root: config → connections → start-up checks → BullMQ Worker → signals → graceful
 * close. Run it as `depthq worker` (any number, on any number of machines, one Redis).
 *
 * Shutdown (SIGTERM/SIGINT): stop taking jobs, let in-flight jobs finish until the deadline, then abort the rest —
 * they go back to waiting with their checkpoints, no attempt spent — close the connections and exit 0.
 */
import { HeadBucketCommand, type S3Client } from '@aws-sdk/client-s3';
import { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { type Config, requireReplicateToken } from '../src/config/index.js';
import { ConfigError, coerceError } from '../src/core/errors.js';
import { defaultModelId } from '../src/core/models.js';
import { RunLedger } from '../src/ledger/run-ledger.js';
import { createLogger, type Logger } from '../src/logging/logger.js';
import type { RenderOutcome } from '../src/pipeline/render.js';
import { createRenderProcessor, defaultPipelineSettings } from '../src/pipeline/render.js';
import { stalledJobSettler } from '../src/pipeline/stalled-jobs.js';
import { ReplicateProvider } from '../src/providers/replicate.js';
import { defaultRetryPolicy } from '../src/providers/transport.js';
import { closeConnection, createWorkerConnection } from '../src/queue/connections.js';
import { DurableWrites, durabilityWarning } from '../src/queue/durability.js';
import { holdQueueRateLimit } from '../src/queue/rate-limit.js';
import {
  createRenderQueue,
  defaultRenderQueueSettings,
  queueKeyPrefixOf,
  RENDER_QUEUE_NAME,
  type RenderJobData,
  type RenderQueueSettings,
  renderWorkerOptions,
} from '../src/queue/render-queue.js';
import { s3ClientForConfig } from '../src/storage/s3-client.js';

export interface RenderWorkerOptions {
  /** Jobs in flight in this process; overrides DEPTHQ_WORKER_CONCURRENCY. */
  readonly concurrency?: number;
  readonly logger?: Logger;
  /** Skip the start-up reachability checks (for embedding in a process that already made them). */
  readonly skipStartupChecks?: boolean;
}

export interface RunningRenderWorker {
  readonly worker: Worker<RenderJobData, RenderOutcome>;
  /** Graceful close: in-flight jobs finish until `deadlineMs`, then are returned to waiting. Idempotent. */
  close(deadlineMs?: number): Promise<void>;
}

/** A dependency the worker cannot run without is unreachable or refuses it: a clear message, exit code 2. */
export class StartupCheckError extends ConfigError {
  override readonly name: string = 'StartupCheckError';
}

export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 30_000;

function queueSettingsOf(config: Config, concurrency: number | undefined): RenderQueueSettings {
  const w = config.worker;
  return {
    ...defaultRenderQueueSettings,
    ...(w.createsPerMinute !== undefined ? { createsPerMinute: w.createsPerMinute } : {}),
    ...(w.globalConcurrency !== undefined ? { globalConcurrency: w.globalConcurrency } : {}),
    ...(w.attempts !== undefined ? { attempts: w.attempts } : {}),
    ...(w.lockDurationMs !== undefined ? { lockDurationMs: w.lockDurationMs } : {}),
    ...(w.stalledIntervalMs !== undefined ? { stalledIntervalMs: w.stalledIntervalMs } : {}),
    ...(w.backoffBaseMs !== undefined ? { backoffBaseMs: w.backoffBaseMs } : {}),
    workerConcurrency: concurrency ?? w.concurrency ?? defaultRenderQueueSettings.workerConcurrency,
  };
}

async function withTimeout<T>(what: string, ms: number, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

async function checkRedis(redis: Redis, config: Config): Promise<void> {
  // A worker connection retries forever, so a refused connection would only show as the timeout: fail on its first error.
  let onError: ((error: Error) => void) | undefined;
  const connectionError = new Promise<never>((_, reject) => {
    onError = reject;
    redis.once('error', reject);
  });
  try {
    await withTimeout('Redis', 5_000, Promise.race([redis.ping(), connectionError]));
  } catch (error) {
    throw new StartupCheckError(
      `cannot reach Redis at ${new URL(config.redisUrl).host} (REDIS_URL): ${coerceError(error).message}`,
      { cause: error },
    );
  } finally {
    if (onError) redis.off('error', onError);
  }
  const policy = await redis.config('GET', 'maxmemory-policy').catch(() => undefined);
  const value = Array.isArray(policy) ? policy[1] : undefined;
  if (value !== undefined && value !== 'noeviction') {
    throw new StartupCheckError(
      `Redis maxmemory-policy is ${value}: BullMQ needs noeviction (an evicted job is a lost job). ` +
        'Set `maxmemory-policy noeviction` in redis.conf.',
    );
  }
}

async function checkS3(s3: S3Client, config: Config): Promise<void> {
  // Workers read and write whatever buckets the jobs name; when a default bucket is configured, check it is reachable.
  if (config.s3.bucket === undefined) return;
  try {
    await withTimeout('S3', 10_000, s3.send(new HeadBucketCommand({ Bucket: config.s3.bucket })));
  } catch (error) {
    const where = config.s3.endpoint ?? `AWS S3 (${config.s3.region})`;
    throw new StartupCheckError(
      `cannot reach bucket ${config.s3.bucket} at ${where} (S3_BUCKET, S3_ENDPOINT, AWS credentials): ${coerceError(error).name} ${coerceError(error).message}`,
      { cause: error },
    );
  }
}

async function checkProvider(config: Config, token: string): Promise<void> {
  const url = `${config.replicate.baseUrl}/models/${defaultModelId}`;
  let response: Response;
  try {
    response = await fetch(url, { headers: { Authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(10_000) });
  } catch (error) {
    // fetch says only "fetch failed"; what failed (ECONNREFUSED, ENOTFOUND, a certificate) is in its cause.
    const failure = coerceError(error);
    const detail = failure.cause instanceof Error ? `${failure.message}: ${failure.cause.message}` : failure.message;
    throw new StartupCheckError(
      `cannot reach the Replicate API at ${config.replicate.baseUrl} (REPLICATE_BASE_URL): ${detail}`,
      { cause: error },
    );
  }
  await response.body?.cancel();
  if (response.status === 401 || response.status === 403) {
    throw new StartupCheckError(
      `the Replicate API at ${config.replicate.baseUrl} refused REPLICATE_API_TOKEN (HTTP ${response.status})`,
    );
  }
  // Any other answer (a 404 for a retired model, a 429, a passing 5xx) shows the API is there: jobs handle the rest.
}

export async function startRenderWorker(
  config: Config,
  options: RenderWorkerOptions = {},
): Promise<RunningRenderWorker> {
  const logger = options.logger ?? createLogger(config, { role: 'render-worker' });
  const token = requireReplicateToken(config);
  const settings = queueSettingsOf(config, options.concurrency);
  const workerConnection = createWorkerConnection(config.redisUrl, { name: 'depthq-worker' });
  const queueConnection = createWorkerConnection(config.redisUrl, { name: 'depthq-worker-queue' });
  // ioredis reconnects forever on its own; until the start-up check passes, an error is reported there instead.
  workerConnection.on('error', () => undefined);
  queueConnection.on('error', () => undefined);
  const s3 = s3ClientForConfig(config);
  const closeEverything = async () => {
    await Promise.allSettled([closeConnection(workerConnection), closeConnection(queueConnection)]);
    s3.destroy();
  };

  try {
    if (!options.skipStartupChecks) {
      await checkRedis(workerConnection, config);
      await Promise.all([checkS3(s3, config), checkProvider(config, token)]);
    }
  } catch (error) {
    await closeEverything();
    throw error;
  }

  const queue = createRenderQueue(queueConnection, config.prefix, settings);
  await queue.setGlobalConcurrency(settings.globalConcurrency);
  const providerTimeoutMs = config.worker.providerTimeoutMs ?? defaultRetryPolicy.requestTimeoutMs;
  const provider = new ReplicateProvider({
    apiToken: token,
    baseUrl: config.replicate.baseUrl,
    poll: {
      ...(config.worker.pollInitialMs !== undefined ? { initialMs: config.worker.pollInitialMs } : {}),
      ...(config.worker.pollMaxMs !== undefined ? { maxMs: config.worker.pollMaxMs } : {}),
    },
    transport: {
      onRetry: (notice) => logger.debug({ retry: notice }, 'retrying a provider request'),
      policy: { requestTimeoutMs: providerTimeoutMs },
    },
  });
  // The fenced checkpoint writes go through the worker connection: WAIT/WAITAOF must be sent on it.
  const durableWrites = new DurableWrites(workerConnection);
  const durability = await durableWrites.facts().catch(() => undefined);
  const durabilityProblem = durability === undefined ? undefined : durabilityWarning(durability);
  if (durabilityProblem !== undefined) logger.warn({ redis: durability }, durabilityProblem);
  const processor = createRenderProcessor({
    confirmDurable: () => durableWrites.confirm(),
    provider,
    s3,
    ledger: new RunLedger(workerConnection, config.prefix),
    redis: workerConnection,
    queueKeyPrefix: queueKeyPrefixOf(config.prefix),
    rateLimit: (ms) =>
      holdQueueRateLimit(queueConnection, {
        queueKeyPrefix: queueKeyPrefixOf(config.prefix),
        ms,
        limiterMax: settings.createsPerMinute,
      }).then(() => undefined),
    logger,
    settings: {
      ...(config.worker.createWaitSeconds !== undefined ? { createWaitSeconds: config.worker.createWaitSeconds } : {}),
      ...(config.worker.postCreateRetryMs !== undefined ? { postCreateRetryMs: config.worker.postCreateRetryMs } : {}),
      // In-job retries back off like the queue's own retries, from the same base.
      retryBaseMs: settings.backoffBaseMs,
      retryCapMs: Math.max(defaultPipelineSettings.retryCapMs, settings.backoffBaseMs),
      providerRetentionMs: config.replicate.retentionMs,
      retentionMarginMs: config.replicate.retentionMarginMs,
      // One send of a create stays in flight at most the transport's timeout plus its `Prefer: wait` hold.
      longestCreateSendMs:
        providerTimeoutMs + (config.worker.createWaitSeconds ?? defaultPipelineSettings.createWaitSeconds) * 1000,
    },
  });
  const worker = new Worker<RenderJobData, RenderOutcome>(RENDER_QUEUE_NAME, processor, {
    connection: workerConnection,
    prefix: config.prefix,
    ...renderWorkerOptions(settings),
  });
  worker.on('error', (error) => logger.error({ err: error.message }, 'worker error'));
  worker.on('failed', (job, error) => {
    if (job) logger.warn({ jobId: job.id, attemptsMade: job.attemptsMade, err: error.message }, 'job attempt failed');
  });
  // A job BullMQ fails without running the processor (stalled too often) still needs its row and money settled.
  const stalledJobs = stalledJobSettler({ ledger: new RunLedger(workerConnection, config.prefix), log: logger });
  worker.on('failed', stalledJobs.onFailed);
  await worker.waitUntilReady();
  // Jobs a worker failed and then died before settling: the newest failed jobs are looked at once per start.
  stalledJobs.sweepRecentlyFailed(queue);
  logger.info(
    { queue: RENDER_QUEUE_NAME, prefix: config.prefix, concurrency: settings.workerConcurrency },
    'render worker started',
  );

  let closing: Promise<void> | undefined;
  return {
    worker,
    close(deadlineMs = config.worker.shutdownTimeoutMs ?? DEFAULT_SHUTDOWN_TIMEOUT_MS) {
      closing ??= (async () => {
        logger.info({ deadlineMs }, 'closing: no new jobs; in-flight jobs finish or return to waiting');
        // Predictions still running at the deadline are left to Replicate: their jobs resume (and adopt them) later.
        // The aborted jobs need a moment to write their checkpoints and move back to waiting before the deadline.
        const abortAfterMs = deadlineMs - Math.min(2_000, deadlineMs / 4);
        const abortTimer = setTimeout(() => worker.cancelAllJobs('worker shutting down'), abortAfterMs);
        try {
          await worker.close();
        } finally {
          clearTimeout(abortTimer);
          await stalledJobs.idle();
          await queue.close();
          await closeEverything();
        }
        logger.info('closed');
      })();
      return closing;
    },
  };
}

/** `depthq worker`: runs until SIGTERM/SIGINT, then closes gracefully and exits 0. */
export async function runRenderWorkerProcess(config: Config, options: RenderWorkerOptions = {}): Promise<void> {
  // Listen before starting: a SIGTERM that arrives while the worker connects must still end in a graceful close.
  let signalled: NodeJS.Signals | undefined;
  let onStopRequested: (() => void) | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    signalled ??= signal;
    onStopRequested?.();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    const running = await startRenderWorker(config, options);
    if (signalled === undefined) {
      await new Promise<void>((resolve) => {
        onStopRequested = resolve;
      });
    }
    try {
      await running.close();
    } catch (error) {
      process.stderr.write(`depthq worker: closing failed after ${signalled}: ${coerceError(error).message}\n`);
      process.exitCode = 1;
    }
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
}
