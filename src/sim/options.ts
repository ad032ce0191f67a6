/**
 * The simulator's options: one zod schema, used by `startSimulator`, by the `simulate` CLI and by tests. Every option
 * has a default that mimics Replicate's production behaviour except the latencies, which are short so a demo is quick.
 */
import { z } from 'zod';

const rate = z.number().min(0).max(1);

/** A duration drawn uniformly from [min, max] milliseconds for each prediction. */
export const latencyRangeSchema = z
  .object({ min: z.number().int().min(0), max: z.number().int().min(0) })
  .refine((range) => range.min <= range.max, { message: 'min must not exceed max' });
export type LatencyRange = z.output<typeof latencyRangeSchema>;

export const faultsSchema = z.object({
  /** Share of accepted predictions that end `failed` with a generic (CUDA) error. @defaultValue 0 */
  failureRate: rate.default(0),
  /**
   * Share of distinct inputs that end `failed` as flagged: E005 ("flagged as sensitive"), or flux-depth-dev's "NSFW
   * content detected" message. Decided by a hash of the input, so the same input is flagged every time, as on
   * Replicate. @defaultValue 0
   */
  flaggedRate: rate.default(0),
  /** Share of API requests answered 500/502/503 before anything happens. @defaultValue 0 */
  serverErrorRate: rate.default(0),
  /**
   * Share of API requests whose connection is destroyed instead of answered. For a create this happens AFTER the
   * prediction was created: the response is lost, the prediction runs (and is billed). @defaultValue 0
   */
  connectionResetRate: rate.default(0),
  /**
   * The account as Replicate would refuse it, for every request it applies to: `unauthenticated` answers every API
   * request 401 (a revoked token), `insufficient-credit` answers creates 402 (the account ran out of credit; reads
   * still work). `none` turns it off. @defaultValue 'none'
   */
  accountError: z.enum(['none', 'unauthenticated', 'insufficient-credit']).default('none'),
  /** Seeds the fault PRNG (and the flagging salt) so a run's faults repeat. Absent: Math.random. */
  seed: z.number().int().optional(),
});
export type Faults = z.output<typeof faultsSchema>;

/** A change to some fault settings at run time (POST /_sim/faults): no defaults, so unnamed settings stay as they are. */
export const faultChangesSchema = z
  .object({
    failureRate: rate,
    flaggedRate: rate,
    serverErrorRate: rate,
    connectionResetRate: rate,
    accountError: z.enum(['none', 'unauthenticated', 'insufficient-credit']),
    seed: z.number().int(),
  })
  .partial()
  .strict();

export const simulatorOptionsSchema = z.object({
  /** @defaultValue '127.0.0.1' */
  host: z.string().min(1).default('127.0.0.1'),
  /** 0 picks a free port. @defaultValue 0 */
  port: z.number().int().min(0).max(65_535).default(0),
  /** If set, only `Authorization: Bearer <apiToken>` is accepted; otherwise any non-empty bearer token. */
  apiToken: z.string().min(1).optional(),
  /** Time a prediction spends `starting` (queued for a GPU). @defaultValue {min: 50, max: 200} */
  startDelayMs: latencyRangeSchema.default({ min: 50, max: 200 }),
  /** Time a prediction spends `processing` (at least the real render time). @defaultValue {min: 300, max: 1200} */
  latencyMs: latencyRangeSchema.default({ min: 300, max: 1200 }),
  /** Inputs, outputs, logs and files are removed this long after creation (Replicate: one hour). @defaultValue 3_600_000 */
  retentionMs: z.number().int().positive().default(3_600_000),
  /** Prediction creates per minute (Replicate: 600). @defaultValue 600 */
  createsPerMinute: z.number().positive().default(600),
  /** Other API requests per minute (Replicate: 3000). @defaultValue 3000 */
  requestsPerMinute: z.number().positive().default(3000),
  /**
   * Token-bucket capacities: how many requests may arrive at once before the per-minute rate applies. Replicate allows
   * "short bursts"; an account with little credit gets 6 creates/min with a burst of 1.
   * @defaultValue one tenth of the per-minute rate (at least 1)
   */
  burst: z
    .object({ creates: z.number().int().positive().optional(), requests: z.number().int().positive().optional() })
    .default({}),
  faults: faultsSchema.prefault({}),
  /** `whsec_<base64>`; a random one is generated when absent. */
  webhookSecret: z
    .string()
    .regex(/^whsec_[A-Za-z0-9+/]+={0,2}$/, 'must be whsec_ followed by base64')
    .optional(),
  /** Webhook delivery attempts (first try included) and the first backoff delay, doubled each retry. */
  webhookRetry: z
    .object({
      attempts: z.number().int().min(1).max(20).default(4),
      initialDelayMs: z.number().int().min(0).default(1000),
      timeoutMs: z.number().int().positive().default(10_000),
    })
    .prefault({}),
  /** The URL clients reach this server at, for `urls.*` and output file URLs. @defaultValue http://host:port */
  publicUrl: z.url().optional(),
  /** A control image larger than this fails the prediction. @defaultValue 20 MiB */
  maxControlImageBytes: z
    .number()
    .int()
    .positive()
    .default(20 * 1024 * 1024),
  /** How long fetching a control image may take. @defaultValue 15_000 */
  controlImageTimeoutMs: z.number().int().positive().default(15_000),
  /** Longer side of rendered outputs (FLUX renders ≈1 MP; smaller is faster for load tests). @defaultValue 1024 */
  outputMaxSide: z.number().int().min(16).max(2048).default(1024),
  /**
   * Every output file is served at least this long: the rendered image, then zero bytes up to this size, which image
   * decoders ignore after the image's end. The padding is written as the file is served, never held, so a load test
   * can move 8 MB outputs (a large FLUX png) through the worker without the simulator rendering or keeping them.
   * @defaultValue 0 (no padding)
   */
  outputMinBytes: z
    .number()
    .int()
    .min(0)
    .max(256 * 1024 * 1024)
    .default(0),
});

export type SimulatorOptions = z.output<typeof simulatorOptionsSchema>;
/** What callers pass: every field optional, nested objects partial. */
export type SimulatorOptionsInput = z.input<typeof simulatorOptionsSchema>;
