/**
 * Jobs BullMQ fails without running the processor. A job whose worker stopped answering (a SIGSTOPped or swapped-out
 * process, an event loop blocked past its lock) more than `maxStalledCount` times is marked by the stalled checker and
 * failed by the next worker that takes it — "job stalled more than allowable limit" — before any step runs; so is one
 * started more than `maxStartedAttempts` times. No step records anything then: the ledger row would stay `running` and
 * the job's reservation be held for ever.
 *
 * The render worker hands every `failed` event here (src/worker/start.ts). Only a job that failed for good
 * (`finishedOn` set: no retry follows) and whose row is still unfinished (`queued`, `running`, `parked`) is ended here:
 * failures the processor ended itself have their row written already (`failed`, `flagged`, `canceled`) and are left
 * alone. Its money follows the one money rule from its last checkpoint (`standingOf`/`settlementOfEnd`): a prediction
 * that succeeded is `spent`, one that may run (an id, a lost create) is `possiblyBilled`, and only a job that never sent
 * a create has its reservation released. The row becomes `failed` with reason `stalled` (or `started-limit`), keeping
 * every prediction id, so `depthq retry --failed` can resume what was paid for. Settling is idempotent per job.
 *
 * A worker that dies between BullMQ's move to failed and the settlement leaves the row unfinished: every starting worker
 * sweeps the newest failed jobs (`settleRecentlyFailedJobs`), and `depthq cancel` settles such jobs of its run.
 */
import type { Logger } from 'pino';
import { type Checkpoint, readCheckpoint } from '../core/checkpoint.js';
import { coerceError } from '../core/errors.js';
import { settlementOfEnd, standingOf } from '../core/money-rule.js';
import { parseRenderJob, type RenderJob, reservationOfJob } from '../core/render-job.js';
import { predictionFieldsOf, type ResultRow, type ResultStatus, type RunLedger } from '../ledger/run-ledger.js';

/** BullMQ's reason for a job that stalled more often than `maxStalledCount` (its `deferredFailure`). */
export const STALLED_FAILURE = 'job stalled more than allowable limit';
/** BullMQ's reason for a job started more often than `maxStartedAttempts`. */
export const STARTED_LIMIT_FAILURE = 'job started more than allowable limit';

/** The ledger calls this needs: `RunLedger` in production. */
export type StalledJobLedger = Pick<RunLedger, 'result' | 'settle' | 'release' | 'recordResult'>;

/** What a BullMQ `failed` event carries that matters here. */
export interface FailedJob {
  readonly id?: string | undefined;
  readonly data: unknown;
  /** Set when the job failed for good; undefined when BullMQ retries it. */
  readonly finishedOn?: number | undefined;
}

export type StalledJobOutcome =
  | { readonly kind: 'settled'; readonly reason: string; readonly money: 'released' | 'settled' }
  /** Not a failure without the processor, or one the processor recorded: nothing done. */
  | { readonly kind: 'skipped'; readonly why: 'retried' | 'not-a-render-job' | 'no-row' | 'recorded' };

const UNFINISHED: ReadonlySet<ResultStatus> = new Set(['queued', 'running', 'parked']);

function reasonOf(message: string): string {
  if (message.includes(STALLED_FAILURE)) return 'stalled';
  if (message.includes(STARTED_LIMIT_FAILURE)) return 'started-limit';
  return 'failed-unrecorded';
}

function checkpointOf(data: unknown): Checkpoint | undefined {
  try {
    return readCheckpoint(typeof data === 'object' && data !== null ? Reflect.get(data, 'checkpoint') : undefined);
  } catch {
    // Unreadable: anything may have been sent, which the money rule counts as unknown.
    return undefined;
  }
}

function payloadOf(data: unknown): RenderJob | undefined {
  try {
    return parseRenderJob(data);
  } catch {
    return undefined;
  }
}

