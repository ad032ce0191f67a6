/**
 * Composition of the simulator: options → rate limiter, fault injector, prediction engine, webhook dispatcher, output
 * store → one node:http server. `close()` ends every timer, socket, fetch and pending webhook so the process can exit.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FaultInjector } from './faults.js';
import { type Faults, type SimulatorOptionsInput, simulatorOptionsSchema } from './options.js';
import { OutputFileStore } from './output-files.js';
import { PredictionEngine } from './predictions.js';
import { defaultBurst, RateLimiter } from './rate-limit.js';
import { createRequestHandler } from './server.js';
import { BillingLedger, emptyRequestCounters, type SimulatorStats } from './stats.js';
import { TimerSet } from './timer-set.js';
import { generateWebhookSecret, WebhookDispatcher } from './webhooks.js';

export interface RunningSimulator {
  /** Where the server listens, e.g. http://127.0.0.1:41234 (no trailing slash). */
  readonly url: string;
  /** `url + '/v1'`: what the replicate client takes as `baseUrl` (REPLICATE_BASE_URL). */
  readonly baseUrl: string;
  readonly port: number;
  /** The `whsec_…` secret webhooks are signed with (also at GET /v1/webhooks/default/secret). */
  readonly webhookSecret: string;
  stats(): SimulatorStats;
  faults(): Faults;
  setFaults(changes: Partial<Faults>): void;
  /** Forces the next `count` API requests (creates or not) to 429 with `Retry-After: retryAfterSeconds`. */
  throttleNext(count: number, retryAfterSeconds: number): void;
  close(): Promise<void>;
}

function hostForUrl(host: string): string {
  if (host === '0.0.0.0' || host === '::') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

export async function startSimulator(input: SimulatorOptionsInput = {}): Promise<RunningSimulator> {
  const options = simulatorOptionsSchema.parse(input);
  const timers = new TimerSet();
  const files = new OutputFileStore();
  const faults = new FaultInjector(options.faults);
  const billing = new BillingLedger();
  const counters = emptyRequestCounters();
  const webhookSecret = options.webhookSecret ?? generateWebhookSecret();
  const webhooks = new WebhookDispatcher({
    secret: webhookSecret,
    attempts: options.webhookRetry.attempts,
    initialDelayMs: options.webhookRetry.initialDelayMs,
    timeoutMs: options.webhookRetry.timeoutMs,
    timers,
  });
  const limiter = new RateLimiter({
    createsPerMinute: options.createsPerMinute,
    requestsPerMinute: options.requestsPerMinute,
    createsBurst: options.burst.creates ?? defaultBurst(options.createsPerMinute),
    requestsBurst: options.burst.requests ?? defaultBurst(options.requestsPerMinute),
  });
  // Known once listening (port 0 picks one); read lazily by everything that builds URLs.
  let publicUrl = options.publicUrl?.replace(/\/+$/, '') ?? '';
  const engine = new PredictionEngine({
    startDelayMs: options.startDelayMs,
    latencyMs: options.latencyMs,
    retentionMs: options.retentionMs,
    maxControlImageBytes: options.maxControlImageBytes,
    controlImageTimeoutMs: options.controlImageTimeoutMs,
    outputMaxSide: options.outputMaxSide,
    outputMinBytes: options.outputMinBytes,
    publicUrl: () => publicUrl,
    timers,
    files,
    webhooks,
    faults,
    billing,
  });
  const stats = (): SimulatorStats => {
    const duplicates = billing.duplicates();
    return {
      ...counters,
      predictions: engine.statuses(),
      flagged: engine.flagged(),
      billedPredictions: billing.predictions,
      billedImages: billing.images,
      canceledWhileRunning: engine.canceledWhileRunning(),
      billedInputs: billing.distinctInputs(),
      inputsBilledMoreThanOnce: duplicates.length,
      duplicateBilledInputs: duplicates,
      webhooks: webhooks.stats(),
      outputBytesHeld: files.totalBytes(),
    };
  };
  const server = createServer(
    { keepAlive: true },
    createRequestHandler({
      ...(options.apiToken === undefined ? {} : { apiToken: options.apiToken }),
      engine,
      files,
      limiter,
      faults,
      counters,
      webhookSecret,
      runCounts: new Map(),
      // Data URIs carry the image in the body (base64: 4/3 of the bytes) plus the rest of the input.
      maxBodyBytes: Math.ceil((options.maxControlImageBytes * 4) / 3) + 1024 * 1024,
      publicUrl: () => publicUrl,
      stats,
    }),
  );
  const port = await listen(server, options.port, options.host);
  const url = `http://${hostForUrl(options.host)}:${port}`;
  if (publicUrl === '') publicUrl = url;

  let closing: Promise<void> | undefined;
  return {
    url,
    baseUrl: `${url}/v1`,
    port,
    webhookSecret,
    stats,
    faults: () => faults.current(),
    setFaults: (changes) => faults.update(changes),
    throttleNext: (count, retryAfterSeconds) => limiter.throttleNext(count, retryAfterSeconds),
    close: () => {
      closing ??= new Promise<void>((resolve, reject) => {
        // Releases `Prefer: wait` holders first, so a held create still gets its prediction (id and current state).
        engine.close();
        webhooks.close();
        timers.clearAll();
        server.close((error) => (error ? reject(error) : resolve()));
        setImmediate(() => server.closeAllConnections());
      });
      return closing;
    },
  };
}
