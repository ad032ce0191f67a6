/**
 * Rows that have not ended, against BullMQ: a row that says queued, running or parked must have a live BullMQ job
 * (waiting, active, delayed, prioritized) that a worker will take, or nobody will ever finish or settle it. The live
 * jobs' checkpoints also say which predictions they made (or are creating) that their row does not list yet, so the
 * provider check does not take a create under way for an orphan.
 */
import type { Queue } from 'bullmq';
import pLimit from 'p-limit';
import { checkpointSchema } from '../../core/checkpoint.js';
import type { ResultRow } from '../../ledger/run-ledger.js';
import type { RenderJobData } from '../../queue/render-queue.js';
import { TERMINAL_ROW_STATUSES, type VerifyProblem } from './verify-model.js';

const LIVE_STATES: ReadonlySet<string> = new Set(['waiting', 'active', 'delayed', 'prioritized', 'waiting-children']);

export interface QueueAccounting {
  readonly problems: readonly VerifyProblem[];
  readonly checked: number;
  /** Live jobs' prediction ids from their checkpoints (job id → ids). */
  readonly checkpointPredictions: ReadonlyMap<string, readonly string[]>;
  /** Fingerprints of creates under way in live jobs. */
  readonly inFlight: ReadonlySet<string>;
  /** Unfinished rows' jobs that BullMQ holds live. */
  readonly live: ReadonlySet<string>;
  /** The payloads of the jobs looked up (job id → data), for jobs whose payload the ledger did not keep. */
  readonly jobData: ReadonlyMap<string, RenderJobData>;
}

function whyNotAccounted(row: ResultRow, state: string | undefined): string {
  if (state === undefined && row.status === 'queued') {
    return (
      'its row says queued, and BullMQ has no such job (an ingest that stopped between recording the rows and ' +
      'enqueueing them?): `depthq ingest` of the same manifest enqueues it'
    );
  }
  if (state === undefined) return `its row says ${row.status}, and BullMQ has no such job: no worker will end it`;
  if (state === 'failed') {
    return (
      `its row says ${row.status}, and BullMQ failed the job without settling it (stalled out?): the next worker to ` +
      'start settles it; `depthq retry` requeues it'
    );
  }
  return `its row says ${row.status}, but its BullMQ job is ${state}`;
}

export interface AccountingInput {
  readonly queue: Queue<RenderJobData>;
  /** The rows as the ledger snapshot read them. */
  readonly rows: ReadonlyMap<string, ResultRow>;
  /** The job's row as it is now: a job seen ended in BullMQ may have ended after the snapshot. */
  readonly currentRow: (jobId: string) => Promise<ResultRow | undefined>;
  /** Job ids whose BullMQ job to read besides the unfinished ones (rows the ledger kept no payload for). */
  readonly lookUp: ReadonlySet<string>;
  readonly concurrency: number;
}

async function stateOf(queue: Queue<RenderJobData>, jobId: string) {
  const job = await queue.getJob(jobId);
  return { job, state: job === undefined ? undefined : await job.getState() };
}

export async function accountForJobs(input: AccountingInput): Promise<QueueAccounting> {
  const { queue, rows, lookUp, concurrency } = input;
  const limit = pLimit(concurrency);
  const problems: VerifyProblem[] = [];
  const checkpointPredictions = new Map<string, readonly string[]>();
  const inFlight = new Set<string>();
  const live = new Set<string>();
  const jobData = new Map<string, RenderJobData>();
  let checked = 0;
  const unfinished = [...rows].filter(([, row]) => !TERMINAL_ROW_STATUSES.has(row.status)).map(([jobId]) => jobId);
  const ids = new Set([...unfinished, ...lookUp]);
  await Promise.all(
    [...ids].map((jobId) =>
      limit(async () => {
        let { job, state } = await stateOf(queue, jobId);
        if (job !== undefined) jobData.set(jobId, job.data);
        const row = rows.get(jobId);
        if (row === undefined || TERMINAL_ROW_STATUSES.has(row.status)) return;
        checked += 1;
        if (state === undefined || !LIVE_STATES.has(state)) {
          // Read in two steps, a running run moves in between: a job that ended since the snapshot has a new row, and
          // one being enqueued (its row is written first) has its BullMQ job a moment later.
          const now = await input.currentRow(jobId);
          if (now !== undefined && now.status !== row.status) return;
          ({ job, state } = await stateOf(queue, jobId));
          if (state === undefined || !LIVE_STATES.has(state)) {
            problems.push({ kind: 'job-not-accounted', jobId, message: whyNotAccounted(row, state) });
            return;
          }
        }
        live.add(jobId);
        const checkpoint = checkpointSchema.safeParse(job?.data.checkpoint ?? {});
        if (!checkpoint.success) return;
        checkpointPredictions.set(jobId, checkpoint.data.predictionIds);
        const creating = checkpoint.data.creating;
        if (creating !== undefined && checkpoint.data.predictionId === undefined) inFlight.add(creating.fingerprint);
      }),
    ),
  );
  return { problems, checked, checkpointPredictions, inFlight, live, jobData };
}
