/**
 * The render worker's settings from config. Each value the environment gives replaces its built-in default; each one it
 * leaves out keeps the default, which lives beside the code it tunes (src/queue/render-queue.ts,
 * src/pipeline/render-context.ts, src/providers/replicate.ts).
 */
import { type Config, definedOnly } from '../config/index.js';
import { defaultPipelineSettings, type PipelineSettings } from '../pipeline/render.js';
import type { PollPolicy } from '../providers/replicate.js';
import { defaultRetryPolicy } from '../providers/transport.js';
import { defaultRenderQueueSettings, type RenderQueueSettings } from '../queue/render-queue.js';

/** The queue's settings; `concurrency` (the `--concurrency` flag) overrides DEPTHQ_WORKER_CONCURRENCY. */
export function queueSettingsOf(config: Config, concurrency?: number): RenderQueueSettings {
  const w = config.worker;
  return {
    ...defaultRenderQueueSettings,
    ...definedOnly({
      createsPerMinute: w.createsPerMinute,
      globalConcurrency: w.globalConcurrency,
      attempts: w.attempts,
      lockDurationMs: w.lockDurationMs,
      stalledIntervalMs: w.stalledIntervalMs,
      backoffBaseMs: w.backoffBaseMs,
    }),
    workerConcurrency: concurrency ?? w.concurrency ?? defaultRenderQueueSettings.workerConcurrency,
  };
}

/** One provider request's timeout (a create's `Prefer: wait` hold comes on top). */
export function providerTimeoutMsOf(config: Config): number {
  return config.worker.providerTimeoutMs ?? defaultRetryPolicy.requestTimeoutMs;
}

/** How the provider polls a prediction until it ends. */
export function pollPolicyOf(config: Config): Partial<PollPolicy> {
  return definedOnly({ initialMs: config.worker.pollInitialMs, maxMs: config.worker.pollMaxMs });
}

/** The render pipeline's settings, given the queue's (in-job retries back off from the queue's own base). */
export function pipelineSettingsOf(config: Config, queue: RenderQueueSettings): Partial<PipelineSettings> {
  const createWaitSeconds = config.worker.createWaitSeconds ?? defaultPipelineSettings.createWaitSeconds;
  return {
    ...definedOnly({
      createWaitSeconds: config.worker.createWaitSeconds,
      postCreateRetryMs: config.worker.postCreateRetryMs,
    }),
    // In-job retries back off like the queue's own retries, from the same base.
    retryBaseMs: queue.backoffBaseMs,
    retryCapMs: Math.max(defaultPipelineSettings.retryCapMs, queue.backoffBaseMs),
    providerRetentionMs: config.replicate.retentionMs,
    retentionMarginMs: config.replicate.retentionMarginMs,
    // One send of a create stays in flight at most the transport's timeout plus its `Prefer: wait` hold.
    longestCreateSendMs: providerTimeoutMsOf(config) + createWaitSeconds * 1000,
  };
}
