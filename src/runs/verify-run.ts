/**
 * `depthq verify`: a read-only audit of a run, for a person after (or during) a run and as the oracle of the chaos
 * tests. It checks that every job has ended or is in BullMQ's hands; that every succeeded job's output and sidecar are
 * in S3 and agree with each other and with the ledger; that the ledger's counters and money equal a recount of its
 * rows, settlements and reservations; and, inside the provider's retention, that every prediction the provider made
 * for the run's inputs is known to exactly one job — none paid for and forgotten. It writes nothing anywhere.
 *
 * The parts: `verify/ledger-snapshot.ts` (a consistent read), `verify/ledger-checks.ts`, `verify/queue-checks.ts`,
 * `verify/output-checks.ts` with `verify/sidecar-checks.ts`, `verify/provider-listing.ts` with
 * `verify/provider-checks.ts`. What each check means and cannot see: docs/verify.md.
 */
import { ConfigError } from '../core/errors.js';
import { formatUsd } from '../core/money.js';
import { type RenderJob, renderJobSchema } from '../core/render-job.js';
import type { ResultRow, RunMeta } from '../ledger/run-ledger.js';
import type { ImageModelProvider } from '../providers/provider.js';
import { providerForConfig } from '../providers/provider-for-config.js';
import { RedisPredictionClaims } from '../queue/prediction-claims.js';
import { queueKeyPrefixOf } from '../queue/render-queue.js';
import { s3ClientForConfig } from '../storage/s3-client.js';
import type { RunContext } from './run-context.js';
import {
  countedTwiceProblems,
  counterProblems,
  moneyProblems,
  parseLedger,
  predictionOwners,
  recountLedger,
} from './verify/ledger-checks.js';
import { readRawLedger } from './verify/ledger-snapshot.js';
import { confirmOrphans } from './verify/orphan-recheck.js';
import { checkOutputs } from './verify/output-checks.js';
import { compareProviderPredictions, type RunInputs, unlistedOfRun } from './verify/provider-checks.js';
import { claimsOf, fingerprintsOf, listWindow, readPayloads } from './verify/provider-listing.js';
import { accountForJobs } from './verify/queue-checks.js';
import {
  type ProviderCheckFigures,
  TERMINAL_ROW_STATUSES,
  type VerifyFigures,
  type VerifyOptions,
  type VerifyProblem,
  type VerifyReport,
} from './verify/verify-model.js';

export * from './verify/verify-model.js';

const DEFAULT_CONCURRENCY = 8;
const DEFAULT_MAX_PREDICTIONS = 50_000;
const DEFAULT_ATOMIC_ROW_LIMIT = 50_000;
const DEFAULT_CLOCK_SKEW_MS = 60_000;

function skipped(reason: string): ProviderCheckFigures {
  return {
    state: 'skipped',
    reason,
    listed: 0,
    matched: 0,
    billed: 0,
    unknownUnbilled: 0,
    withoutInput: 0,
    ownedByOtherRuns: 0,
  };
}

/** The provider to list, or why there is none: a missing token is a reason to skip, not to fail the audit. */
function providerOf(context: RunContext, options: VerifyOptions): ImageModelProvider | string {
  if (options.provider === null) return 'not asked for (--no-provider)';
  if (options.provider !== undefined) return options.provider;
  try {
    return providerForConfig(context.config);
  } catch (error) {
    if (error instanceof ConfigError) return `the provider cannot be asked: ${error.message}`;
    throw error;
  }
}

interface ProviderCheckInput {
  readonly context: RunContext;
  readonly run: string;
  readonly options: VerifyOptions;
  readonly meta: RunMeta;
  readonly inputs: Omit<RunInputs, 'claims'>;
  readonly nowMs: number;
}

