/**
 * What a chaos run measured, read from the three witnesses that do not depend on each other — the simulator's billing
 * (`/_sim/stats`, what the invoice would say), the run ledger in Redis, and the objects in S3 — and printed as one table.
 */
import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { sidecarKeyOf } from '../../src/core/keys.js';
import { type BudgetState, costOf, formatUsd, type Micros } from '../../src/core/money.js';
import type { RunCounters } from '../../src/ledger/run-ledger.js';
import type { VerifyReport } from '../../src/runs/verify-run.js';
import type { SimulatorStats } from '../../src/sim/index.js';
import type { ChaosEvents } from './chaos-driver.js';

export interface ChaosFigures {
  readonly seed: number;
  readonly jobs: number;
  readonly workers: number;
  readonly events: ChaosEvents;
  readonly counters: RunCounters;
  /** Jobs BullMQ holds as completed. */
  readonly completedInQueue: number;
  readonly stats: SimulatorStats;
  /** Job output keys found in S3, each counted once. */
  readonly distinctOutputs: number;
  /** Objects under the run's output prefix that are neither a job's output nor its sidecar. */
  readonly strayObjects: readonly string[];
  /** Outputs stored without their sidecar. */
  readonly outputsWithoutSidecar: number;
  readonly money: BudgetState;
  readonly priceMicros: Micros;
  readonly durationMs: number;
  /** `depthq verify`'s report on the run, taken after the workers were stopped. */
  readonly verify: VerifyReport;
}

export function billedCostOf(figures: ChaosFigures): Micros {
  return costOf(figures.priceMicros, figures.stats.billedImages);
}

/** Every object key under `prefix` in `bucket`, page by page. */
export async function listKeys(s3: S3Client, bucket: string, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(
      new ListObjectsV2Command({
        Bucket: bucket,
        Prefix: prefix,
        ...(token === undefined ? {} : { ContinuationToken: token }),
      }),
    );
    for (const object of page.Contents ?? []) if (object.Key !== undefined) keys.push(object.Key);
    token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
  } while (token !== undefined);
  return keys;
}

export interface StoredOutputs {
  readonly distinctOutputs: number;
  readonly strayObjects: readonly string[];
  readonly outputsWithoutSidecar: number;
}

