/**
 * The provider's predictions against the ledger: which listed predictions belong to the run (their input's fingerprint
 * is one of the run's jobs', or a row lists their id), and of those, which were paid for without any row knowing them
 * (an orphan), which one job paid for twice, and whether each succeeded row's prediction did succeed. Pure: the listing
 * and the fingerprints are made by `provider-listing.ts`. See docs/verify.md.
 */
import { inputFingerprint } from '../../core/fingerprint.js';
import type { ResultRow } from '../../ledger/run-ledger.js';
import type { Prediction } from '../../providers/provider.js';
import type { VerifyProblem } from './verify-model.js';

export interface RunInputs {
  /** Fingerprint of the exact input a job sends (`inputFingerprint`) → the jobs that send it. */
  readonly jobsByFingerprint: ReadonlyMap<string, readonly string[]>;
  /** Prediction id → the jobs whose row, or live checkpoint, lists it. */
  readonly owners: ReadonlyMap<string, ReadonlySet<string>>;
  /** Fingerprints of creates under way (a live job's `creating` mark with no prediction id yet). */
  readonly inFlight: ReadonlySet<string>;
  readonly rows: ReadonlyMap<string, ResultRow>;
  /** Jobs BullMQ still holds live (waiting, active, delayed): their rows may not list a prediction just created. */
  readonly liveJobs: ReadonlySet<string>;
  /** Prediction id → the job that claimed it (`src/queue/prediction-claims.ts`), for listed ids no row lists. */
  readonly claims: ReadonlyMap<string, string>;
}

/** A billed prediction of the run's input that no row knew when it was compared: confirmed by a second read. */
export interface OrphanCandidate {
  readonly predictionId: string;
  /** The jobs that send its input, and the job that claimed it (if one of this run's did). */
  readonly jobs: readonly string[];
  readonly problem: VerifyProblem;
}

export interface ProviderComparison {
  /** Every problem but the orphans, which are in `orphans`. */
  readonly problems: readonly VerifyProblem[];
  readonly orphans: readonly OrphanCandidate[];
  readonly matched: number;
  readonly billed: number;
  readonly unknownUnbilled: number;
  readonly withoutInput: number;
  readonly ownedByOtherRuns: number;
}

/** What the provider charges for, as the money rule and the simulator's billing count it. */
export function isBilled(prediction: Pick<Prediction, 'status' | 'startedAt'>): boolean {
  return prediction.status === 'succeeded' || (prediction.status === 'canceled' && prediction.startedAt !== null);
}

function listJobs(jobs: Iterable<string>): string {
  return [...jobs].sort().join(', ');
}

/**
 * The listed predictions with this run's input that no row lists: the ones whose claim (which job owns them) must be
 * read before they are compared, so an account-wide listing costs one claim lookup per candidate only.
 */
export function unlistedOfRun(
  jobsByFingerprint: ReadonlyMap<string, readonly string[]>,
  owners: ReadonlyMap<string, ReadonlySet<string>>,
  predictions: Iterable<Prediction>,
): string[] {
  const ids: string[] = [];
  for (const prediction of predictions) {
    if (owners.has(prediction.id) || prediction.input === undefined || prediction.dataRemoved) continue;
    if (jobsByFingerprint.has(inputFingerprint(prediction.input))) ids.push(prediction.id);
  }
  return ids;
}

export function compareProviderPredictions(inputs: RunInputs, predictions: Iterable<Prediction>): ProviderComparison {
  const problems: VerifyProblem[] = [];
  let matched = 0;
  let billed = 0;
  let unknownUnbilled = 0;
  let withoutInput = 0;
  let ownedByOtherRuns = 0;
  const seen = new Set<string>();
  const billedByJob = new Map<string, string[]>();
  const orphans: OrphanCandidate[] = [];
  for (const prediction of predictions) {
    // A listing that pages while predictions are created may show one twice.
    if (seen.has(prediction.id)) continue;
    seen.add(prediction.id);
    const claimedBy = inputs.claims.get(prediction.id);
    // A job that just created (or adopted) it claims it before its checkpoint and row list it.
    const owners =
      inputs.owners.get(prediction.id) ??
      (claimedBy !== undefined && inputs.liveJobs.has(claimedBy) ? new Set([claimedBy]) : undefined);
    const hasInput = prediction.input !== undefined && !prediction.dataRemoved;
    const fingerprint = hasInput ? inputFingerprint(prediction.input) : undefined;
    const sameInput = fingerprint === undefined ? undefined : inputs.jobsByFingerprint.get(fingerprint);
    if (owners === undefined && sameInput === undefined) {
      if (!hasInput) withoutInput += 1;
      continue;
    }
    // The same input sent by another run's job (a manifest with seeds ingested twice) is that run's prediction.
    if (owners === undefined && claimedBy !== undefined && !inputs.rows.has(claimedBy)) {
      ownedByOtherRuns += 1;
      continue;
    }
    matched += 1;
    const paid = isBilled(prediction);
    if (paid) billed += 1;
    const attributed = owners ?? new Set(sameInput);
    if (paid && attributed.size === 1) {
      for (const jobId of attributed) billedByJob.set(jobId, [...(billedByJob.get(jobId) ?? []), prediction.id]);
    }
    for (const jobId of owners ?? []) {
      const row = inputs.rows.get(jobId);
      if (row?.status === 'succeeded' && row.predictionId === prediction.id && prediction.status !== 'succeeded') {
        problems.push({
          kind: 'prediction-status-differs',
          jobId,
          predictionId: prediction.id,
          message: `its row says succeeded with prediction ${prediction.id}, which the provider shows ${prediction.status}`,
        });
      }
    }
    if (owners !== undefined) continue;
    if (!paid) {
      // A failed or aborted prediction costs nothing; one still running may be a create under way.
      if (fingerprint === undefined || !inputs.inFlight.has(fingerprint)) unknownUnbilled += 1;
      continue;
    }
    const jobs = sameInput ?? [];
    const candidates = [...new Set([...jobs, ...(claimedBy === undefined ? [] : [claimedBy])])];
    orphans.push({
      predictionId: prediction.id,
      jobs: candidates,
      problem: {
        kind: 'orphan-prediction',
        predictionId: prediction.id,
        ...(jobs.length === 1 && jobs[0] !== undefined ? { jobId: jobs[0] } : {}),
        message:
          `prediction ${prediction.id} (${prediction.status}, created ${prediction.createdAt}) has the input of ` +
          `${jobs.length === 1 ? 'job' : 'jobs'} ${listJobs(jobs)}, was billed, and no row lists it` +
          (claimedBy === undefined ? '' : ` (job ${claimedBy} claimed it, but its row does not list it)`),
      },
    });
  }
  for (const [jobId, ids] of billedByJob) {
    if (ids.length < 2) continue;
    problems.push({
      kind: 'job-billed-twice',
      jobId,
      message: `the provider billed ${ids.length} predictions for this job's input: ${ids.join(', ')}`,
    });
  }
  return { problems, orphans, matched, billed, unknownUnbilled, withoutInput, ownedByOtherRuns };
}
