/**
 * `npm run bench [-- --quick]`: every benchmark section, measured in this run on the local stack (redis-server,
 * s3rver, the Replicate simulator), printed as one Markdown document — the tables of BENCHMARKS.md. `--quick` runs
 * fewer images per scenario (about two minutes) for a check; the full run is what BENCHMARKS.md quotes.
 * `--workers N` runs depthq's side of the provider scenarios with N worker processes (C/N in flight each), not one.
 * Sections: the provider scenarios (scripts/bench/provider-scenarios.ts), then orchestration cost, ingest, memory and
 * scale (scripts/bench/orchestration.ts, ingest.ts, memory.ts, scale.ts).
 * Progress goes to stderr, the document to stdout.
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import { runIngestSection } from './bench/ingest.js';
import { loadAverage } from './bench/machine.js';
import { runMemorySection } from './bench/memory.js';
import { runOrchestrationSection } from './bench/orchestration.js';
import { runProviderSection } from './bench/provider-scenarios.js';
import { runScaleSection } from './bench/scale.js';
import { type BenchSection, renderSections } from './bench/table.js';

const { values } = parseArgs({
  options: { quick: { type: 'boolean', default: false }, workers: { type: 'string', default: '1' } },
});
const quick = values.quick;
const workers = Number(values.workers);
if (!Number.isSafeInteger(workers) || workers < 1) {
  process.stderr.write(`--workers takes a whole number of at least 1, got "${values.workers}"\n`);
  process.exit(2);
}
const log = (line: string) => process.stderr.write(`${line}\n`);
// The SDK's notice about Node 20 would be printed once per process, between the progress lines.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const startedAt = new Date();
const loadAtStart = await loadAverage();
// One section at a time: each measures on a machine that the others are not loading.
const sections: BenchSection[] = [];
sections.push(await runProviderSection({ quick, workers, log }));
log('orchestration cost …');
sections.push(await runOrchestrationSection({ quick }));
log('ingest …');
sections.push(await runIngestSection({ quick }));
log('memory …');
sections.push(await runMemorySection({ quick }));
log('scale …');
sections.push(await runScaleSection({ quick }));

const machine: BenchSection = {
  title: 'Machine',
  header: [],
  rows: [],
  notes: [
    `${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown CPU'}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${os.type()} ${os.release()}`,
    `command: npm run bench${quick || workers !== 1 ? ' --' : ''}${quick ? ' --quick' : ''}${workers !== 1 ? ` --workers ${workers}` : ''}; started ${startedAt.toISOString()}, took ${((Date.now() - startedAt.getTime()) / 1000).toFixed(0)} s`,
    `1-minute load average at the start: ${loadAtStart} (the machine is shared; each row shows the load before it ran)`,
  ],
};
process.stdout.write(renderSections([machine, ...sections]));
