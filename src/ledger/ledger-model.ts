/**
 * The run ledger's data: its errors, and the schemas and types of a run's meta, states, result rows, settlements and the
 * outcomes of its scripts. Pure (zod only); the Redis adapter is `run-ledger.ts`, which re-exports all of this.
 */
import { z } from 'zod';
import { DepthqError, UsageError } from '../core/errors.js';
import type { BudgetState, Micros } from '../core/money.js';

// ---------------------------------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------------------------------

/** The run has no ledger: never created, or deleted. Nothing is reserved or recorded against an unknown run. */
export class RunNotFoundError extends DepthqError {
  override readonly name: string = 'RunNotFoundError';
  readonly run: string;

  constructor(run: string, options?: ErrorOptions) {
    super(`Run ${JSON.stringify(run)} does not exist in the ledger`, options);
    this.run = run;
  }
}

/** A run was created again with settings that differ from the stored ones; the message names every difference. */
export class RunMetaConflictError extends UsageError {
  override readonly name: string = 'RunMetaConflictError';
  readonly run: string;
  readonly differences: readonly RunMetaDifference[];

  constructor(run: string, differences: readonly RunMetaDifference[]) {
    const listed = differences.map((d) => `${d.label} is ${d.requested} (the run has ${d.stored})`).join('; ');
    super(
      `Run ${JSON.stringify(run)} already exists with different settings: ${listed}. ` +
        'Use a new run id, or the same settings (the budget of an existing run changes with `depthq budget`).',
    );
    this.run = run;
    this.differences = differences;
  }
}

/** What Redis holds does not parse: written by another version or by hand. Named so a report can say which row. */
export class LedgerDataError extends DepthqError {
  override readonly name: string = 'LedgerDataError';
}

// ---------------------------------------------------------------------------------------------------------------------
// Schemas and types
// ---------------------------------------------------------------------------------------------------------------------

export const microsSchema = z.int().nonnegative().max(Number.MAX_SAFE_INTEGER);

export const runMetaSchema = z.object({
  /** ISO 8601; set by the ledger when the run is created, never compared when it is created again. */
  createdAt: z.iso.datetime(),
  /** The registered model id, `owner/name`. */
  model: z.string().min(1),
  /** The budget the run was created with (`null`: unlimited). The current budget is in `money()`. */
  budgetMicros: microsSchema.nullable(),
  manifest: z.object({
    name: z.string().min(1),
    sha256: z.string().regex(/^[0-9a-f]{64}$/, { error: 'must be 64 lowercase hex digits' }),
  }),
  output: z.object({
    bucket: z.string().min(1),
    /** `''` is the bucket's root. */
    prefix: z.string(),
    keyTemplate: z.string().min(1),
  }),
  /** Run-wide model-input defaults as given at ingest. */
  defaults: z.record(z.string(), z.json()),
});

export type RunMeta = z.output<typeof runMetaSchema>;
/** What `createRun` takes: the ledger stamps `createdAt` itself. */
export type NewRun = Omit<RunMeta, 'createdAt'>;

export interface RunMetaDifference {
  /** The meta field, e.g. `model`, `manifest.sha256`. */
  readonly field: string;
  /** The field in words, for messages. */
  readonly label: string;
  readonly stored: string;
  readonly requested: string;
}

export const RUN_STATES = ['active', 'paused', 'canceled'] as const;
export type RunState = (typeof RUN_STATES)[number];

/** Why depthq paused a run by itself (an account Replicate refuses): shown by `depthq status`, cleared by `resume`. */
export interface PauseCause {
  /** A short word, e.g. `account`. */
  readonly reason: string;
  /** What happened and what to fix. */
  readonly message: string;
  /** ISO 8601: when it was last seen. */
  readonly at: string;
}

export interface PauseOutcome {
  /** The state before: `canceled` means the run stayed canceled (final) and nothing was recorded. */
  readonly previous: RunState;
  readonly current: RunState;
  /** True when the run was not already paused for this reason: the caller reports it, the others stay quiet. */
  readonly newCause: boolean;
}

export const RESULT_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'flagged', 'parked', 'canceled'] as const;
export type ResultStatus = (typeof RESULT_STATUSES)[number];

