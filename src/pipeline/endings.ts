/**
 * How a render job ends without a stored image: its money settled by the one money rule (`core/money-rule.ts`) and its
 * row written. A prediction that succeeded is `spent`, one that may run or may have run is `possiblyBilled`, and only a
 * job that never sent a create (or whose prediction ended unbilled) has its reservation released.
 */
import { type PredictionSighting, settlementOfEnd, standingOf } from '../core/money-rule.js';
import type { JobResult, RenderJobState, StepDeps } from './render-context.js';
import { rowOf } from './render-context.js';

export type UnsuccessfulStatus = 'failed' | 'flagged';

/** Settles or releases the job's reservation by where its prediction stands. */
async function settleEnd(deps: StepDeps, job: RenderJobState, sighting: PredictionSighting | undefined): Promise<void> {
  const standing = standingOf(job.checkpointReadable ? job.checkpoint : undefined, sighting);
  const settlement = settlementOfEnd(standing, {
    priceMicrosPerImage: job.payload.priceMicrosPerImage,
    reservationMicros: job.reservation,
  });
  if (settlement.kind === 'release') {
    await deps.ledger.release(job.payload.run, job.jobId);
  } else {
    await deps.ledger.settle(job.payload.run, job.jobId, {
      spent: settlement.spent,
      possiblyBilled: settlement.possiblyBilled,
    });
  }
}

/** Ends the job of a canceled run. `sighting`: the cancel's answer for its prediction, when it had one. */
export async function finishCanceled(
  deps: StepDeps,
  job: RenderJobState,
  sighting: PredictionSighting | undefined,
): Promise<JobResult> {
  await settleEnd(deps, job, sighting);
  await deps.ledger.recordResult(
    job.payload.run,
    job.jobId,
    rowOf(job, 'canceled', { reason: 'run-canceled', finishedAt: new Date(deps.now()).toISOString() }),
  );
  job.log.info({ sighting }, 'run canceled: job ended');
  return { kind: 'ended', message: `run ${job.payload.run} was canceled` };
}

/** Ends the job for good: its money settled or released by the money rule, its row written. */
export async function finishUnsuccessfully(
  deps: StepDeps,
  job: RenderJobState,
  end: { readonly status: UnsuccessfulStatus; readonly reason: string; readonly message: string },
): Promise<void> {
  await settleEnd(deps, job, job.sighting);
  await deps.ledger.recordResult(
    job.payload.run,
    job.jobId,
    rowOf(job, end.status, { reason: end.reason, error: end.message, finishedAt: new Date(deps.now()).toISOString() }),
  );
  job.log.warn({ status: end.status, reason: end.reason, err: end.message }, 'job ended unsuccessfully');
}
