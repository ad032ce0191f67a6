/**
 * The one place depthq reads its environment. Composition roots (the CLI, workers, scripts) call `loadConfig()` once at
 * start and pass the result down; nothing else touches `process.env`. A bad value stops start-up with one message that
 * names every offending variable and what it expects — never a stack trace.
 */
import { z } from 'zod';
import { ConfigError } from '../core/errors.js';
import { redactUrl } from '../core/redact.js';
import { bucketNameProblem } from '../core/render-job.js';
import { defaultRetentionMarginMs, REPLICATE_RETENTION_MS } from '../core/render-state.js';

/** `VAR=` in a .env file or a compose file means "not set", not "set to the empty string". */
const optionalText = z.preprocess((value) => (value === '' ? undefined : value), z.string().trim().min(1).optional());

const httpUrl = (what: string) =>
  z
    .string()
    .trim()
    .refine((value) => URL.canParse(value) && /^https?:$/.test(new URL(value).protocol), {
      message: `expected an http(s) URL for ${what}, e.g. http://127.0.0.1:9000`,
    });

const optionalUrl = (what: string) =>
  z.preprocess((value) => (value === '' ? undefined : value), httpUrl(what).optional());

const redisUrl = z
  .string()
  .trim()
  .refine((value) => URL.canParse(value) && /^rediss?:$/.test(new URL(value).protocol), {
    message: 'expected redis://[user:password@]host:port[/db] or rediss://… for TLS',
  });

/** The same rule the render jobs check, so a bucket accepted at start is never refused by a job later. */
const bucketName = z
  .string()
  .trim()
  .superRefine((name, ctx) => {
    const problem = bucketNameProblem(name);
    if (problem !== undefined)
      ctx.addIssue({ code: 'custom', message: `expected an S3 bucket name, which ${problem}` });
  });

const flag = z.preprocess((value) => (value === '' ? undefined : value), z.stringbool().optional());

const positiveInt = (what: string, max: number) =>
  z.preprocess(
    (value) => (value === '' ? undefined : value),
    z.coerce
      .number({ error: `expected a whole number for ${what}` })
      .int({ error: `expected a whole number for ${what}` })
      .min(1, { error: `expected ${what} of at least 1` })
      .max(max, { error: `expected ${what} of at most ${max}` })
      .optional(),
  );

export const environmentSchema = z.object({
  REDIS_URL: z.preprocess((value) => (value === '' ? undefined : value), redisUrl.default('redis://127.0.0.1:6379')),
  REPLICATE_API_TOKEN: optionalText,
  REPLICATE_BASE_URL: z.preprocess(
    (value) => (value === '' ? undefined : value),
    httpUrl('the Replicate API (or a depthq simulator)').default('https://api.replicate.com/v1'),
  ),
  S3_BUCKET: z.preprocess((value) => (value === '' ? undefined : value), bucketName.optional()),
  S3_ENDPOINT: optionalUrl('an S3-compatible endpoint'),
  S3_FORCE_PATH_STYLE: flag,
  AWS_REGION: z.preprocess((value) => (value === '' ? undefined : value), z.string().trim().default('us-east-1')),
  DEPTHQ_PREFIX: z.preprocess(
    (value) => (value === '' ? undefined : value),
    z
      .string()
      .regex(/^[a-z][a-z0-9_-]{0,31}$/, {
        message: "expected 1–32 lowercase letters, digits, '_' or '-', starting with a letter",
      })
      .default('depthq'),
  ),
  DEPTHQ_WORKER_CONCURRENCY: positiveInt('jobs in flight per worker process', 1000),
  DEPTHQ_GLOBAL_CONCURRENCY: positiveInt('jobs in flight across all workers', 100_000),
  DEPTHQ_CREATES_PER_MINUTE: positiveInt('prediction creates per minute', 100_000),
  DEPTHQ_JOB_ATTEMPTS: positiveInt('attempts per job', 100),
  DEPTHQ_LOCK_DURATION_MS: positiveInt('a job lock duration in ms', 3_600_000),
  DEPTHQ_STALLED_INTERVAL_MS: positiveInt('a stalled-job check interval in ms', 3_600_000),
  DEPTHQ_BACKOFF_BASE_MS: positiveInt('a retry backoff in ms', 3_600_000),
  DEPTHQ_POLL_INITIAL_MS: positiveInt('a poll interval in ms', 600_000),
  DEPTHQ_POLL_MAX_MS: positiveInt('a poll interval in ms', 600_000),
  DEPTHQ_PROVIDER_TIMEOUT_MS: positiveInt('a provider request timeout in ms', 600_000),
  DEPTHQ_CREATE_WAIT_SECONDS: positiveInt('seconds a create may hold (Prefer: wait)', 60),
  DEPTHQ_SHUTDOWN_TIMEOUT_MS: positiveInt('a shutdown deadline in ms', 3_600_000),
  DEPTHQ_POST_CREATE_RETRY_MS: positiveInt('a post-create retry window in ms', 86_400_000),
  DEPTHQ_PROVIDER_RETENTION_MS: positiveInt("the provider's output retention in ms", 30 * 86_400_000),
  DEPTHQ_RETENTION_MARGIN_MS: positiveInt('a retention margin in ms', 86_400_000),
  DEPTHQ_TELEMETRY_INTERVAL_MS: positiveInt('a telemetry flush interval in ms', 600_000),
  DEPTHQ_METRICS_RUNS: positiveInt('runs shown on /metrics', 10_000),
  DASHBOARD_USER: optionalText,
  DASHBOARD_PASSWORD: optionalText,
  LOG_LEVEL: z.preprocess(
    (value) => (value === '' ? undefined : value),
    z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  ),
});