async function checkProvider(
  input: ProviderCheckInput,
): Promise<{ figures: ProviderCheckFigures; problems: readonly VerifyProblem[] }> {
  const { options, meta, nowMs } = input;
  const provider = providerOf(input.context, options);
  if (typeof provider === 'string') return { figures: skipped(provider), problems: [] };
  if (provider.listCreatedBetween === undefined) {
    return { figures: skipped(`${provider.identity.name} cannot list its predictions`), problems: [] };
  }
  const skewMs = options.clockSkewMs ?? DEFAULT_CLOCK_SKEW_MS;
  const createdMs = Date.parse(meta.createdAt);
  const retainedSinceMs = nowMs - provider.retentionMs;
  const lastActivityMs = lastActivityOf(input.inputs.rows);
  if (lastActivityMs !== undefined && lastActivityMs + skewMs < retainedSinceMs) {
    return {
      figures: skipped(
        `the run's last job ended ${new Date(lastActivityMs).toISOString()}, more than the provider's retention ` +
          `(${provider.retentionMs / 60_000} min) ago: its predictions' inputs are removed and cannot be matched ` +
          "(the provider's invoice is the record)",
      ),
      problems: [],
    };
  }
  const since = new Date(Math.max(createdMs, retainedSinceMs) - skewMs);
  const until = new Date(nowMs + skewMs);
  const cap = options.maxPredictions ?? DEFAULT_MAX_PREDICTIONS;
  let listing: Awaited<ReturnType<typeof listWindow>>;
  try {
    listing = await listWindow(provider, since, until, cap, options.signal);
  } catch (error) {
    const message = `listing ${provider.identity.name}'s predictions failed: ${error instanceof Error ? error.message : String(error)}`;
    return { figures: skipped(message), problems: [{ kind: 'provider-unchecked', message }] };
  }
  const { context, inputs } = input;
  const unlisted = unlistedOfRun(inputs.jobsByFingerprint, inputs.owners, listing.predictions);
  const claims = await claimsOf(
    context.redis,
    context.config.prefix,
    unlisted,
    options.concurrency ?? DEFAULT_CONCURRENCY,
  );
  const comparison = compareProviderPredictions({ ...inputs, claims }, listing.predictions);
  const redisClaims = new RedisPredictionClaims(context.redis, queueKeyPrefixOf(context.config.prefix));
  const orphans = await confirmOrphans(
    {
      ledger: context.ledger,
      queue: context.queue,
      run: input.run,
      claimOf: (id) => redisClaims.ownerOf(id),
      concurrency: options.concurrency ?? DEFAULT_CONCURRENCY,
    },
    comparison.orphans,
  );
  const partial = createdMs < retainedSinceMs;
  const state = listing.truncated ? 'truncated' : partial ? 'partial' : 'ran';
  const reasons = [
    ...(listing.truncated ? [`the listing stopped at ${cap} predictions (maxPredictions)`] : []),
    ...(partial
      ? [
          `the run began ${meta.createdAt}, before the provider's retention (${provider.retentionMs / 60_000} min): ` +
            `predictions created before ${new Date(retainedSinceMs).toISOString()} could not be matched`,
        ]
      : []),
  ];
  return {
    figures: {
      state,
      ...(reasons.length > 0 ? { reason: reasons.join('; ') } : {}),
      since: since.toISOString(),
      until: until.toISOString(),
      listed: listing.predictions.length,
      matched: comparison.matched,
      billed: comparison.billed,
      unknownUnbilled: comparison.unknownUnbilled,
      withoutInput: comparison.withoutInput,
      ownedByOtherRuns: comparison.ownedByOtherRuns,
    },
    problems: [...orphans, ...comparison.problems],
  };
}

/** When the run's last job ended (ms), or `undefined` while any job has not ended (or a row has no time). */
function lastActivityOf(rows: ReadonlyMap<string, ResultRow>): number | undefined {
  let last = Number.NEGATIVE_INFINITY;
  for (const row of rows.values()) {
    if (!TERMINAL_ROW_STATUSES.has(row.status) || row.finishedAt === undefined) return undefined;
    last = Math.max(last, Date.parse(row.finishedAt));
  }
  return Number.isFinite(last) ? last : undefined;
}

/**
 * Audits `run` (read-only). Throws the context's UnknownRunError (a UsageError) when the run does not exist; anything
 * else it finds is a problem in the report, never an exception.
 */
