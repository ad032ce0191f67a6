/**
 * Releasing jobs parked over budget. A job that could not reserve its price parks itself as a delayed BullMQ job (reason
 * `budget` in its ledger row) and would look again only after its park delay; after a budget raise, this promotes the
 * run's parked jobs at once so they try to reserve now. A promoted job that still does not fit simply parks again: the
 * pipeline's reserve step is the only judge of money, this is only a wake-up call.
 *
 * Which jobs: the run ledger's rows, not `queue.getDelayed()`. The delayed set is queue-wide — every run's parked jobs
 * and every job waiting out a retry backoff — and `getDelayed` loads each job's whole payload to find out which is
 * which; the ledger is per run and says exactly which jobs are parked and why, so a 100k-job run is one streamed HSCAN
 * of its rows plus one job read per parked job.
 *
 * How many: only as many as the money left can pay for (each job's own reservation: price × images), unless the budget
 * is unlimited. Waking 100k parked jobs after a raise worth ten images would push 100k job starts through the queue's
 * rate limiter (600/min), stalling every run on the queue for hours just to re-park 99,990 of them. The jobs left
 * parked still look again after their own park delay, and the next release reads the money afresh.
 *
 * Jobs of a paused run park the same way with reason `paused`; `depthq resume` releases them with the same function.
 */
import { ErrorCode, type Job, type Queue } from 'bullmq';
import pLimit from 'p-limit';
import { type Micros, remainingOf } from '../core/money.js';
import { renderJobSchema, reservationOfJob } from '../core/render-job.js';
import type { RunLedger } from '../ledger/run-ledger.js';
import type { RenderJobData } from './render-queue.js';

/** Job reads and promotes in flight at once: enough to hide Redis round trips, few enough not to crowd out workers. */
const PROMOTE_CONCURRENCY = 32;

/**
 * The reservation the job's reserve step will ask for, or 0 when the payload does not parse — such a job is promoted
 * anyway and ends fatally in its validate step, which is where an invalid payload belongs.
 */
function reservationOf(data: unknown): Micros {
  const parsed = renderJobSchema.safeParse(data);
  return parsed.success ? reservationOfJob(parsed.data) : 0;
}

/** The job is no longer delayed (a worker already took it) or no longer exists (removed): nothing to wake. */
function isGoneFromDelayed(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code: unknown = Reflect.get(error, 'code');
  return code === ErrorCode.JobNotInState || code === ErrorCode.JobNotExist;
}

/**
 * Why a job parks: the run's money ran out, the run was paused (`depthq pause`), or the provider refused the account
 * (the run paused itself: see `pauseForAccount` in pipeline/run-job.ts).
 */
export type ParkReason = 'budget' | 'paused' | 'account';

/**
 * Promotes the run's jobs that are parked with `reason` (delayed jobs, moved to waiting now). For `budget`: as many as
 * the run's remaining budget can pay for; all of them when the budget is unlimited. For `paused` (a resumed run): all of
 * them — they never asked for money, so the budget cannot say which would fit; one that does not fit parks again with
 * reason `budget`. Returns how many were promoted.
 */
export async function releaseParkedJobs(
  queue: Queue<RenderJobData>,
  ledger: RunLedger,
  run: string,
  reason: ParkReason = 'budget',
): Promise<number> {
  const remaining = reason === 'budget' ? remainingOf(await ledger.money(run)) : null;
  if (remaining === 0) return 0;

  const parkedIds: string[] = [];
  for await (const { jobId, row } of ledger.results(run)) {
    if (row.status === 'parked' && row.reason === reason) parkedIds.push(jobId);
  }

  // Headroom is claimed before a job is promoted, so concurrent promotions never promise the same money twice.
  let headroom = remaining;
  const limit = pLimit(PROMOTE_CONCURRENCY);
  const outcomes = await Promise.all(
    parkedIds.map((jobId) =>
      limit(async (): Promise<boolean> => {
        if (headroom !== null && headroom <= 0) return false;
        const job: Job<RenderJobData> | undefined = await queue.getJob(jobId);
        if (job === undefined) return false;
        const reservation = reservationOf(job.data);
        if (headroom !== null) {
          if (reservation > headroom) return false;
          headroom -= reservation;
        }
        try {
          await job.promote();
          return true;
        } catch (error) {
          if (headroom !== null) headroom += reservation;
          if (isGoneFromDelayed(error)) return false;
          throw error;
        }
      }),
    ),
  );
  return outcomes.filter(Boolean).length;
}