export interface Config {
  readonly redisUrl: string;
  readonly replicate: {
    /** Absent until a command that calls the API asks for it with `requireReplicateToken`. Never logged. */
    readonly apiToken: string | undefined;
    readonly baseUrl: string;
    /**
     * The provider deletes a prediction's inputs and outputs this long after its creation (Replicate: one hour):
     * reconciliation, post-create retries and `depthq retry`'s resume are possible only inside it.
     */
    readonly retentionMs: number;
    /** Post-create work stops this long before the retention ends, to leave time to download and store the output. */
    readonly retentionMarginMs: number;
  };
  readonly s3: {
    readonly bucket: string | undefined;
    readonly endpoint: string | undefined;
    /** Path-style URLs (http://host/bucket/key): what MinIO and s3rver need; defaults to true when an endpoint is set. */
    readonly forcePathStyle: boolean;
    readonly region: string;
  };
  /** Namespace of every Redis key depthq writes: BullMQ's prefix and the run ledger's. */
  readonly prefix: string;
  readonly logLevel: z.infer<typeof environmentSchema>['LOG_LEVEL'];
  /**
   * `depthq dashboard`'s basic-auth credentials. Both or neither: the dashboard refuses to listen on anything but
   * loopback without them (docs in README: Dashboard). Never logged, never shown on a page.
   */
  readonly dashboard: {
    readonly user: string | undefined;
    readonly password: string | undefined;
  };
  /**
   * Worker tuning; each absent value means "the built-in default" (src/queue/render-queue.ts,
   * src/pipeline/render-context.ts, src/providers/replicate.ts), so the defaults live beside the code they tune.
   */
  readonly worker: {
    readonly concurrency?: number;
    readonly globalConcurrency?: number;
    readonly createsPerMinute?: number;
    readonly attempts?: number;
    readonly lockDurationMs?: number;
    readonly stalledIntervalMs?: number;
    readonly backoffBaseMs?: number;
    readonly pollInitialMs?: number;
    readonly pollMaxMs?: number;
    /** One provider request's timeout (a create's `Prefer: wait` hold comes on top). */
    readonly providerTimeoutMs?: number;
    readonly createWaitSeconds?: number;
    readonly shutdownTimeoutMs?: number;
    /** How long one attempt retries failures after its prediction exists (default: until the retention margin). */
    readonly postCreateRetryMs?: number;
    /** How often a worker adds its telemetry to Redis (src/queue/telemetry-publisher.ts). */
    readonly telemetryIntervalMs?: number;
  };
  /** The dashboard's /metrics (src/dashboard/metrics-routes.ts, docs/metrics.md). */
  readonly metrics: {
    /** Per-run series are exported for the newest this many runs (by creation), so a scrape stays bounded. */
    readonly runLimit: number;
  };
}

/** Drops absent values, so `{ ...defaults, ...overrides }` keeps the defaults (exactOptionalPropertyTypes-friendly). */
export function definedOnly<T extends Record<string, unknown>>(
  record: T,
): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(record).filter(([, value]) => value !== undefined)) as {
    [K in keyof T]?: Exclude<T[K], undefined>;
  };
}

/** Runs /metrics exports per-run series for when DEPTHQ_METRICS_RUNS is not set: the newest 50. */
export const DEFAULT_METRICS_RUN_LIMIT = 50;

export type Environment = Readonly<Record<string, string | undefined>>;

/**
 * Parses the environment into a `Config`. Throws `ConfigError` listing every bad variable at once, so a user fixes their
 * `.env` in one pass instead of one error per start.
 */
