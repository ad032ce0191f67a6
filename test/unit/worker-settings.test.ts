/**
 * The render worker's settings from config (src/worker/settings.ts): an unset variable keeps the built-in default, a set
 * one replaces it, and `--concurrency` wins over DEPTHQ_WORKER_CONCURRENCY.
 */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { defaultPipelineSettings } from '../../src/pipeline/render.js';
import { defaultRetryPolicy } from '../../src/providers/transport.js';
import { defaultRenderQueueSettings } from '../../src/queue/render-queue.js';
import { pipelineSettingsOf, pollPolicyOf, providerTimeoutMsOf, queueSettingsOf } from '../../src/worker/settings.js';

describe('render worker settings', () => {
  it('keeps every default when nothing is set', () => {
    const config = loadConfig({});
    expect(queueSettingsOf(config)).toEqual(defaultRenderQueueSettings);
    expect(pollPolicyOf(config)).toEqual({});
    expect(providerTimeoutMsOf(config)).toBe(defaultRetryPolicy.requestTimeoutMs);
    const pipeline = pipelineSettingsOf(config, defaultRenderQueueSettings);
    expect(pipeline).not.toHaveProperty('createWaitSeconds');
    expect(pipeline).not.toHaveProperty('postCreateRetryMs');
    expect(pipeline).toMatchObject({
      retryBaseMs: defaultRenderQueueSettings.backoffBaseMs,
      retryCapMs: Math.max(defaultPipelineSettings.retryCapMs, defaultRenderQueueSettings.backoffBaseMs),
      providerRetentionMs: config.replicate.retentionMs,
      retentionMarginMs: config.replicate.retentionMarginMs,
      longestCreateSendMs: defaultRetryPolicy.requestTimeoutMs + defaultPipelineSettings.createWaitSeconds * 1000,
    });
  });

  it('takes each variable that is set', () => {
    const config = loadConfig({
      DEPTHQ_WORKER_CONCURRENCY: '5',
      DEPTHQ_GLOBAL_CONCURRENCY: '50',
      DEPTHQ_CREATES_PER_MINUTE: '120',
      DEPTHQ_JOB_ATTEMPTS: '3',
      DEPTHQ_LOCK_DURATION_MS: '9000',
      DEPTHQ_STALLED_INTERVAL_MS: '4000',
      DEPTHQ_BACKOFF_BASE_MS: '700000',
      DEPTHQ_POLL_INITIAL_MS: '250',
      DEPTHQ_POLL_MAX_MS: '5000',
      DEPTHQ_PROVIDER_TIMEOUT_MS: '20000',
      DEPTHQ_CREATE_WAIT_SECONDS: '10',
      DEPTHQ_POST_CREATE_RETRY_MS: '60000',
    });
    const queue = queueSettingsOf(config);
    expect(queue).toEqual({
      ...defaultRenderQueueSettings,
      workerConcurrency: 5,
      globalConcurrency: 50,
      createsPerMinute: 120,
      attempts: 3,
      lockDurationMs: 9000,
      stalledIntervalMs: 4000,
      backoffBaseMs: 700_000,
    });
    expect(queueSettingsOf(config, 2).workerConcurrency).toBe(2);
    expect(pollPolicyOf(config)).toEqual({ initialMs: 250, maxMs: 5000 });
    expect(providerTimeoutMsOf(config)).toBe(20_000);
    expect(pipelineSettingsOf(config, queue)).toEqual({
      createWaitSeconds: 10,
      postCreateRetryMs: 60_000,
      retryBaseMs: 700_000,
      retryCapMs: 700_000,
      providerRetentionMs: config.replicate.retentionMs,
      retentionMarginMs: config.replicate.retentionMarginMs,
      longestCreateSendMs: 30_000,
    });
  });
});
