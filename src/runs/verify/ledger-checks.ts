/**
 * The ledger's own consistency, recounted from its rows: counters against the rows' statuses, `spent` against what the
 * rows and settlements say was paid, `reserved` against the open reservations, and each prediction id owned by one job.
 * Pure: the raw ledger (`ledger-snapshot.ts`) in, problems and figures out. See docs/verify.md.
 */
import { formatUsd, type Micros } from '../../core/money.js';
import { parseMicros, parseRow, parseSettlement } from '../../ledger/ledger-codec.js';
import { RESULT_STATUSES, type ResultRow, type Settlement } from '../../ledger/run-ledger.js';
import type { RawLedger } from './ledger-snapshot.js';
import type { VerifyProblem } from './verify-model.js';

export interface ParsedLedger {
  readonly rows: ReadonlyMap<string, ResultRow>;
  readonly reservations: ReadonlyMap<string, Micros>;
  readonly settlements: ReadonlyMap<string, Settlement>;
  readonly money: { readonly reserved: Micros; readonly spent: Micros; readonly possiblyBilled: Micros };
  readonly counters: Readonly<Record<string, number>>;
  readonly problems: readonly VerifyProblem[];
}

function messageOf(error: unknown): string {
  const cause = error instanceof Error && error.cause instanceof Error ? `: ${error.cause.message}` : '';
  return `${error instanceof Error ? error.message : String(error)}${cause}`;
}

/** Parses every value; one that does not parse is a `ledger-unreadable` problem and is left out of the sums. */
export function parseLedger(raw: RawLedger): ParsedLedger {
  const problems: VerifyProblem[] = [];
  const unreadable = (jobId: string | undefined, error: unknown) =>
    problems.push({ kind: 'ledger-unreadable', ...(jobId === undefined ? {} : { jobId }), message: messageOf(error) });
  const rows = new Map<string, ResultRow>();
  for (const [jobId, json] of raw.rows) {
    try {
      rows.set(jobId, parseRow(json, jobId));
    } catch (error) {
      unreadable(jobId, error);
    }
  }
  const reservations = new Map<string, Micros>();
  for (const [jobId, text] of Object.entries(raw.reservations)) {
    try {
      reservations.set(jobId, parseMicros(text, `the reservation of ${jobId}`));
    } catch (error) {
      unreadable(jobId, error);
    }
  }
  const settlements = new Map<string, Settlement>();
  for (const [jobId, json] of Object.entries(raw.settlements)) {
    try {
      settlements.set(jobId, parseSettlement(json, jobId));
    } catch (error) {
      unreadable(jobId, error);
    }
  }
  const moneyOf = (text: string | null, what: string): Micros => {
    try {
      return parseMicros(text, what);
    } catch (error) {
      unreadable(undefined, error);
      return 0;
    }
  };
  const counters: Record<string, number> = {};
  for (const [name, text] of Object.entries(raw.counters)) counters[name] = Number(text);
  return {
    rows,
    reservations,
    settlements,
    money: {
      reserved: moneyOf(raw.money.reserved, 'reserved'),
      spent: moneyOf(raw.money.spent, 'spent'),
      possiblyBilled: moneyOf(raw.money.possiblyBilled, 'possiblyBilled'),
    },
    counters,
    problems,
  };
}

export interface LedgerRecount {
  readonly rowsByStatus: Readonly<Record<string, number>>;
  readonly spentRecountedMicros: Micros;
  readonly reservedRecountedMicros: Micros;
  readonly possiblyBilledSettledMicros: Micros;
}

export function recountLedger(ledger: ParsedLedger): LedgerRecount {
  const rowsByStatus: Record<string, number> = Object.fromEntries(RESULT_STATUSES.map((status) => [status, 0]));
  let spent = 0;
  for (const row of ledger.rows.values()) {
    rowsByStatus[row.status] = (rowsByStatus[row.status] ?? 0) + 1;
    if (row.status === 'succeeded') spent += row.costMicros ?? 0;
  }
  let possiblyBilled = 0;
  for (const [jobId, settlement] of ledger.settlements) {
    possiblyBilled += settlement.possiblyBilled;
    // A succeeded row's cost is its settlement's spending (compared below); any other job's spending is only there
    // (a succeeded prediction whose output expired, a job canceled after its prediction succeeded).
    if (ledger.rows.get(jobId)?.status !== 'succeeded') spent += settlement.spent;
  }
  let reserved = 0;
  for (const amount of ledger.reservations.values()) reserved += amount;
  return {
    rowsByStatus,
    spentRecountedMicros: spent,
    reservedRecountedMicros: reserved,
    possiblyBilledSettledMicros: possiblyBilled,
  };
}

