/**
 * A billed prediction no row knew when the ledger was read is read about once more before it is called an orphan: on a
 * run that is still going, the job that created it may have listed it since (in its checkpoint, then its row), or
 * claimed it a moment ago. Only what is still unknown after that is reported.
 */
import type { Queue } from 'bullmq';
import pLimit from 'p-limit';
import { checkpointSchema } from '../../core/checkpoint.js';
import type { RunLedger } from '../../ledger/run-ledger.js';
import type { RenderJobData } from '../../queue/render-queue.js';
import type { OrphanCandidate } from './provider-checks.js';
import type { VerifyProblem } from './verify-model.js';

export interface OrphanRecheck {
  readonly ledger: RunLedger;
  readonly queue: Queue<RenderJobData>;
  readonly run: string;
  /** The prediction's owner by claim, read now (`src/queue/prediction-claims.ts`). */
  readonly claimOf: (predictionId: string) => Promise<string | undefined>;
  readonly concurrency: number;
}

async function knownNow(recheck: OrphanRecheck, candidate: OrphanCandidate): Promise<boolean> {
  const { predictionId } = candidate;
  const claimedBy = await recheck.claimOf(predictionId);
  const jobs = new Set([...candidate.jobs, ...(claimedBy === undefined ? [] : [claimedBy])]);
  for (const jobId of jobs) {
    const row = await recheck.ledger.result(recheck.run, jobId);
    if (row === undefined) continue;
    if (row.predictionId === predictionId || row.predictionIds?.includes(predictionId)) return true;
    const job = await recheck.queue.getJob(jobId);
    const checkpoint = checkpointSchema.safeParse(job?.data.checkpoint ?? {});
    if (checkpoint.success && checkpoint.data.predictionIds.includes(predictionId)) return true;
    // Claimed by a job of this run that is running now: it lists the prediction once its create returns.
    if (jobId === claimedBy && job !== undefined && (await job.getState()) === 'active') return true;
  }
  return false;
}

/** The orphans still unknown after a second read, as problems. */
export async function confirmOrphans(
  recheck: OrphanRecheck,
  candidates: readonly OrphanCandidate[],
): Promise<VerifyProblem[]> {
  const limit = pLimit(recheck.concurrency);
  const confirmed = await Promise.all(
    candidates.map((candidate) => limit(async () => ((await knownNow(recheck, candidate)) ? [] : [candidate.problem]))),
  );
  return confirmed.flat();
}
