/**
 * `depthq runs`: every run in the ledger under the configured prefix, one line each — created, model, state, jobs,
 * done, failed, spent and budget — newest first.
 */
import { type BudgetState, formatUsd, microsToDecimal } from '../core/money.js';
import type { RunLedger, RunState } from '../ledger/run-ledger.js';

export interface RunSummary {
  readonly run: string;
  readonly createdAt: string;
  readonly model: string;
  readonly state: RunState;
  readonly jobs: number;
  readonly succeeded: number;
  /** Failed and flagged: ended without an image. */
  readonly failed: number;
  readonly canceled: number;
  readonly money: BudgetState;
}

export async function listRunSummaries(ledger: RunLedger): Promise<RunSummary[]> {
  const summaries: RunSummary[] = [];
  for (const run of await ledger.listRuns()) {
    const meta = await ledger.getRun(run);
    // The index can name a run whose keys were deleted by hand: it is not a run any more.
    if (meta === undefined) continue;
    const [counters, money, state] = await Promise.all([ledger.counters(run), ledger.money(run), ledger.runState(run)]);
    summaries.push({
      run,
      createdAt: meta.createdAt,
      model: meta.model,
      state,
      jobs: counters.total,
      succeeded: counters.succeeded,
      failed: counters.failed + counters.flagged,
      canceled: counters.canceled,
      money,
    });
  }
  return summaries.sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0));
}

const HEADERS = ['run', 'created (UTC)', 'model', 'state', 'jobs', 'done', 'failed', 'spent/budget'] as const;
const RIGHT_ALIGNED: ReadonlySet<number> = new Set([4, 5, 6]);

function cellsOf(summary: RunSummary): string[] {
  const budget = summary.money.budget === null ? 'unlimited' : formatUsd(summary.money.budget);
  return [
    summary.run,
    summary.createdAt.slice(0, 19).replace('T', ' '),
    summary.model,
    summary.state,
    String(summary.jobs),
    String(summary.succeeded),
    String(summary.failed),
    `${formatUsd(summary.money.spent)}/${budget}`,
  ];
}

export function formatRunTable(summaries: readonly RunSummary[]): string {
  const table = [[...HEADERS], ...summaries.map(cellsOf)];
  const widths = HEADERS.map((_, column) => Math.max(...table.map((cells) => (cells[column] ?? '').length)));
  return table
    .map((cells) =>
      cells
        .map((cell, column) =>
          RIGHT_ALIGNED.has(column) ? cell.padStart(widths[column] ?? 0) : cell.padEnd(widths[column] ?? 0),
        )
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export function runSummaryJson(summary: RunSummary): Record<string, unknown> {
  return {
    run: summary.run,
    createdAt: summary.createdAt,
    model: summary.model,
    state: summary.state,
    jobs: summary.jobs,
    succeeded: summary.succeeded,
    failed: summary.failed,
    canceled: summary.canceled,
    spentMicros: summary.money.spent,
    budgetMicros: summary.money.budget,
    spentUsd: microsToDecimal(summary.money.spent),
    budgetUsd: summary.money.budget === null ? null : microsToDecimal(summary.money.budget),
  };
}