/** Counters against the rows' statuses; `total` against the number of rows. */
export function counterProblems(ledger: ParsedLedger, recount: LedgerRecount): VerifyProblem[] {
  const problems: VerifyProblem[] = [];
  const expected: Record<string, number> = { ...recount.rowsByStatus, total: ledger.rows.size };
  for (const [name, count] of Object.entries(expected)) {
    const stored = ledger.counters[name] ?? 0;
    if (stored !== count) {
      problems.push({
        kind: 'counter-mismatch',
        message: `the ${name} counter is ${stored}, but ${count} ${name === 'total' ? 'rows exist' : `rows are ${name}`}`,
      });
    }
  }
  for (const name of Object.keys(ledger.counters)) {
    if (!(name in expected)) {
      problems.push({
        kind: 'counter-mismatch',
        message: `the ledger has a counter ${JSON.stringify(name)} no status names`,
      });
    }
  }
  return problems;
}

/** `spent`, `reserved` and `possiblyBilled` against their recounts; each succeeded row against its settlement. */
export function moneyProblems(ledger: ParsedLedger, recount: LedgerRecount): VerifyProblem[] {
  const problems: VerifyProblem[] = [];
  const { money } = ledger;
  if (money.spent !== recount.spentRecountedMicros) {
    problems.push({
      kind: 'spent-mismatch',
      message:
        `spent is ${formatUsd(money.spent)} (${money.spent} micros), but the succeeded rows' costs and the other ` +
        `jobs' settlements add up to ${formatUsd(recount.spentRecountedMicros)} (${recount.spentRecountedMicros} micros)`,
    });
  }
  if (money.reserved !== recount.reservedRecountedMicros) {
    problems.push({
      kind: 'reserved-mismatch',
      message:
        `reserved is ${formatUsd(money.reserved)} (${money.reserved} micros), but the ${ledger.reservations.size} open ` +
        `reservations add up to ${formatUsd(recount.reservedRecountedMicros)} (${recount.reservedRecountedMicros} micros)`,
    });
  }
  if (money.possiblyBilled < recount.possiblyBilledSettledMicros) {
    problems.push({
      kind: 'possibly-billed-mismatch',
      message:
        `possiblyBilled is ${formatUsd(money.possiblyBilled)}, below the ${formatUsd(recount.possiblyBilledSettledMicros)} ` +
        'the settlements hold as possibly billed',
    });
  }
  for (const [jobId, row] of ledger.rows) {
    if (row.status !== 'succeeded') continue;
    const settlement = ledger.settlements.get(jobId);
    const cost = row.costMicros ?? 0;
    if (settlement === undefined) {
      problems.push({
        kind: 'settlement-mismatch',
        jobId,
        message: `succeeded (cost ${formatUsd(cost)}) but not settled`,
      });
    } else if (settlement.spent !== cost) {
      problems.push({
        kind: 'settlement-mismatch',
        jobId,
        message: `its row costs ${formatUsd(cost)}, its settlement spent ${formatUsd(settlement.spent)}`,
      });
    }
  }
  return problems;
}

/** Every prediction id of every row (and of live jobs' checkpoints), with the jobs that list it. */
export function predictionOwners(
  rows: ReadonlyMap<string, ResultRow>,
  extra: ReadonlyMap<string, readonly string[]> = new Map(),
): Map<string, Set<string>> {
  const owners = new Map<string, Set<string>>();
  const add = (predictionId: string, jobId: string) => {
    const jobs = owners.get(predictionId) ?? new Set<string>();
    jobs.add(jobId);
    owners.set(predictionId, jobs);
  };
  for (const [jobId, row] of rows) {
    for (const id of row.predictionIds ?? []) add(id, jobId);
    if (row.predictionId !== undefined) add(row.predictionId, jobId);
  }
  for (const [jobId, ids] of extra) for (const id of ids) add(id, jobId);
  return owners;
}

/** A prediction two jobs list would be counted (and stored) twice. */
export function countedTwiceProblems(owners: ReadonlyMap<string, ReadonlySet<string>>): VerifyProblem[] {
  const problems: VerifyProblem[] = [];
  for (const [predictionId, jobs] of owners) {
    if (jobs.size < 2) continue;
    const listed = [...jobs].sort();
    problems.push({
      kind: 'prediction-counted-twice',
      predictionId,
      jobId: listed[0] ?? '',
      message: `prediction ${predictionId} is listed by ${listed.length} jobs: ${listed.join(', ')}`,
    });
  }
  return problems;
}
