/**
 * One benchmark section: a titled table plus the notes that say what its figures mean. Every section of
 * `npm run bench` (provider scenarios, orchestration cost, ingest, memory, scale) returns one of these, and
 * `renderSections` prints them all as one Markdown document, so the output can be pasted into BENCHMARKS.md.
 */
export interface BenchSection {
  title: string;
  header: string[];
  rows: string[][];
  notes: string[];
}

/** Escapes a cell so a `|` inside a figure or a note does not split a Markdown table column. */
function cellText(value: string): string {
  return value.replaceAll('|', '\\|').replaceAll('\n', ' ');
}

function tableLine(cells: readonly string[]): string {
  return `| ${cells.map(cellText).join(' | ')} |`;
}

function renderSection(section: BenchSection): string {
  const lines = [`## ${section.title}`, ''];
  if (section.header.length > 0) {
    lines.push(tableLine(section.header));
    lines.push(tableLine(section.header.map(() => '---')));
    for (const row of section.rows) {
      // A short row is padded so every line has the header's column count (Markdown needs that to render).
      const padded = section.header.map((_, index) => row[index] ?? '');
      lines.push(tableLine(padded));
    }
    lines.push('');
  }
  for (const note of section.notes) {
    lines.push(`- ${note}`);
  }
  if (section.notes.length > 0) lines.push('');
  return lines.join('\n');
}

/** Renders every section as Markdown: a `##` heading, the table, then the notes as a list. */
export function renderSections(sections: BenchSection[]): string {
  return `${sections.map(renderSection).join('\n').trimEnd()}\n`;
}
