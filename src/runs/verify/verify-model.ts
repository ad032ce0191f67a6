/**
 * What `depthq verify` reports: a list of problems, each with a stable `kind` a script (the chaos suite) can match on,
 * and the figures it checked, so a report that says "ok" also says how much it looked at and what it could not check.
 * The checks and their limits: docs/verify.md.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import type { ImageModelProvider } from '../../providers/provider.js';

/** Every kind of problem verify can find. Stable: scripts match on these strings. */
export const VERIFY_PROBLEM_KINDS = [
  /** A row says queued/running/parked, but BullMQ holds no live job for it (gone, completed, or failed unsettled). */
  'job-not-accounted',
  /** A result row, settlement or reservation in the ledger does not parse. */
  'ledger-unreadable',
  /** A succeeded row has no output key. */
  'output-key-missing',
  /** A succeeded row's output object is not in S3. */
  'output-missing',
  /** The output object's sha256 or size differs from what its sidecar records. */
  'output-bytes-differ',
  /** A succeeded row's sidecar `<key>.json` is not in S3. */
  'sidecar-missing',
  /** The sidecar is not JSON, or lacks the fields verify compares. */
  'sidecar-unreadable',
  /** The sidecar's seed, input, prediction id, job or cost differs from the row's (or the job's payload). */
  'sidecar-mismatch',
  /** S3 answered neither the object nor "missing" (an outage, a permission): this output could not be checked. */
  'output-unchecked',
  /** A status counter differs from the number of rows in that status. */
  'counter-mismatch',
  /** The ledger's `spent` differs from the recount (succeeded rows' costs + other jobs' settled spending). */
  'spent-mismatch',
  /** The ledger's `reserved` differs from the sum of open reservations. */
  'reserved-mismatch',
  /** The ledger's `possiblyBilled` is below the sum of the settlements' possibly billed amounts. */
  'possibly-billed-mismatch',
  /** A succeeded row's settlement is missing or spent another amount than the row's cost. */
  'settlement-mismatch',
  /** A prediction of this run's inputs reached a billed state at the provider, and no row (nor live job) knows it. */
  'orphan-prediction',
  /** One prediction id is listed by two or more jobs' rows. */
  'prediction-counted-twice',
  /** The provider billed one job's input more than once. */
  'job-billed-twice',
  /** A succeeded row's prediction is not `succeeded` at the provider. */
  'prediction-status-differs',
  /** The provider's predictions could not be listed (an outage, a refused token): that check did not happen. */
  'provider-unchecked',
] as const;

export type VerifyProblemKind = (typeof VERIFY_PROBLEM_KINDS)[number];

export interface VerifyProblem {
  readonly kind: VerifyProblemKind;
  /** The job (ledger row) it concerns, when it concerns one. */
  readonly jobId?: string;
  /** The prediction it concerns, when it concerns one. */
  readonly predictionId?: string;
  /** What is wrong, in words, with the values compared. */
  readonly message: string;
}

/**
 * Whether the provider's side was checked. `ran`: every prediction created since the run began was listed. `partial`:
 * the run began before the provider's retention, so only predictions since `now − retention` could be matched (older
 * ones lost their inputs). `truncated`: the listing stopped at `maxPredictions`. `skipped`: not checked (`reason`).
 */
export type ProviderCheckState = 'ran' | 'partial' | 'truncated' | 'skipped';

export interface ProviderCheckFigures {
  readonly state: ProviderCheckState;
  /** Why it was skipped, partial or truncated, in words. */
  readonly reason?: string;
  /** The listed window (ISO 8601), when it ran. */
  readonly since?: string;
  readonly until?: string;
  /** Predictions the provider listed in the window (account-wide). */
  readonly listed: number;
  /** Of those, predictions of this run's inputs or known to its rows. */
  readonly matched: number;
  /** Of those matched, predictions in a billed state (succeeded, or canceled after it started). */
  readonly billed: number;
  /** Predictions of this run's inputs no row knows that are not billed (failed, aborted, or still running). */
  readonly unknownUnbilled: number;
  /** Listed predictions whose input the provider no longer shows (past retention): they cannot be matched. */
  readonly withoutInput: number;
  /** Predictions of the same input as one of this run's jobs that a job of another run claimed: not this run's. */
  readonly ownedByOtherRuns: number;
}

export interface VerifyFigures {
  /** Result rows by status, as recounted from the rows (not the counters). */
  readonly rowsByStatus: Readonly<Record<string, number>>;
  readonly rows: number;
  /** The ledger's own counters, as stored. */
  readonly counters: Readonly<Record<string, number>>;
  /** Non-terminal rows checked against BullMQ. */
  readonly jobsCheckedInQueue: number;
  /** Output objects hashed in S3 (a job with several images counts each). */
  readonly outputsChecked: number;
  readonly sidecarsChecked: number;
  readonly outputBytesHashed: number;
  readonly spentMicros: number;
  readonly spentRecountedMicros: number;
  readonly reservedMicros: number;
  readonly reservedRecountedMicros: number;
  readonly possiblyBilledMicros: number;
  /** Sum of the settlements' possibly billed amounts: a lower bound (a retry that starts a job anew forgets one). */
  readonly possiblyBilledSettledMicros: number;
  /**
   * `atomic`: rows, counters and money read in one Redis transaction. `stable`: rows scanned, counters and money equal
   * before and after. `changing`: the run kept changing while it was read, so counters and money were not compared.
   */
  readonly ledgerRead: 'atomic' | 'stable' | 'changing';
  readonly provider: ProviderCheckFigures;
}

export interface VerifyReport {
  readonly run: string;
  readonly ok: boolean;
  /** When the audit started (ISO 8601). */
  readonly checkedAt: string;
  readonly problems: readonly VerifyProblem[];
  readonly figures: VerifyFigures;
}

export interface VerifyOptions {
  /** The S3 client to read outputs with; by default one from the context's config (destroyed after). */
  readonly s3?: S3Client;
  /**
   * The provider whose predictions are listed; by default `providerForConfig(config)`. `null` skips the provider check
   * (said so in the figures); so does a config without a token.
   */
  readonly provider?: ImageModelProvider | null;
  /** S3 reads (and BullMQ lookups) in flight at once. @defaultValue 8 */
  readonly concurrency?: number;
  /** Stop listing the provider's predictions after this many (the check is then `truncated`). @defaultValue 50_000 */
  readonly maxPredictions?: number;
  /** Up to this many rows are read in one Redis transaction with the counters and money. @defaultValue 50_000 */
  readonly atomicRowLimit?: number;
  /** The provider's clock may differ from this machine's by this much. @defaultValue 60_000 */
  readonly clockSkewMs?: number;
  readonly now?: () => number;
  readonly signal?: AbortSignal;
}

/** Row statuses that will not change by themselves. */
export const TERMINAL_ROW_STATUSES: ReadonlySet<string> = new Set(['succeeded', 'failed', 'flagged', 'canceled']);
