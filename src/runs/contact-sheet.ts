/**
 * The contact sheet of `depthq demo` and `depthq sheet`: a self-contained index.html beside the copied files — each
 * control image in a row with its render in every style, captioned with seed, cost and status — so a person can judge
 * the result offline, in any browser, without a server. Every path is relative and every text is escaped.
 *
 * Pure: no I/O.
 */
import { escapeHtml } from '../core/html-escape.js';
import { formatUsd, type Micros } from '../core/money.js';

export interface ContactSheetCell {
  readonly status: string;
  readonly reason?: string;
  readonly error?: string;
  readonly seed?: number;
  readonly costMicros?: Micros;
  /** Relative to the sheet, `/`-separated; absent when the job stored no image. */
  readonly imagePath?: string;
  readonly sidecarPath?: string;
}

export interface ContactSheetRow {
  readonly name: string;
  readonly description: string;
  /** Relative to the sheet, `/`-separated. */
  readonly controlPath: string;
  /** One cell per column, in the order of `ContactSheet.columns`. */
  readonly cells: readonly (ContactSheetCell | undefined)[];
}

export interface ContactSheet {
  readonly run: string;
  readonly model: string;
  readonly totalSpentMicros: Micros;
  /** Shown as the run's duration; left out when absent. */
  readonly elapsedMs?: number;
  /** The page's heading. @defaultValue 'depthq demo' */
  readonly heading?: string;
  /** Said after the model's name, e.g. where it ran. @defaultValue '(local simulator)' */
  readonly modelNote?: string;
  readonly columns: readonly string[];
  readonly rows: readonly ContactSheetRow[];
}

/** A relative path as a URL: each segment percent-encoded (spaces, '#', '?'), then escaped for an attribute. */
export function hrefOf(relativePath: string): string {
  return escapeHtml(relativePath.split('/').map(encodeURIComponent).join('/'));
}

function figure(imagePath: string, alt: string, caption: string): string {
  const href = hrefOf(imagePath);
  return (
    `<figure><a href="${href}"><img src="${href}" alt="${escapeHtml(alt)}" loading="lazy"></a>` +
    `<figcaption>${caption}</figcaption></figure>`
  );
}

function cellHtml(row: ContactSheetRow, column: string, cell: ContactSheetCell | undefined): string {
  if (cell === undefined) return '<td class="missing">not rendered</td>';
  const facts = [
    ...(cell.seed === undefined ? [] : [`seed ${cell.seed}`]),
    ...(cell.costMicros === undefined ? [] : [formatUsd(cell.costMicros)]),
  ];
  if (cell.imagePath === undefined || cell.status !== 'succeeded') {
    const status = cell.reason === undefined ? cell.status : `${cell.status} (${cell.reason})`;
    const error = cell.error === undefined ? '' : `<br><span class="error">${escapeHtml(cell.error)}</span>`;
    return `<td class="missing">${escapeHtml(status)}${facts.length > 0 ? ` · ${escapeHtml(facts.join(' · '))}` : ''}${error}</td>`;
  }
  const sidecar = cell.sidecarPath === undefined ? '' : ` · <a href="${hrefOf(cell.sidecarPath)}">provenance</a>`;
  return `<td>${figure(cell.imagePath, `${row.name}, ${column}`, `${escapeHtml(facts.join(' · '))}${sidecar}`)}</td>`;
}

const STYLE = `
  :root { color-scheme: light dark; font-family: system-ui, sans-serif; }
  body { margin: 2rem; background: #f4f3f0; color: #1d1d1b; }
  @media (prefers-color-scheme: dark) { body { background: #181816; color: #e8e6e1; } }
  h1 { margin: 0 0 .25rem; font-size: 1.5rem; }
  p.meta { margin: 0 0 1.5rem; opacity: .8; }
  table { border-collapse: collapse; }
  th { text-align: left; font-weight: 600; padding: .5rem; }
  td { vertical-align: top; padding: .5rem; }
  figure { margin: 0; }
  img { display: block; width: 320px; height: auto; border-radius: 4px; box-shadow: 0 1px 4px #0004; }
  figcaption { font-size: .85rem; margin-top: .35rem; opacity: .85; max-width: 320px; }
  td.missing { width: 320px; font-size: .9rem; opacity: .8; }
  .error { color: #b3261e; }
  code { font-size: .9em; }
`;

export function renderContactSheet(sheet: ContactSheet): string {
  const head = ['control image', ...sheet.columns].map((title) => `<th>${escapeHtml(title)}</th>`).join('');
  const body = sheet.rows
    .map((row) => {
      const control = `<td>${figure(row.controlPath, `control image ${row.name}`, `<strong>${escapeHtml(row.name)}</strong><br>${escapeHtml(row.description)}`)}</td>`;
      const renders = sheet.columns.map((column, index) => cellHtml(row, column, row.cells[index])).join('');
      return `<tr>${control}${renders}</tr>`;
    })
    .join('\n');
  const heading = sheet.heading ?? 'depthq demo';
  const modelNote = sheet.modelNote ?? '(local simulator)';
  const images = sheet.rows.reduce(
    (count, row) => count + row.cells.filter((cell) => cell?.status === 'succeeded').length,
    0,
  );
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(heading)} — ${escapeHtml(sheet.run)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>${escapeHtml(heading)}</h1>
<p class="meta">run <code>${escapeHtml(sheet.run)}</code> · ${escapeHtml(sheet.model)}${modelNote === '' ? '' : ` ${escapeHtml(modelNote)}`} · ${images} images ·
total spend ${escapeHtml(formatUsd(sheet.totalSpentMicros))}${sheet.elapsedMs === undefined ? '' : ` · ${(sheet.elapsedMs / 1000).toFixed(1)} s`}</p>
<table>
<thead><tr>${head}</tr></thead>
<tbody>
${body}
</tbody>
</table>
</body>
</html>
`;
}