/** One job's row: what happened to one output image. Every field but the identity is filled in as the job goes. */
export const resultRowSchema = z.object({
  status: z.enum(RESULT_STATUSES),
  rowId: z.string().min(1),
  style: z.string().nullable(),
  outputKey: z.string().min(1).optional(),
  seed: z.int().nonnegative().optional(),
  /** The prediction whose output was kept (or the last one made). */
  predictionId: z.string().min(1).optional(),
  /** Every prediction made for this job (retries, re-rolls), for reconciling against Replicate's invoice. */
  predictionIds: z.array(z.string().min(1)).optional(),
  costMicros: microsSchema.optional(),
  attempts: z.int().nonnegative().optional(),
  /** A short word reports group by: why the job is parked (`budget`, `paused`), failed or was canceled. */
  reason: z.string().min(1).optional(),
  error: z.string().optional(),
  /** A prediction may have been created and lost (saved input older than Replicate's retention, no id): check the invoice. */
  orphanSuspected: z.boolean().optional(),
  startedAt: z.iso.datetime().optional(),
  finishedAt: z.iso.datetime().optional(),
  metadata: z.record(z.string(), z.string()).optional(),
  /** The job's prompt, so a report or contact sheet says what was asked for after BullMQ removed the job. */
  prompt: z.string().optional(),
});

export type ResultRow = z.output<typeof resultRowSchema>;

/**
 * A row's prediction fields from every list that knows some of the job's prediction ids (its row, its checkpoint, a
 * cancel's answer): each id once, in the order first seen, the latest as `predictionId`.
 */
export function predictionFieldsOf(
  ...lists: ReadonlyArray<readonly string[] | undefined>
): Pick<ResultRow, 'predictionId' | 'predictionIds'> {
  const ids = [...new Set(lists.flatMap((list) => list ?? []))];
  return ids.length === 0 ? {} : { predictionId: ids.at(-1), predictionIds: ids };
}
/** A row as `registerJobs` takes it: the status is always `queued`. */
export type QueuedRow = Omit<ResultRow, 'status'>;

export type RunCounters = Record<ResultStatus | 'total', number>;

export interface LedgerResult {
  readonly jobId: string;
  readonly row: ResultRow;
}

export const settlementSchema = z.object({
  spent: microsSchema,
  possiblyBilled: microsSchema,
  /** The reservation this settlement dropped; 0 when the job held none (e.g. it adopted a prediction after a crash). */
  releasedReservation: microsSchema,
  settledAt: z.iso.datetime(),
});

export type Settlement = z.output<typeof settlementSchema>;

export type ReserveOutcome =
  | {
      readonly ok: true;
      /** The amount held for the job: the existing reservation's when it held one already. */
      readonly amount: Micros;
      /** True when the job held this reservation before the call (a resumed job). */
      readonly alreadyHeld: boolean;
      readonly state: BudgetState;
    }
  | { readonly ok: false; readonly reason: 'budget'; readonly state: BudgetState }
  | {
      /** The job was settled before: its money is counted, it has nothing left to reserve. */
      readonly ok: false;
      readonly reason: 'settled';
      readonly settlement: Settlement;
      readonly state: BudgetState;
    };

export interface SettleOutcome {
  /** This call's settlement, or the first one when the job was settled before. */
  readonly settlement: Settlement;
  readonly alreadySettled: boolean;
  readonly state: BudgetState;
}

export interface ReleaseOutcome {
  /** What was released; `null` when the job held no reservation. */
  readonly released: Micros | null;
  readonly state: BudgetState;
}

export interface RunLedgerOptions {
  /** Stamps `createdAt` and `settledAt`. @defaultValue `() => new Date()` */
  readonly now?: () => Date;
}

export interface ResultsOptions {
  /** HSCAN's COUNT hint: rows fetched per round trip. @defaultValue 1000 */
  readonly batchSize?: number;
}

/**
 * A render job's hold on its ledger writes: the job's BullMQ lock key (`<prefix>:<queue>:<jobId>:lock`) and the token
 * the worker was given with the job. A fenced write happens only while the lock holds the token.
 */
export interface LedgerFence {
  readonly lockKey: string;
  readonly token: string;
}
