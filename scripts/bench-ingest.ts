/**
 * `npm run bench:ingest [-- --rows 100000] [-- --cap-heap]`: the ingest section of the benchmarks alone
 * (scripts/bench/ingest.ts: csv-parse alone against depthq's ingest, interleaved, each in its own process), printed as
 * Markdown. `--cap-heap` adds an ingest with V8's old space capped at 96 MB, which finishes only if memory stays flat.
 * Measured, not asserted; docs/bench-orchestration.md explains the figures.
 */
import { parseArgs } from 'node:util';
import { runIngestSection } from './bench/ingest.js';
import { renderSections } from './bench/table.js';

const { values } = parseArgs({
  options: { rows: { type: 'string', default: '100000' }, 'cap-heap': { type: 'boolean', default: false } },
});
const rows = Number(values.rows);
if (!Number.isSafeInteger(rows) || rows < 10) {
  process.stderr.write(`--rows must be a whole number ≥ 10, got "${values.rows}"\n`);
  process.exit(2);
}
const section = await runIngestSection({ quick: false, rows, capHeap: values['cap-heap'] });
process.stdout.write(renderSections([section]));
