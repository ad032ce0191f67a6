/**
 * The render worker: config → connections → start-up checks (startup-checks.ts) → BullMQ Worker → signals → graceful
 * close. `depthq worker` and workers/render-worker.ts run it (any number, on any number of machines, one Redis); tests
 * and benchmarks start it in-process with `startRenderWorker`.
 *
 * Shutdown (SIGTERM/SIGINT): stop taking jobs, let in-flight jobs finish until the deadline, then abort the rest —
 * they go back to waiting with their checkpoints, no attempt spent — close the connections and exit 0.
 */
import { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { type Config, requireReplicateToken } from '../config/index.js';
import { coerceError } from '../core/errors.js';
import { RunLedger } from '../ledger/run-ledger.js';
import { createLogger, type Logger } from '../logging/logger.js';
import type { RenderOutcome } from '../pipeline/render.js';
import { createRenderProcessor } from '../pipeline/render.js';
import { stalledJobSettler } from '../pipeline/stalled-jobs.js';
import { providerForConfig } from '../providers/provider-for-config.js';
import { closeConnection, createWorkerConnection } from '../queue/connections.js';
import { DurableWrites, durabilityWarning } from '../queue/durability.js';
import { holdQueueRateLimit } from '../queue/rate-limit.js';
import {
  createLimiterOf,
  createRenderQueue,
  queueKeyPrefixOf,
  RENDER_QUEUE_NAME,
  type RenderJobData,
  renderWorkerOptions,
} from '../queue/render-queue.js';
import { RedisTelemetryPublisher } from '../queue/telemetry-publisher.js';
import { s3ClientForConfig } from '../storage/s3-client.js';
import { pipelineSettingsOf, pollPolicyOf, queueSettingsOf } from './settings.js';
import { runStartupChecks } from './startup-checks.js';

export { StartupCheckError } from './startup-checks.js';

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

export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 30_000;

/** Warns at start when a Redis crash could lose writes the worker was told are acknowledged (src/queue/durability.ts). */
async function warnIfNotDurable(durableWrites: DurableWrites, logger: Logger): Promise<void> {
  const durability = await durableWrites.facts().catch(() => undefined);
  const durabilityProblem = durability === undefined ? undefined : durabilityWarning(durability);
  if (durabilityProblem !== undefined) logger.warn({ redis: durability }, durabilityProblem);
}

/**
 * The worker's `error` and `failed` listeners: errors and failed attempts are logged, and a job BullMQ fails without
 * running the processor (stalled too often) still gets its row and money settled (src/pipeline/stalled-jobs.ts).
 */
function listenToWorker(worker: Worker<RenderJobData, RenderOutcome>, redis: Redis, config: Config, logger: Logger) {
  worker.on('error', (error) => logger.error({ err: error.message }, 'worker error'));
  worker.on('failed', (job, error) => {
    if (job) logger.warn({ jobId: job.id, attemptsMade: job.attemptsMade, err: error.message }, 'job attempt failed');
  });
  const stalledJobs = stalledJobSettler({ ledger: new RunLedger(redis, config.prefix), log: logger });
  worker.on('failed', stalledJobs.onFailed);
  return stalledJobs;
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
    if (!options.skipStartupChecks) await runStartupChecks(workerConnection, s3, config, token);
  } catch (error) {
    await closeEverything();
    throw error;
  }

  const queue = createRenderQueue(queueConnection, config.prefix, settings);
  await queue.setGlobalConcurrency(settings.globalConcurrency);
  // Counted in memory, added to Redis every interval in one batch, for the dashboard's /metrics (docs/metrics.md).
  const telemetry = new RedisTelemetryPublisher(queueConnection, config.prefix, {
    ...(config.worker.telemetryIntervalMs ? { intervalMs: config.worker.telemetryIntervalMs } : {}),
    onError: (error) => logger.debug({ err: coerceError(error).message }, 'telemetry not published; kept for the next'),
  });
  const provider = providerForConfig(config, {
    apiToken: token,
    poll: pollPolicyOf(config),
    onRetry: (notice) => logger.debug({ retry: notice }, 'retrying a provider request'),
    telemetry: telemetry.telemetry,
  });
  // The fenced checkpoint writes go through the worker connection: WAIT/WAITAOF must be sent on it.
  const durableWrites = new DurableWrites(workerConnection);
  await warnIfNotDurable(durableWrites, logger);
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
        // What "saturated" means for the limiter the workers run with: its window's max, not the per-minute rate.
        limiterMax: createLimiterOf(settings.createsPerMinute).max,
      }).then(() => undefined),
    logger,
    settings: pipelineSettingsOf(config, settings),
    telemetry: telemetry.telemetry,
  });
  const worker = new Worker<RenderJobData, RenderOutcome>(RENDER_QUEUE_NAME, processor, {
    connection: workerConnection,
    prefix: config.prefix,
    ...renderWorkerOptions(settings),
  });
  const stalledJobs = listenToWorker(worker, workerConnection, config, logger);
  await worker.waitUntilReady();
  // Jobs a worker failed and then died before settling: the newest failed jobs are looked at once per start.
  stalledJobs.sweepRecentlyFailed(queue);
  telemetry.start();
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
          // The last counts (the jobs that just finished) and the heartbeat's removal, while Redis is still connected.
          await telemetry.stop();
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
