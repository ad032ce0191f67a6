/**
 * What an ingest reports (its outcome and cost estimate) and the two refusals it makes before enqueuing anything. Split
 * from ingest-manifest.ts, which re-exports all of it.
 */
import { UsageError } from '../core/errors.js';
import { formatManifestProblem, type ManifestProblem } from '../core/manifest/index.js';
import { formatUsd, type Micros } from '../core/money.js';

export interface IngestEstimate {
  readonly priceMicrosPerImage: Micros;
  /** Images of every valid job of the manifest (new and already enqueued). */
  readonly images: number;
  readonly totalMicros: Micros;
  /** Images and cost of the jobs this ingest adds. */
  readonly newImages: number;
  readonly newMicros: Micros;
}

export interface IngestOutcome {
  readonly run: string;
  readonly model: string;
  readonly dryRun: boolean;
  /** False for a dry run and for a run that existed. */
  readonly runCreated: boolean;
  readonly manifest: { readonly name: string; readonly sha256: string; readonly bytes: number };
  readonly rows: number;
  readonly invalidRows: number;
  /** Problems of the rows that were skipped (`skipInvalid`); empty otherwise. */
  readonly problems: readonly ManifestProblem[];
  readonly jobs: { readonly total: number; readonly new: number; readonly existing: number };
  readonly estimate: IngestEstimate;
  /** The budget the estimate was checked against (`null`: the run has none). */
  readonly budgetMicros: Micros | null;
  readonly overBudget: boolean;
  /** Jobs enqueued by this ingest (0 for a dry run). */
  readonly added: number;
  readonly normalisedCells: number;
  /** Distinct control images preflighted (`undefined`: preflight was off). */
  readonly preflighted: number | undefined;
}

/** The manifest (or styles file) has problems; nothing was enqueued. `manifestProblems` lists every one. */
export class ManifestInvalidError extends UsageError {
  override readonly name: string = 'ManifestInvalidError';
  readonly manifestProblems: readonly ManifestProblem[];
  readonly invalidRows: number;

  constructor(message: string, problems: readonly ManifestProblem[], invalidRows: number) {
    super(message);
    this.manifestProblems = problems;
    this.invalidRows = invalidRows;
  }

  /** Every problem, one per line, compiler style. */
  listing(): string {
    return this.manifestProblems.map(formatManifestProblem).join('\n');
  }
}

/** The estimate is above the run's budget and `yes` was not given; nothing was enqueued. */
export class BudgetConfirmationError extends UsageError {
  override readonly name: string = 'BudgetConfirmationError';
  readonly estimate: IngestEstimate;
  readonly budgetMicros: Micros;

  constructor(estimate: IngestEstimate, budgetMicros: Micros, jobs: number) {
    super(
      `the estimate of ${formatUsd(estimate.totalMicros)} (${estimate.images} images in ${jobs} jobs at ` +
        `${formatUsd(estimate.priceMicrosPerImage)}) is above the run's budget of ${formatUsd(budgetMicros)}; ` +
        'nothing was enqueued. Pass --yes to enqueue anyway (jobs wait, parked, once the budget is spent) ' +
        'or raise it with --budget',
    );
    this.estimate = estimate;
    this.budgetMicros = budgetMicros;
  }
}
