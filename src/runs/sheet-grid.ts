/**
 * The contact sheet as one PNG: a header with the column titles, then per control image its thumbnail and, beside it,
 * one cell per style — the output's thumbnail captioned with seed and cost, or a tinted box naming why there is no image
 * (failed, flagged, canceled …). Something to attach to a message or drop into a review document, where an HTML folder
 * will not go.
 *
 * Drawn with sharp only: thumbnails are composited onto a blank canvas, captions and boxes are small SVGs that libvips
 * rasterises (text needs a system font; on a machine without any, captions come out empty and the images remain).
 */
import sharp, { type OverlayOptions } from 'sharp';
import { escapeHtml } from '../core/html-escape.js';

export interface GridCell {
  /** A thumbnail's bytes (any format sharp reads); absent when the job has no image. */
  readonly image?: Uint8Array;
  /** Under the image: `seed 123 · $0.05`. */
  readonly caption: string;
  /** For a cell without an image: the status in capitals inside the box, e.g. `flagged`. */
  readonly status?: string;
  /** For a cell without an image: the reason under the status, e.g. `attempts-exhausted`. */
  readonly reason?: string;
}

export interface GridRow {
  readonly title: string;
  readonly control?: Uint8Array;
  readonly cells: readonly (GridCell | undefined)[];
}

export interface Grid {
  readonly heading: string;
  readonly columns: readonly string[];
  readonly rows: readonly GridRow[];
}

/** Side of the square each thumbnail is fitted into. */
export const GRID_CELL = 192;
const CAPTION = 34;
const PAD = 10;
const HEADER = 56;
const BACKGROUND = '#f4f3f0';
const FONT = 'DejaVu Sans, Liberation Sans, Arial, sans-serif';
const BOX_COLOURS: Readonly<Record<string, string>> = {
  failed: '#f4d6d3',
  flagged: '#f6e4bf',
  canceled: '#dedcd8',
};

function truncated(text: string, maxCharacters: number): string {
  return text.length <= maxCharacters ? text : `${text.slice(0, maxCharacters - 1)}…`;
}

/** Characters of 11-px text that fit in one cell's width. */
const CAPTION_CHARACTERS = Math.floor(GRID_CELL / 6.4);

function svg(width: number, height: number, body: string): Buffer {
  return Buffer.from(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">` +
      `<style>text { font-family: ${FONT}; fill: #1d1d1b; }</style>${body}</svg>`,
  );
}

function captionSvg(lines: readonly string[]): Buffer {
  const text = lines
    .slice(0, 2)
    .map(
      (line, index) =>
        `<text x="0" y="${13 + index * 14}" font-size="11">${escapeHtml(truncated(line, CAPTION_CHARACTERS))}</text>`,
    )
    .join('');
  return svg(GRID_CELL, CAPTION, text);
}

function boxSvg(status: string, reason: string | undefined): Buffer {
  const colour = BOX_COLOURS[status] ?? '#e4e2dd';
  const reasonText =
    reason === undefined
      ? ''
      : `<text x="${GRID_CELL / 2}" y="${GRID_CELL / 2 + 18}" font-size="12" text-anchor="middle">${escapeHtml(
          truncated(reason, 28),
        )}</text>`;
  return svg(
    GRID_CELL,
    GRID_CELL,
    `<rect x="0.5" y="0.5" width="${GRID_CELL - 1}" height="${GRID_CELL - 1}" rx="6" fill="${colour}" stroke="#8a8780"/>` +
      `<text x="${GRID_CELL / 2}" y="${GRID_CELL / 2 - 2}" font-size="16" font-weight="bold" text-anchor="middle">${escapeHtml(
        status.toUpperCase(),
      )}</text>${reasonText}`,
  );
}

/** The image fitted inside the cell (never enlarged), and its height, so the caption can sit right under it. */
async function fitted(image: Uint8Array): Promise<{ readonly input: Buffer; readonly height: number }> {
  const { data, info } = await sharp(image)
    .resize({ width: GRID_CELL, height: GRID_CELL, fit: 'inside', withoutEnlargement: true })
    .png()
    .toBuffer({ resolveWithObject: true });
  return { input: data, height: info.height };
}

/** The grid as PNG bytes. */
export async function renderGridPng(grid: Grid): Promise<Buffer> {
  const columnCount = 1 + grid.columns.length;
  const step = GRID_CELL + PAD;
  const rowHeight = GRID_CELL + CAPTION + PAD;
  const width = PAD + columnCount * step;
  const height = HEADER + Math.max(1, grid.rows.length) * rowHeight + PAD;
  const overlays: OverlayOptions[] = [];

  const headerText = ['control image', ...grid.columns]
    .map(
      (title, index) =>
        `<text x="${PAD + index * step}" y="48" font-size="13" font-weight="bold">${escapeHtml(
          truncated(title, CAPTION_CHARACTERS - 4),
        )}</text>`,
    )
    .join('');
  overlays.push({
    input: svg(
      width,
      HEADER,
      `<text x="${PAD}" y="22" font-size="16" font-weight="bold">${escapeHtml(truncated(grid.heading, Math.floor((width - 2 * PAD) / 9.5)))}</text>${headerText}`,
    ),
    top: 0,
    left: 0,
  });

  for (const [rowIndex, row] of grid.rows.entries()) {
    const top = HEADER + rowIndex * rowHeight;
    const place = async (columnIndex: number, cell: GridCell | undefined, image: Uint8Array | undefined) => {
      const left = PAD + columnIndex * step;
      let height = GRID_CELL;
      if (image !== undefined) {
        const thumbnail = await fitted(image);
        overlays.push({ input: thumbnail.input, top, left });
        height = thumbnail.height;
      } else {
        overlays.push({ input: boxSvg(cell?.status ?? 'not rendered', cell?.reason), top, left });
      }
      overlays.push({ input: captionSvg((cell?.caption ?? '').split('\n')), top: top + height + 4, left });
    };
    await place(0, { caption: row.title, status: 'no control image' }, row.control);
    for (const [index, cell] of row.cells.entries()) await place(index + 1, cell, cell?.image);
    // Columns a row has no cell for still get their box, so the grid stays a grid.
    for (let index = row.cells.length; index < grid.columns.length; index++)
      await place(index + 1, undefined, undefined);
  }

  return sharp({ create: { width, height, channels: 3, background: BACKGROUND } })
    .composite(overlays)
    .png({ compressionLevel: 9 })
    .toBuffer();
}
