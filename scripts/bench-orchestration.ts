/**
 * `npm run bench:orchestration [-- --quick] [-- --only orchestration,ingest,memory,scale]`: depthq's orchestration,
 * ingest, memory and scale benchmarks (docs/bench-orchestration.md), printed as Markdown sections. Every figure is a
 * ratio or a figure measured in the same run against its baseline; nothing is asserted. `--quick` runs each with
 * fewer jobs and rows (a smoke run, not figures to quote).
 */
import { parseArgs } from 'node:util';
import { runIngestSection } from './bench/ingest.js';
import { runMemorySection } from './bench/memory.js';
import { runOrchestrationSection } from './bench/orchestration.js';
import { runScaleSection } from './bench/scale.js';
import { type BenchSection, renderSections } from './bench/table.js';

const SECTIONS = {
  orchestration: runOrchestrationSection,
  ingest: runIngestSection,
  memory: runMemorySection,
  scale: runScaleSection,
} as const satisfies Record<string, (options: { quick: boolean }) => Promise<BenchSection>>;
type SectionName = keyof typeof SECTIONS;

function isSectionName(name: string): name is SectionName {
  return Object.hasOwn(SECTIONS, name);
}

const { values } = parseArgs({
  options: { quick: { type: 'boolean', default: false }, only: { type: 'string' } },
});
const names = (values.only ?? Object.keys(SECTIONS).join(',')).split(',').map((name) => name.trim());
const unknown = names.filter((name) => !isSectionName(name));
if (unknown.length > 0) {
  process.stderr.write(`--only takes ${Object.keys(SECTIONS).join(', ')}, got "${unknown.join(', ')}"\n`);
  process.exit(2);
}

const sections: BenchSection[] = [];
for (const name of names.filter(isSectionName)) {
  process.stderr.write(`bench: ${name}${values.quick ? ' (quick)' : ''}…\n`);
  sections.push(await SECTIONS[name]({ quick: values.quick }));
}
process.stdout.write(renderSections(sections));
