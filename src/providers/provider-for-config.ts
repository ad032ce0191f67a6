/**
 * The one place a provider is built from config: the worker, `depthq cancel` and the scripts ask here, so adding a
 * provider means one adapter (beside `replicate.ts`), one `ProviderName` in core's model registry and one case below.
 */
import { type Config, definedOnly, requireReplicateToken } from '../config/index.js';
import type { ProviderName } from '../core/models.js';
import type { Telemetry } from '../core/telemetry.js';
import type { ImageModelProvider } from './provider.js';
import { type PollPolicy, ReplicateProvider } from './replicate.js';
import { defaultRetryPolicy, type RetryNotice } from './transport.js';

export interface ProviderBuildOptions {
  /** Which provider; `replicate`, the only one today, by default. */
  readonly name?: ProviderName;
  /** The API token; by default config's (a `ConfigError` saying where to get one when it is not set). */
  readonly apiToken?: string;
  /** How a prediction is polled until it ends; config's `DEPTHQ_POLL_*` (else the provider's defaults) when absent. */
  readonly poll?: Partial<PollPolicy>;
  /** Called before every re-send of a failed idempotent request. */
  readonly onRetry?: (notice: RetryNotice) => void;
  /** Counts every provider response by operation and status (the worker's /metrics telemetry, docs/metrics.md). */
  readonly telemetry?: Telemetry;
}

export function providerForConfig(config: Config, options: ProviderBuildOptions = {}): ImageModelProvider {
  const name: ProviderName = options.name ?? 'replicate';
  switch (name) {
    case 'replicate': {
      const { telemetry } = options;
      return new ReplicateProvider({
        apiToken: options.apiToken ?? requireReplicateToken(config),
        baseUrl: config.replicate.baseUrl,
        retentionMs: config.replicate.retentionMs,
        poll: options.poll ?? definedOnly({ initialMs: config.worker.pollInitialMs, maxMs: config.worker.pollMaxMs }),
        transport: {
          ...(options.onRetry ? { onRetry: options.onRetry } : {}),
          ...(telemetry
            ? {
                onResponse: ({ operation, status }) =>
                  telemetry.providerResponse({ provider: name, operation, status }),
              }
            : {}),
          policy: { requestTimeoutMs: config.worker.providerTimeoutMs ?? defaultRetryPolicy.requestTimeoutMs },
        },
      });
    }
  }
}
