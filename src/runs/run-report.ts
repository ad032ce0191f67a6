/**
 * `depthq report`: one row per job — manifest row id, style, status, output key, seed, prediction ids, cost, attempts,
 * timings, error, prompt and the manifest's metadata columns — as CSV or JSON lines.
 *
 * Read from the run ledger, never from BullMQ: completed jobs are removed from BullMQ after a day (or sooner, by count),
 * and the ledger's rows are the record. Rows are sorted by row id (numbers in ids compare as numbers: row-2 before
 * row-10), then style. The sort needs every row's key before the first line is written, so the report reads the ledger
 * twice: one HSCAN for the job ids, sort keys and metadata column names, then the rows in sorted order in batches (HMGET)
 * — memory holds the ids, never 100k rows at once, and the output streams with backpressure (stream.pipeline).
 *
 * Formula injection: a spreadsheet runs a cell that starts with `=`, `+`, `-` or `@` (and, in some, a tab or carriage
 * return) as a formula — `=HYPERLINK(...)` in a prompt would become a live link. Every CSV cell starting with one of
 * those characters is written with a single quote in front (`'=HYPERLINK(...)`), which spreadsheets show as text and
 * which a person can see and strip. Numbers depthq writes (seed, cost, attempts) are never negative, so no number is
 * changed. JSON lines are data, not a spreadsheet format: their values are written as they are.
 */
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { stringify } from 'csv-stringify';
import { microsToDecimal } from '../core/money.js';
import type { ResultRow, RunLedger } from '../ledger/run-ledger.js';

export const REPORT_FORMATS = ['csv', 'jsonl'] as const;
export type ReportFormat = (typeof REPORT_FORMATS)[number];

/** The fixed columns, in order; metadata columns follow as `meta.<column>`, sorted by name. */
export const REPORT_COLUMNS = [
  'jobId',
  'rowId',
  'style',
  'status',
  'reason',
  'outputKey',
  'seed',
  'predictionId',
  'predictionIds',
  'costUsd',
  'attempts',
  'startedAt',
  'finishedAt',
  'durationSeconds',
  'orphanSuspected',
  'error',
  'prompt',
] as const;

const FORMULA_START = /^[=+\-@\t\r]/;

/** A cell a spreadsheet would run as a formula, made into text with a leading single quote; any other cell unchanged. */
export function neutraliseFormula(cell: string): string {
  return FORMULA_START.test(cell) ? `'${cell}` : cell;
}

const collator = new Intl.Collator('en', { numeric: true, sensitivity: 'variant' });

interface SortKey {
  readonly jobId: string;
  readonly rowId: string;
  readonly style: string | null;
}

function compareKeys(a: SortKey, b: SortKey): number {
  return (
    collator.compare(a.rowId, b.rowId) ||
    // No style first, then styles by name.
    (a.style === null ? (b.style === null ? 0 : -1) : b.style === null ? 1 : collator.compare(a.style, b.style)) ||
    (a.jobId < b.jobId ? -1 : a.jobId > b.jobId ? 1 : 0)
  );
}

function durationSecondsOf(row: ResultRow): string {
  if (row.startedAt === undefined || row.finishedAt === undefined) return '';
  const ms = Date.parse(row.finishedAt) - Date.parse(row.startedAt);
  return Number.isFinite(ms) && ms >= 0 ? (ms / 1000).toFixed(3) : '';
}

/** One report record with every fixed column, as JSON values (metadata kept as an object). */
export function reportRecordOf(jobId: string, row: ResultRow): Record<string, unknown> {
  const duration = durationSecondsOf(row);
  return {
    jobId,
    rowId: row.rowId,
    style: row.style,
    status: row.status,
    reason: row.reason ?? null,
    outputKey: row.outputKey ?? null,
    seed: row.seed ?? null,
    predictionId: row.predictionId ?? null,
    predictionIds: row.predictionIds ?? [],
    costMicros: row.costMicros ?? null,
    costUsd: row.costMicros === undefined ? null : microsToDecimal(row.costMicros),
    attempts: row.attempts ?? null,
    startedAt: row.startedAt ?? null,
    finishedAt: row.finishedAt ?? null,
    durationSeconds: duration === '' ? null : Number(duration),
    orphanSuspected: row.orphanSuspected ?? false,
    error: row.error ?? null,
    prompt: row.prompt ?? null,
    metadata: row.metadata ?? {},
  };
}

function csvCellsOf(jobId: string, row: ResultRow, metaColumns: readonly string[]): string[] {
  const cells = [
    jobId,
    row.rowId,
    row.style ?? '',
    row.status,
    row.reason ?? '',
    row.outputKey ?? '',
    row.seed === undefined ? '' : String(row.seed),
    row.predictionId ?? '',
    (row.predictionIds ?? []).join(' '),
    row.costMicros === undefined ? '' : microsToDecimal(row.costMicros),
    row.attempts === undefined ? '' : String(row.attempts),
    row.startedAt ?? '',
    row.finishedAt ?? '',
    durationSecondsOf(row),
    row.orphanSuspected === true ? 'true' : '',
    row.error ?? '',
    row.prompt ?? '',
    ...metaColumns.map((column) => row.metadata?.[column] ?? ''),
  ];
  return cells.map(neutraliseFormula);
}

export interface ReportOptions {
  readonly format: ReportFormat;
  /** Rows per HMGET. @defaultValue 1000 */
  readonly batchSize?: number;
}

/**
 * Writes the run's report to `destination` (which is not ended: the caller owns it). Returns how many job rows were
 * written. The run must exist (RunNotFoundError otherwise).
 */
export async function writeRunReport(
  ledger: RunLedger,
  run: string,
  destination: Writable,
  options: ReportOptions,
): Promise<{ readonly rows: number }> {
  const batchSize = options.batchSize ?? 1000;
  const keys: SortKey[] = [];
  const metaNames = new Set<string>();
  for await (const { jobId, row } of ledger.results(run, { batchSize })) {
    keys.push({ jobId, rowId: row.rowId, style: row.style });
    for (const name of Object.keys(row.metadata ?? {})) metaNames.add(name);
  }
  keys.sort(compareKeys);
  const metaColumns = [...metaNames].sort(collator.compare);

  let written = 0;
  async function* rows(): AsyncGenerator<{ readonly jobId: string; readonly row: ResultRow }> {
    for (let start = 0; start < keys.length; start += batchSize) {
      const batch = keys.slice(start, start + batchSize);
      const found = await ledger.resultsOf(
        run,
        batch.map((key) => key.jobId),
        { batchSize },
      );
      for (const [index, key] of batch.entries()) {
        const row = found[index];
        // A row deleted between the two passes (by hand) is skipped rather than reported empty.
        if (row === undefined) continue;
        written += 1;
        yield { jobId: key.jobId, row };
      }
    }
  }

  if (options.format === 'csv') {
    async function* records(): AsyncGenerator<string[]> {
      yield [...REPORT_COLUMNS, ...metaColumns.map((name) => neutraliseFormula(`meta.${name}`))];
      for await (const { jobId, row } of rows()) yield csvCellsOf(jobId, row, metaColumns);
    }
    // Cells with leading or trailing blanks are quoted so that spreadsheets keep the blanks.
    await pipeline(records(), stringify({ quoted_match: /^\s|\s$/, record_delimiter: 'unix' }), destination, {
      end: false,
    });
  } else {
    async function* lines(): AsyncGenerator<string> {
      for await (const { jobId, row } of rows()) yield `${JSON.stringify(reportRecordOf(jobId, row))}\n`;
    }
    await pipeline(lines(), destination, { end: false });
  }
  return { rows: written };
}