export async function verifyRun(context: RunContext, run: string, options: VerifyOptions = {}): Promise<VerifyReport> {
  const now = options.now ?? Date.now;
  const checkedAtMs = now();
  const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
  const meta = await context.requireRun(run);
  const prefix = context.config.prefix;

  const raw = await readRawLedger(context.redis, prefix, run, options.atomicRowLimit ?? DEFAULT_ATOMIC_ROW_LIMIT);
  const ledger = parseLedger(raw);
  const recount = recountLedger(ledger);
  const problems: VerifyProblem[] = [...ledger.problems];
  // A run that kept changing while it was read cannot be compared with its counters: said in the figures instead.
  if (raw.read !== 'changing') problems.push(...counterProblems(ledger, recount), ...moneyProblems(ledger, recount));

  const payloads = await readPayloads(context.redis, prefix, run);
  const withoutPayload = new Set([...ledger.rows.keys()].filter((jobId) => !payloads.has(jobId)));
  const accounting = await accountForJobs({
    queue: context.queue,
    rows: ledger.rows,
    currentRow: (jobId) => context.ledger.result(run, jobId),
    lookUp: withoutPayload,
    concurrency,
  });
  problems.push(...accounting.problems);
  const allPayloads = new Map<string, RenderJob>(payloads);
  for (const [jobId, data] of accounting.jobData) {
    if (allPayloads.has(jobId)) continue;
    const parsed = renderJobSchema.safeParse(data);
    if (parsed.success) allPayloads.set(jobId, parsed.data);
  }
  const owners = predictionOwners(ledger.rows, accounting.checkpointPredictions);
  problems.push(...countedTwiceProblems(owners));

  const s3 = options.s3 ?? s3ClientForConfig(context.config);
  let outputs: Awaited<ReturnType<typeof checkOutputs>>;
  let provider: Awaited<ReturnType<typeof checkProvider>>;
  try {
    outputs = await checkOutputs({
      s3,
      run,
      bucket: meta.output.bucket,
      rows: ledger.rows,
      payloads: allPayloads,
      concurrency,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    provider = await checkProvider({
      context,
      run,
      options,
      meta,
      nowMs: now(),
      inputs: {
        jobsByFingerprint: await fingerprintsOf(s3, allPayloads),
        owners,
        inFlight: accounting.inFlight,
        rows: ledger.rows,
        liveJobs: accounting.live,
      },
    });
  } finally {
    if (options.s3 === undefined) s3.destroy();
  }
  problems.push(...outputs.problems, ...provider.problems);

  const figures: VerifyFigures = {
    rowsByStatus: recount.rowsByStatus,
    rows: ledger.rows.size,
    counters: ledger.counters,
    jobsCheckedInQueue: accounting.checked,
    outputsChecked: outputs.outputsChecked,
    sidecarsChecked: outputs.sidecarsChecked,
    outputBytesHashed: outputs.bytesHashed,
    spentMicros: ledger.money.spent,
    spentRecountedMicros: recount.spentRecountedMicros,
    reservedMicros: ledger.money.reserved,
    reservedRecountedMicros: recount.reservedRecountedMicros,
    possiblyBilledMicros: ledger.money.possiblyBilled,
    possiblyBilledSettledMicros: recount.possiblyBilledSettledMicros,
    ledgerRead: raw.read,
    provider: provider.figures,
  };
  return {
    run,
    ok: problems.length === 0,
    checkedAt: new Date(checkedAtMs).toISOString(),
    problems,
    figures,
  };
}

/** The report for a person: a short summary, what could not be checked, and one line per problem. */
export function formatVerifyReport(report: VerifyReport): string {
  const { figures } = report;
  const states = Object.entries(figures.rowsByStatus)
    .filter(([, count]) => count > 0)
    .map(([status, count]) => `${count} ${status}`)
    .join(', ');
  const provider = figures.provider;
  const lines = [
    `run ${report.run}: ${report.ok ? 'verified, no problems' : `${report.problems.length} problems`}`,
    `  jobs: ${figures.rows} (${states || 'none'}); ${figures.jobsCheckedInQueue} unfinished checked in the queue`,
    `  outputs: ${figures.outputsChecked} objects hashed (${figures.outputBytesHashed} bytes), ` +
      `${figures.sidecarsChecked} sidecars compared`,
    `  money: spent ${formatUsd(figures.spentMicros)} (recounted ${formatUsd(figures.spentRecountedMicros)}), ` +
      `reserved ${formatUsd(figures.reservedMicros)} (recounted ${formatUsd(figures.reservedRecountedMicros)}), ` +
      `possibly billed ${formatUsd(figures.possiblyBilledMicros)}`,
    provider.state === 'skipped'
      ? `  provider: not checked: ${provider.reason ?? 'skipped'}`
      : `  provider: ${provider.listed} predictions listed (${provider.since} … ${provider.until}), ` +
        `${provider.matched} of this run, ${provider.billed} billed` +
        (provider.reason === undefined ? '' : `; ${provider.state}: ${provider.reason}`),
  ];
  if (figures.ledgerRead === 'changing') {
    lines.push('  ledger: the run kept changing while it was read: counters and money were not compared (run again)');
  }
  for (const problem of report.problems) {
    const subject = problem.jobId ?? problem.predictionId;
    lines.push(`${problem.kind}${subject === undefined ? '' : ` ${subject}`}: ${problem.message}`);
  }
  return lines.join('\n');
}