export function loadConfig(env: Environment = process.env): Config {
  const parsed = environmentSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => {
      const variable = String(issue.path[0] ?? 'environment');
      const given = env[variable];
      const secret = variable === 'REPLICATE_API_TOKEN' || variable === 'DASHBOARD_PASSWORD';
      const shown = secret || given === undefined ? '' : ` (got "${given}")`;
      return `  ${variable}${shown}: ${issue.message}`;
    });
    throw new ConfigError(
      `depthq cannot start: ${lines.length === 1 ? 'an environment variable is' : 'environment variables are'} invalid\n${lines.join('\n')}\nSee .env.example for what each one expects.`,
    );
  }
  const e = parsed.data;
  const retentionMs = e.DEPTHQ_PROVIDER_RETENTION_MS ?? REPLICATE_RETENTION_MS;
  return {
    redisUrl: e.REDIS_URL,
    replicate: {
      apiToken: e.REPLICATE_API_TOKEN,
      baseUrl: e.REPLICATE_BASE_URL.replace(/\/+$/, ''),
      retentionMs,
      retentionMarginMs: Math.min(e.DEPTHQ_RETENTION_MARGIN_MS ?? defaultRetentionMarginMs(retentionMs), retentionMs),
    },
    s3: {
      bucket: e.S3_BUCKET,
      endpoint: e.S3_ENDPOINT,
      forcePathStyle: e.S3_FORCE_PATH_STYLE ?? e.S3_ENDPOINT !== undefined,
      region: e.AWS_REGION,
    },
    prefix: e.DEPTHQ_PREFIX,
    logLevel: e.LOG_LEVEL,
    dashboard: { user: e.DASHBOARD_USER, password: e.DASHBOARD_PASSWORD },
    worker: definedOnly({
      concurrency: e.DEPTHQ_WORKER_CONCURRENCY,
      globalConcurrency: e.DEPTHQ_GLOBAL_CONCURRENCY,
      createsPerMinute: e.DEPTHQ_CREATES_PER_MINUTE,
      attempts: e.DEPTHQ_JOB_ATTEMPTS,
      lockDurationMs: e.DEPTHQ_LOCK_DURATION_MS,
      stalledIntervalMs: e.DEPTHQ_STALLED_INTERVAL_MS,
      backoffBaseMs: e.DEPTHQ_BACKOFF_BASE_MS,
      pollInitialMs: e.DEPTHQ_POLL_INITIAL_MS,
      pollMaxMs: e.DEPTHQ_POLL_MAX_MS,
      providerTimeoutMs: e.DEPTHQ_PROVIDER_TIMEOUT_MS,
      createWaitSeconds: e.DEPTHQ_CREATE_WAIT_SECONDS,
      shutdownTimeoutMs: e.DEPTHQ_SHUTDOWN_TIMEOUT_MS,
      postCreateRetryMs: e.DEPTHQ_POST_CREATE_RETRY_MS,
      telemetryIntervalMs: e.DEPTHQ_TELEMETRY_INTERVAL_MS,
    }),
    metrics: { runLimit: e.DEPTHQ_METRICS_RUNS ?? DEFAULT_METRICS_RUN_LIMIT },
  };
}

/** For commands that call Replicate: the token, or a ConfigError that says where to get one. */
export function requireReplicateToken(config: Config): string {
  if (config.replicate.apiToken === undefined) {
    throw new ConfigError(
      'REPLICATE_API_TOKEN is not set: create a token at https://replicate.com/account/api-tokens and export it, ' +
        'or point REPLICATE_BASE_URL at a local simulator (`depthq simulate`) with any token.',
    );
  }
  return config.replicate.apiToken;
}

/** For commands that read or write S3: the bucket, or a ConfigError naming the variable. */
export function requireBucket(config: Config): string {
  if (config.s3.bucket === undefined) {
    throw new ConfigError('S3_BUCKET is not set: name the bucket that holds control images and receives outputs.');
  }
  return config.s3.bucket;
}

/** The effective configuration with secrets replaced, for `depthq config` and start-up logs. */
export function describeConfig(config: Config): Record<string, string> {
  return {
    REDIS_URL: redactUrl(config.redisUrl),
    REPLICATE_API_TOKEN: config.replicate.apiToken === undefined ? '(not set)' : '(set, hidden)',
    REPLICATE_BASE_URL: config.replicate.baseUrl,
    S3_BUCKET: config.s3.bucket ?? '(not set)',
    S3_ENDPOINT: config.s3.endpoint ?? '(AWS default)',
    S3_FORCE_PATH_STYLE: String(config.s3.forcePathStyle),
    AWS_REGION: config.s3.region,
    DEPTHQ_PREFIX: config.prefix,
    LOG_LEVEL: config.logLevel,
    DEPTHQ_METRICS_RUNS: String(config.metrics.runLimit),
    DASHBOARD_USER: config.dashboard.user ?? '(not set)',
    DASHBOARD_PASSWORD: config.dashboard.password === undefined ? '(not set)' : '(set, hidden)',
    ...Object.fromEntries(Object.entries(config.worker).map(([name, value]) => [`worker.${name}`, String(value)])),
  };
}
