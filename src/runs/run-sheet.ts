/**
 * `depthq sheet`: a contact sheet of a run in a folder — `index.html` (the demo's contact sheet page: each control image
 * in a row with its outputs, one column per style, captioned with seed and cost; failed and flagged cells marked with
 * the reason) and `grid.png` (the same as one picture, see sheet-grid.ts) — that works offline: every image is a
 * thumbnail made with sharp and stored in the folder, every path relative, every sidecar copied beside its thumbnail.
 *
 * What goes in it comes from the run ledger (rows, status, seed, cost) and S3 (outputs and their sidecars, which name the
 * control image). A row whose jobs all failed has no sidecar: its control image is read from its BullMQ job while
 * BullMQ still holds it, and is otherwise drawn as a box saying it is unknown — so the page never shows a broken image.
 */
import { mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import type { Queue } from 'bullmq';
import pLimit from 'p-limit';
import sharp from 'sharp';
import { z } from 'zod';
import { coerceError, UsageError } from '../core/errors.js';
import { renderJobId, sidecarKeyOf } from '../core/keys.js';
import { formatUsd } from '../core/money.js';
import { parseRenderJob } from '../core/render-job.js';
import type { ResultRow, RunLedger, RunMeta } from '../ledger/run-ledger.js';
import type { RenderJobData } from '../queue/render-queue.js';
import { getObjectBytes, type ObjectRef } from '../storage/s3.js';
import { type ContactSheetCell, type ContactSheetRow, renderContactSheet } from './contact-sheet.js';
import { writeRelativeFile } from './output-directory.js';
import { type GridCell, type GridRow, renderGridPng } from './sheet-grid.js';
import { THUMBNAIL_SIDE, thumbnailJpeg } from './thumbnail.js';

/** Marks a folder as a contact sheet, so the next `depthq sheet` may replace it. */
export const SHEET_MARKER = '.depthq-sheet';
/** The PNG grid shows this many control images at most (a taller picture is no use); the page shows all. */
export const GRID_MAX_ROWS = 100;
/** Longer side of the thumbnails on the page. */
/** Downloads and thumbnails in flight at once. */
const SHEET_CONCURRENCY = 8;

export interface SheetOptions {
  /** The folder to write; created, or replaced when it holds a previous sheet. */
  readonly outDir: string;
  /** Said after the model's name on the page (e.g. where it ran). @defaultValue '' */
  readonly modelNote?: string;
}

export interface SheetResult {
  /** Absolute. */
  readonly outDir: string;
  readonly htmlPath: string;
  readonly gridPath: string;
  /** Control images (page rows) and output images on the page. */
  readonly rows: number;
  readonly images: number;
  /** Control images left out of the PNG grid (past GRID_MAX_ROWS). */
  readonly gridRowsOmitted: number;
  /** Images that could not be read (missing in S3, not an image): their cells say so. */
  readonly problems: readonly string[];
}

const sidecarSchema = z.looseObject({
  controlImage: z.looseObject({ bucket: z.string().min(1), key: z.string().min(1) }).optional(),
});

const collator = new Intl.Collator('en', { numeric: true });
const NO_STYLE = '(no style)';

async function isDirectory(target: string): Promise<boolean | undefined> {
  try {
    return (await stat(target)).isDirectory();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Makes `outDir` an empty folder of the sheet's, refusing to delete anything that is not a previous sheet. */
async function prepareOutDir(outDir: string): Promise<void> {
  if (outDir === path.parse(outDir).root) throw new UsageError(`--out ${outDir} is the root of the file system`);
  const directory = await isDirectory(outDir);
  if (directory === false) throw new UsageError(`--out ${outDir} exists and is not a folder`);
  if (directory === true) {
    const entries = await readdir(outDir);
    if (entries.length > 0 && !entries.includes(SHEET_MARKER)) {
      throw new UsageError(
        `--out ${outDir} already holds files that \`depthq sheet\` did not write; choose a new or empty folder`,
      );
    }
    await rm(outDir, { recursive: true, force: true });
  }
  await mkdir(outDir, { recursive: true });
  await writeFile(
    path.join(outDir, SHEET_MARKER),
    'Written by `depthq sheet`, which replaces this folder when run again.\n',
  );
}

/** A box saying why there is no control image, so the page shows something rather than a broken image. */
async function placeholderImage(text: string): Promise<Buffer> {
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${THUMBNAIL_SIDE}" height="${(THUMBNAIL_SIDE * 2) / 3}">` +
    `<rect width="100%" height="100%" fill="#e4e2dd"/><text x="50%" y="50%" font-size="16" text-anchor="middle" ` +
    `font-family="DejaVu Sans, sans-serif" fill="#555">${text}</text></svg>`;
  return sharp(Buffer.from(svg)).jpeg({ quality: 82 }).toBuffer();
}

interface JobEntry {
  readonly jobId: string;
  readonly row: ResultRow;
}

interface SheetCellData {
  readonly html: ContactSheetCell;
  readonly grid: GridCell;
}

function captionOf(row: ResultRow): string {
  return [
    ...(row.seed === undefined ? [] : [`seed ${row.seed}`]),
    ...(row.costMicros === undefined ? [] : [formatUsd(row.costMicros)]),
  ].join(' · ');
}

export async function writeRunSheet(args: {
  readonly ledger: RunLedger;
  readonly queue: Queue<RenderJobData>;
  readonly s3: S3Client;
  readonly run: string;
  readonly meta: RunMeta;
  readonly options: SheetOptions;
}): Promise<SheetResult> {
  const { ledger, queue, s3, run, meta } = args;
  const outDir = path.resolve(args.options.outDir);

  const byRow = new Map<string, Map<string | null, JobEntry>>();
  const styles = new Set<string | null>();
  for await (const { jobId, row } of ledger.results(run)) {
    styles.add(row.style);
    let jobs = byRow.get(row.rowId);
    if (jobs === undefined) {
      jobs = new Map();
      byRow.set(row.rowId, jobs);
    }
    jobs.set(row.style, { jobId, row });
  }
  const columns = [...styles].sort((a, b) =>
    a === null ? (b === null ? 0 : -1) : b === null ? 1 : collator.compare(a, b),
  );
  const rowIds = [...byRow.keys()].sort(collator.compare);

  await prepareOutDir(outDir);
  const problems: string[] = [];
  const limit = pLimit(SHEET_CONCURRENCY);
  const controlOfRow = new Map<string, ObjectRef>();
  const cells = new Map<string, SheetCellData>();

  // Outputs, their sidecars, and (from the sidecars) where each row's control image is.
  await Promise.all(
    [...byRow.values()].flatMap((jobs) =>
      [...jobs.values()].map(({ jobId, row }) =>
        limit(async () => {
          const base: ContactSheetCell = {
            status: row.status,
            // `flagged (flagged)` says nothing twice over: the reason is shown when it adds something.
            ...(row.reason === undefined || row.reason === row.status ? {} : { reason: row.reason }),
            ...(row.error === undefined ? {} : { error: row.error }),
            ...(row.seed === undefined ? {} : { seed: row.seed }),
            ...(row.costMicros === undefined ? {} : { costMicros: row.costMicros }),
          };
          const gridBase: GridCell = {
            caption: captionOf(row),
            status: row.status,
            ...(row.reason === undefined || row.reason === row.status ? {} : { reason: row.reason }),
          };
          if (row.status !== 'succeeded' || row.outputKey === undefined) {
            cells.set(jobId, { html: base, grid: gridBase });
            return;
          }
          const output = { bucket: meta.output.bucket, key: row.outputKey };
          try {
            const [image, sidecar] = await Promise.all([
              getObjectBytes(s3, output),
              getObjectBytes(s3, { bucket: output.bucket, key: sidecarKeyOf(output.key) }).catch(() => undefined),
            ]);
            const thumbnail = await thumbnailJpeg(image);
            const imagePath = `outputs/${jobId}.jpg`;
            await writeRelativeFile(outDir, imagePath, thumbnail);
            let sidecarPath: string | undefined;
            if (sidecar !== undefined) {
              sidecarPath = `outputs/${jobId}.json`;
              await writeRelativeFile(outDir, sidecarPath, sidecar);
              const parsed = sidecarSchema.safeParse(JSON.parse(Buffer.from(sidecar).toString('utf8')));
              const control = parsed.success ? parsed.data.controlImage : undefined;
              if (control !== undefined) controlOfRow.set(row.rowId, { bucket: control.bucket, key: control.key });
            }
            cells.set(jobId, {
              html: { ...base, imagePath, ...(sidecarPath === undefined ? {} : { sidecarPath }) },
              grid: { caption: captionOf(row), image: thumbnail },
            });
          } catch (error) {
            const message = `output s3://${output.bucket}/${output.key} could not be read: ${coerceError(error).message}`;
            problems.push(`${jobId}: ${message}`);
            cells.set(jobId, {
              html: { ...base, reason: 'output missing', error: message },
              grid: { caption: captionOf(row), status: 'missing', reason: 'output not in S3' },
            });
          }
        }),
      ),
    ),
  );

  // Control images: from a sidecar, else from a job BullMQ still holds, else a box saying so.
  const controlPaths = new Map<string, string>();
  const controlThumbnails = new Map<string, Buffer>();
  await Promise.all(
    rowIds.map((rowId) =>
      limit(async () => {
        const controlPath = `controls/${renderJobId({ run, rowId, style: null })}.jpg`;
        let location = controlOfRow.get(rowId);
        if (location === undefined) {
          for (const { jobId } of byRow.get(rowId)?.values() ?? []) {
            const job = await queue.getJob(jobId);
            if (job === undefined) continue;
            try {
              location = parseRenderJob(job.data).controlImage;
              break;
            } catch {
              // An unreadable payload names no control image; another job of the row may.
            }
          }
        }
        let thumbnail: Buffer;
        if (location === undefined) {
          thumbnail = await placeholderImage('control image unknown');
        } else {
          try {
            thumbnail = await thumbnailJpeg(await getObjectBytes(s3, location));
          } catch (error) {
            problems.push(
              `row ${rowId}: control image s3://${location.bucket}/${location.key} could not be read: ${coerceError(error).message}`,
            );
            thumbnail = await placeholderImage('control image missing');
          }
        }
        await writeRelativeFile(outDir, controlPath, thumbnail);
        controlPaths.set(rowId, controlPath);
        controlThumbnails.set(rowId, thumbnail);
      }),
    ),
  );

  const cellOf = (rowId: string, style: string | null) => {
    const entry = byRow.get(rowId)?.get(style);
    return entry === undefined ? undefined : cells.get(entry.jobId);
  };
  const pageRows: ContactSheetRow[] = rowIds.map((rowId) => {
    const location = controlOfRow.get(rowId);
    return {
      name: rowId,
      description: location === undefined ? '' : `s3://${location.bucket}/${location.key}`,
      controlPath: controlPaths.get(rowId) ?? '',
      cells: columns.map((style) => cellOf(rowId, style)?.html),
    };
  });
  const money = await ledger.money(run);
  const html = renderContactSheet({
    run,
    model: meta.model,
    totalSpentMicros: money.spent,
    heading: `depthq contact sheet — ${run}`,
    modelNote: args.options.modelNote ?? '',
    columns: columns.map((style) => style ?? NO_STYLE),
    rows: pageRows,
  });
  const htmlPath = path.join(outDir, 'index.html');
  await writeFile(htmlPath, html);

  const gridRows: GridRow[] = rowIds.slice(0, GRID_MAX_ROWS).map((rowId) => {
    const control = controlThumbnails.get(rowId);
    return {
      title: rowId,
      ...(control === undefined ? {} : { control }),
      cells: columns.map((style) => cellOf(rowId, style)?.grid),
    };
  });
  const gridPath = path.join(outDir, 'grid.png');
  await writeFile(
    gridPath,
    await renderGridPng({
      heading: `depthq · run ${run} · ${meta.model}`,
      columns: columns.map((style) => style ?? NO_STYLE),
      rows: gridRows,
    }),
  );

  const images = [...cells.values()].filter((cell) => cell.html.imagePath !== undefined).length;
  return {
    outDir,
    htmlPath,
    gridPath,
    rows: rowIds.length,
    images,
    gridRowsOmitted: Math.max(0, rowIds.length - GRID_MAX_ROWS),
    problems: problems.sort(),
  };
}
