/**
 * The demo's summary: one line per render job (row, style, status, seed, cost, output key) as an aligned plain-text
 * table — readable in a terminal and in a CI log alike, and easy to grep.
 *
 * Pure: no I/O.
 */
import { formatUsd, type Micros } from '../core/money.js';

export interface SummaryRow {
  readonly rowId: string;
  readonly style: string;
  readonly status: string;
  /** Why a job did not succeed (`budget`, `flagged`, …). */
  readonly reason?: string;
  readonly seed?: number;
  readonly costMicros?: Micros;
  readonly outputKey?: string;
}

const HEADERS = ['row', 'style', 'status', 'seed', 'cost', 'output key'] as const;
/** Numbers read best right-aligned. */
const RIGHT_ALIGNED: ReadonlySet<number> = new Set([3, 4]);
const NONE = '-';

function cellsOf(row: SummaryRow): string[] {
  return [
    row.rowId,
    row.style,
    row.reason === undefined ? row.status : `${row.status} (${row.reason})`,
    row.seed === undefined ? NONE : String(row.seed),
    row.costMicros === undefined ? NONE : formatUsd(row.costMicros),
    row.outputKey ?? NONE,
  ];
}

export function formatSummaryTable(rows: readonly SummaryRow[]): string {
  const table = [[...HEADERS], ...rows.map(cellsOf)];
  const widths = HEADERS.map((_, column) => Math.max(...table.map((cells) => (cells[column] ?? '').length)));
  const render = (cells: readonly string[]) =>
    cells
      .map((cell, column) => {
        const width = widths[column] ?? 0;
        return RIGHT_ALIGNED.has(column) ? cell.padStart(width) : cell.padEnd(width);
      })
      .join('  ')
      .trimEnd();
  const rule = widths.map((width) => '-'.repeat(width)).join('  ');
  const [header, ...body] = table;
  return [render(header ?? []), rule, ...body.map(render)].join('\n');
}
