/**
 * The render processor as BullMQ sees it: one queued job becomes one stored, paid-once, recorded output, whatever
 * crashes on the way. The job itself is `run-job.ts` (a loop over the named states of `core/render-state.ts`); this
 * adapter wires its ports to Redis, S3 and the provider and turns each of its results into the queue's move.
 *
 * Every checkpoint write is fenced (only while this worker still holds the job's lock), and the create is sent only
 * after a fenced write of "creating, with this exact input" succeeded, so of two workers that both believe they own a
 * job, only one can ever pay. See docs/render-job.md.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { DelayedError, RateLimitError, UnrecoverableError, WaitingError } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Telemetry } from '../core/telemetry.js';
import type { RunLedger } from '../ledger/run-ledger.js';
import type { ImageModelProvider } from '../providers/provider.js';
import { writeCheckpointFenced } from '../queue/fenced-checkpoint.js';
import { RedisPredictionClaims } from '../queue/prediction-claims.js';
import type { RenderQueueJob } from '../queue/render-queue.js';
import { defaultPipelineSettings, type PipelineSettings, type StepDeps } from './render-context.js';
import { runRenderJob } from './run-job.js';
import { defaultStoreTimeouts, S3OutputStore } from './s3-output-store.js';
import type { RenderOutcome } from './sidecar.js';

export { defaultPipelineSettings, type PipelineSettings } from './render-context.js';
export type { RenderOutcome } from './sidecar.js';

export interface RenderPipelineDeps {
  readonly provider: ImageModelProvider;
  readonly s3: S3Client;
  /** The run ledger; each processing of a job writes through `fencedFor` its lock (see run-ledger.ts). */
  readonly ledger: RunLedger;
  /** The worker's connection: fenced checkpoint writes and the control-image digest cache. */
  readonly redis: Redis;
  /** `<prefix>:<queue>`, where BullMQ keeps the job hashes and locks. */
  readonly queueKeyPrefix: string;
  /** The whole queue waits this long (BullMQ's queue-wide rate limit): how a 429 on a create is honoured by every worker. */
  readonly rateLimit: (ms: number) => Promise<void>;
  readonly logger: Logger;
  readonly settings?: Partial<PipelineSettings>;
  readonly now?: () => number;
  /** Downloads provider outputs. */
  readonly fetch?: typeof fetch;
  /** Confirms the `creating` mark is durable before a create is sent (`src/queue/durability.ts`). */
  readonly confirmDurable?: () => Promise<unknown>;
  /** Counts prediction latencies and images stored (docs/metrics.md). */
  readonly telemetry?: Telemetry;
}

export type RenderProcessor = (job: RenderQueueJob, token?: string, signal?: AbortSignal) => Promise<RenderOutcome>;

export function createRenderProcessor(deps: RenderPipelineDeps): RenderProcessor {
  const stepDeps: StepDeps = {
    provider: deps.provider,
    store: new S3OutputStore({
      s3: deps.s3,
      redis: deps.redis,
      digestCacheKey: `${deps.queueKeyPrefix}:control-sha256`,
      ...defaultStoreTimeouts,
      ...(deps.fetch ? { fetch: deps.fetch } : {}),
    }),
    ledger: deps.ledger,
    settings: { ...defaultPipelineSettings, ...deps.settings },
    now: deps.now ?? Date.now,
    claims: new RedisPredictionClaims(deps.redis, deps.queueKeyPrefix),
    random: Math.random,
    log: deps.logger,
    ...(deps.confirmDurable ? { confirmDurable: deps.confirmDurable } : {}),
    ...(deps.telemetry ? { telemetry: deps.telemetry } : {}),
  };

  return async function processRenderJob(job, token, signal) {
    if (job.id === undefined || token === undefined) throw new UnrecoverableError('render jobs need an id and a lock');
    const jobId = job.id;
    // Every ledger write of this processing is fenced by the job's lock, as its checkpoint writes are.
    const ledger = deps.ledger.fencedFor({ lockKey: `${deps.queueKeyPrefix}:${jobId}:lock`, token });
    const result = await runRenderJob({ ...stepDeps, ledger } satisfies StepDeps, {
      id: jobId,
      data: job.data,
      attemptsMade: job.attemptsMade,
      maxAttempts: job.opts.attempts ?? 1,
      signal,
      async writeData(data) {
        const outcome = await writeCheckpointFenced(deps.redis, {
          queueKeyPrefix: deps.queueKeyPrefix,
          jobId,
          token,
          data,
        });
        if (outcome === 'written') job.data = data as typeof job.data;
        return outcome;
      },
    });
    switch (result.kind) {
      case 'succeeded':
        return result.outcome;
      case 'parked':
        await job.moveToDelayed(result.untilMs, token);
        throw new DelayedError();
      case 'ended':
        throw new UnrecoverableError(result.message);
      case 'throttled':
        await deps.rateLimit(result.retryAfterMs);
        throw new RateLimitError();
      case 'retry':
        throw result.error;
      case 'closing':
        await job.moveToWait(token);
        throw new WaitingError();
    }
  };
}