/** Sorts the listed keys into the jobs' outputs, their sidecars, and anything else. */
export function classifyStoredKeys(listed: readonly string[], outputKeys: readonly string[]): StoredOutputs {
  const present = new Set(listed);
  const expected = new Set(outputKeys);
  const sidecars = new Set(outputKeys.map(sidecarKeyOf));
  const stored = [...expected].filter((key) => present.has(key));
  return {
    distinctOutputs: stored.length,
    strayObjects: listed.filter((key) => !expected.has(key) && !sidecars.has(key)),
    outputsWithoutSidecar: stored.filter((key) => !present.has(sidecarKeyOf(key))).length,
  };
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** The figures as an aligned two-column table, for the test's stdout and RELIABILITY.md. */
export function formatChaosTable(figures: ChaosFigures): string {
  const { events, counters, stats, money } = figures;
  const startFailures = events.unplannedExits.filter((exit) => exit.exit.code === 2).length;
  const rows: Array<readonly [string, string]> = [
    ['seed (CHAOS_SEED)', String(figures.seed)],
    ['jobs', String(figures.jobs)],
    ['worker processes', String(figures.workers)],
    ['worker SIGKILLs', String(events.workerKills)],
    ['workers exited on their own', `${events.unplannedExits.length} (${startFailures} refused to start: exit 2)`],
    ['redis-server SIGKILL + restart', String(events.redisCrashes)],
    ['s3rver restarts', String(events.s3Restarts)],
    ['429 bursts / 429 answers', `${events.throttleBursts} / ${stats.throttled}`],
    ['failed predictions (injected)', String(stats.predictions.failed)],
    ['5xx answers (injected)', String(stats.serverErrors)],
    ['connection resets (injected)', String(stats.resets)],
    ['create requests / predictions', `${stats.createRequests} / ${stats.creates}`],
    ['succeeded jobs (ledger)', String(counters.succeeded)],
    ['failed / flagged / other jobs', `${counters.failed} / ${counters.flagged} / ${otherJobs(counters)}`],
    ['completed jobs (BullMQ)', String(figures.completedInQueue)],
    ['billed images (simulator)', String(stats.billedImages)],
    ['distinct outputs (S3)', String(figures.distinctOutputs)],
    ['inputs billed twice', String(stats.inputsBilledMoreThanOnce)],
    ['ledger spent', formatUsd(money.spent)],
    ['billed images × price', formatUsd(billedCostOf(figures))],
    ['ledger reserved / possibly billed', `${formatUsd(money.reserved)} / ${formatUsd(money.possiblyBilled)}`],
    ['depthq verify', verifySummary(figures.verify)],
    ['duration', seconds(figures.durationMs)],
  ];
  const width = Math.max(...rows.map(([name]) => name.length));
  const rule = '-'.repeat(width + 2 + Math.max(...rows.map(([, value]) => value.length)));
  return [rule, ...rows.map(([name, value]) => `${name.padEnd(width)}  ${value}`), rule].join('\n');
}

function verifySummary(report: VerifyReport): string {
  const { figures } = report;
  const provider = figures.provider;
  const checked =
    `${figures.outputsChecked} outputs hashed, ${figures.sidecarsChecked} sidecars; provider ` +
    (provider.state === 'skipped'
      ? `not checked (${provider.reason ?? 'skipped'})`
      : `${provider.state}: ${provider.matched} predictions matched, ${provider.billed} billed`);
  return `${report.ok ? 'ok' : `${report.problems.length} problems`} (${checked})`;
}

function otherJobs(counters: RunCounters): number {
  return counters.queued + counters.running + counters.parked + counters.canceled;
}

/**
 * What must hold after the run, each broken rule as one line: every job succeeded once, what the provider billed is
 * what was stored and what the ledger spent, to the micro-dollar, and no input was paid twice.
 */
export interface ChaosProblemsMinimum {
  readonly workerKills: number;
}

export function chaosProblems(figures: ChaosFigures, minimum: ChaosProblemsMinimum): string[] {
  const { events, counters, stats, money } = figures;
  const problems: string[] = [];
  const check = (holds: boolean, problem: string) => {
    if (!holds) problems.push(problem);
  };
  check(
    events.workerKills >= minimum.workerKills,
    `only ${events.workerKills} worker kills (< ${minimum.workerKills})`,
  );
  check(counters.succeeded === figures.jobs, `${counters.succeeded} of ${figures.jobs} jobs succeeded`);
  check(figures.completedInQueue === counters.succeeded, `BullMQ completed ${figures.completedInQueue} jobs`);
  check(
    stats.billedImages === counters.succeeded,
    `billed images ${stats.billedImages} ≠ succeeded ${counters.succeeded}`,
  );
  check(
    figures.distinctOutputs === counters.succeeded,
    `distinct outputs ${figures.distinctOutputs} ≠ succeeded ${counters.succeeded}`,
  );
  check(figures.strayObjects.length === 0, `stray objects in S3: ${figures.strayObjects.slice(0, 5).join(', ')}`);
  check(figures.outputsWithoutSidecar === 0, `${figures.outputsWithoutSidecar} outputs without a sidecar`);
  check(
    stats.inputsBilledMoreThanOnce === 0,
    `inputs billed twice: ${JSON.stringify(stats.duplicateBilledInputs.slice(0, 5))}`,
  );
  check(
    money.spent === billedCostOf(figures),
    `ledger spent ${money.spent} µ$ ≠ billed ${stats.billedImages} × ${figures.priceMicros} µ$`,
  );
  check(money.reserved === 0, `ledger still reserves ${money.reserved} µ$`);
  check(money.possiblyBilled === 0, `ledger counts ${money.possiblyBilled} µ$ possibly billed`);
  check(figures.verify.ok, `depthq verify found ${figures.verify.problems.length} problems`);
  for (const problem of figures.verify.problems.slice(0, 20)) {
    const subject = problem.jobId ?? problem.predictionId;
    problems.push(`  verify ${problem.kind}${subject === undefined ? '' : ` ${subject}`}: ${problem.message}`);
  }
  check(figures.verify.figures.provider.state === 'ran', `verify did not list the provider's predictions in full`);
  const crashes = events.unplannedExits.filter((exit) => exit.exit.code !== 2);
  check(
    crashes.length === 0,
    `workers crashed: ${crashes.map((c) => `${c.name} ${c.exit.code ?? c.exit.signal}: ${c.lastError}`).join('; ')}`,
  );
  return problems;
}