/** Ends a job BullMQ failed for good while its ledger row was unfinished: money by the money rule, row `failed`. */
export async function settleJobFailedOutsideProcessor(
  deps: { readonly ledger: StalledJobLedger; readonly log: Logger; readonly now: () => number },
  job: FailedJob,
  error: Error,
): Promise<StalledJobOutcome> {
  if (job.finishedOn === undefined) return { kind: 'skipped', why: 'retried' };
  const payload = payloadOf(job.data);
  if (payload === undefined || job.id === undefined) return { kind: 'skipped', why: 'not-a-render-job' };
  const { run } = payload;
  const row = await deps.ledger.result(run, job.id);
  if (row === undefined) return { kind: 'skipped', why: 'no-row' };
  if (!UNFINISHED.has(row.status)) return { kind: 'skipped', why: 'recorded' };

  const checkpoint = checkpointOf(job.data);
  const settlement = settlementOfEnd(standingOf(checkpoint), {
    priceMicrosPerImage: payload.priceMicrosPerImage,
    reservationMicros: reservationOfJob(payload),
  });
  if (settlement.kind === 'release') await deps.ledger.release(run, job.id);
  else await deps.ledger.settle(run, job.id, { spent: settlement.spent, possiblyBilled: settlement.possiblyBilled });

  const reason = reasonOf(error.message);
  const { reason: _reason, error: _error, ...kept } = row;
  const ended: ResultRow = {
    ...kept,
    status: 'failed',
    reason,
    error: `${error.message}: BullMQ failed the job without running it (its worker stopped answering); its money is settled from its last checkpoint`,
    ...predictionFieldsOf(row.predictionIds, checkpoint?.predictionIds),
    ...(checkpoint?.orphanSuspected ? { orphanSuspected: true } : {}),
    finishedAt: new Date(deps.now()).toISOString(),
  };
  await deps.ledger.recordResult(run, job.id, ended);
  const money = settlement.kind === 'release' ? 'released' : 'settled';
  deps.log.warn(
    { run, jobId: job.id, reason, money, err: error.message },
    'job failed by BullMQ without its processor: row and money settled',
  );
  return { kind: 'settled', reason, money };
}

/** How many of the newest failed jobs a starting worker looks at (`sweepRecentlyFailed`). */
export const FAILED_SWEEP_JOBS = 1000;
/** Rows read at once by a sweep. */
const SWEEP_CONCURRENCY = 16;

/** A failed job as BullMQ's failed set lists it. */
export interface ListedFailedJob extends FailedJob {
  readonly failedReason?: string | undefined;
}

/** The queue call a sweep needs: BullMQ's `Queue.getFailed`, newest first. */
export interface FailedJobSource {
  getFailed(start: number, end: number): Promise<ReadonlyArray<ListedFailedJob | undefined>>;
}

/**
 * Settles the newest `limit` failed jobs whose rows were never ended: those a worker failed and then died before its
 * `failed` listener settled them. Returns how many it settled.
 */
export async function settleRecentlyFailedJobs(
  source: FailedJobSource,
  deps: { readonly ledger: StalledJobLedger; readonly log: Logger; readonly now: () => number },
  limit: number = FAILED_SWEEP_JOBS,
): Promise<number> {
  const failed = (await source.getFailed(0, limit - 1)).filter((job) => job !== undefined);
  let settled = 0;
  for (let start = 0; start < failed.length; start += SWEEP_CONCURRENCY) {
    const outcomes = await Promise.all(
      failed
        .slice(start, start + SWEEP_CONCURRENCY)
        .map((job) => settleJobFailedOutsideProcessor(deps, job, new Error(job.failedReason ?? 'failed'))),
    );
    settled += outcomes.filter((outcome) => outcome.kind === 'settled').length;
  }
  return settled;
}

/**
 * What the worker installs: the `failed` listener, which settles in the background and never throws into BullMQ's
 * event emitter; a sweep of the newest failed jobs when the worker starts; and `idle`, which a closing worker awaits.
 */
export function stalledJobSettler(deps: {
  readonly ledger: StalledJobLedger;
  readonly log: Logger;
  readonly now?: () => number;
}): {
  readonly onFailed: (job: FailedJob | undefined, error: Error) => void;
  sweepRecentlyFailed(source: FailedJobSource): void;
  idle(): Promise<void>;
} {
  const pending = new Set<Promise<unknown>>();
  const settleDeps = { ledger: deps.ledger, log: deps.log, now: deps.now ?? Date.now };
  const track = (work: Promise<unknown>): void => {
    pending.add(work);
    void work.finally(() => pending.delete(work));
  };
  return {
    onFailed(job, error) {
      if (job === undefined) return;
      track(
        settleJobFailedOutsideProcessor(settleDeps, job, error).catch((thrown: unknown) => {
          deps.log.error(
            { jobId: job.id, err: coerceError(thrown).message },
            'settling a job BullMQ failed without its processor failed',
          );
        }),
      );
    },
    sweepRecentlyFailed(source) {
      track(
        settleRecentlyFailedJobs(source, settleDeps).then(
          (settled) => {
            if (settled > 0) deps.log.warn({ settled }, 'settled failed jobs whose worker died before settling them');
          },
          (thrown: unknown) => {
            deps.log.error({ err: coerceError(thrown).message }, 'sweeping the failed jobs for unsettled ones failed');
          },
        ),
      );
    },
    async idle() {
      await Promise.allSettled([...pending]);
    },
  };
}
