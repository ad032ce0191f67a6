/**
 * Manifest ingestion: a manifest CSV (and optional styles file) → render jobs in the queue, all or nothing.
 *
 * 1. read: stream the manifest; every record → its jobs or its problems (src/core/manifest/); jobs wait in a private
 *    spool file, not in memory; jobs the run already has are looked up in batches and compared by content;
 * 2. preflight every distinct control image (HEAD + first bytes, p-limit);
 * 3. any problem → all of them are reported and nothing is enqueued (unless `skipInvalid`: invalid rows are skipped);
 * 4. estimate the cost and check it against the budget (`yes` to go above it);
 * 5. unless `dryRun`: create the run (or check it has the same settings), then enqueue the spooled jobs in batches
 *    through `enqueueRenderJobs`, recording each job's source line and content digests.
 *
 * Job ids derive from run + row id + style, so ingesting the same manifest again adds nothing, a grown manifest adds
 * only its new rows, and a row whose content changed after it was enqueued is an error naming both lines.
 *
 * Memory: the spool holds the payloads; what stays in memory grows with the rows only by a few dozen bytes each (row
 * ids and output keys for duplicate checks, control-image keys for preflight) — measured by scripts/bench-ingest.ts.
 */
import path from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import type { Redis } from 'ioredis';
import { UsageError } from '../core/errors.js';
import {
  ManifestClaims,
  type ManifestLayout,
  type ManifestProblem,
  manifestRowJobs,
  planManifestColumns,
  planStyles,
  type S3Location,
  type StyleDefinition,
  styleTemplateProblems,
  usesPlaceholder,
} from '../core/manifest/index.js';
import { imageCountOf, type ModelDefinition } from '../core/models.js';
import { costOf } from '../core/money.js';
import { renderJobIdOf } from '../core/render-job.js';
import { type RunLedger, type RunMeta, RunMetaConflictError } from '../ledger/run-ledger.js';
import {
  createRenderQueue,
  defaultRenderQueueSettings,
  enqueueRenderJobs,
  type RenderQueueSettings,
} from '../queue/render-queue.js';
import { CsvEncodingError, CsvSyntaxError, readCsvFile, readWholeCsvFile } from './csv-records.js';
import { type CandidateJob, ExistingJobs } from './existing-jobs.js';
import {
  BudgetConfirmationError,
  type IngestEstimate,
  type IngestOutcome,
  ManifestInvalidError,
} from './ingest-outcome.js';
import {
  type IngestRequest,
  type IngestSettings,
  ingestSettingsOf,
  requestedRunMeta,
  runSettingsDifferences,
} from './ingest-settings.js';
import { type IngestRecord, jobContentDigests, RunSources } from './job-sources.js';
import { JobSpool, type SpooledJob } from './job-spool.js';
import { preflightControlImages } from './preflight.js';

/** Jobs looked up in Redis and enqueued per round: `enqueueRenderJobs` batches `addBulk` by the same number. */
const BATCH = 1_000;

// ---------------------------------------------------------------------------------------------------------------------
// Environment (the outcome and the two refusals: ingest-outcome.ts)
// ---------------------------------------------------------------------------------------------------------------------

export type IngestProgress =
  | { readonly phase: 'read'; readonly rows: number }
  | { readonly phase: 'preflight'; readonly checked: number; readonly total: number }
  | { readonly phase: 'enqueue'; readonly enqueued: number; readonly total: number };

export interface IngestEnvironment {
  /** A producer connection the caller owns. */
  readonly redis: Redis;
  readonly ledger: RunLedger;
  /** depthq's Redis key prefix (`DEPTHQ_PREFIX`). */
  readonly prefix: string;
  /** `S3_BUCKET`: where outputs go and where bare control-image keys are. */
  readonly bucket: string | undefined;
  /** Needed for preflight. */
  readonly s3?: S3Client;
  /** Job options of the render queue (attempts …). @defaultValue defaultRenderQueueSettings */
  readonly queueSettings?: RenderQueueSettings;
  /** Where the job spool's private directory is made. @defaultValue the system's temp directory */
  readonly tempDirectory?: string;
  readonly now?: () => Date;
  readonly onProgress?: (progress: IngestProgress) => void;
}

export type { IngestEstimate, IngestOutcome } from './ingest-outcome.js';
export { BudgetConfirmationError, ManifestInvalidError } from './ingest-outcome.js';

function countOf(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}

/** A file that cannot be opened, as a user mistake naming it (and the flag that named it, if any). */
function readError(flag: string | undefined, file: string, error: unknown): Error {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const what = flag === undefined ? file : `${flag}: ${file}`;
  if (code === 'ENOENT') return new UsageError(`${what} does not exist`, { cause: error });
  if (code === 'EISDIR') return new UsageError(`${what} is a folder, not a CSV file`, { cause: error });
  if (code === 'EACCES') return new UsageError(`${what} cannot be read (permission denied)`, { cause: error });
  return error instanceof Error ? error : new Error(String(error));
}

/** Problems in the order a reader meets them: by line, then by column (problems about the whole line first). */
function byPosition(a: ManifestProblem, b: ManifestProblem): number {
  if (a.file !== b.file) return 0;
  return a.line - b.line || (a.column?.index ?? 0) - (b.column?.index ?? 0);
}

// ---------------------------------------------------------------------------------------------------------------------
// 1. Styles and manifest
// ---------------------------------------------------------------------------------------------------------------------

interface StylesInput {
  readonly styles: readonly StyleDefinition[] | undefined;
  readonly names: ReadonlySet<string>;
  readonly file: string | undefined;
  readonly sha256: string | undefined;
  readonly problems: readonly ManifestProblem[];
}

async function readStyles(stylesPath: string | undefined, model: ModelDefinition): Promise<StylesInput> {
  if (stylesPath === undefined) {
    return { styles: undefined, names: new Set(), file: undefined, sha256: undefined, problems: [] };
  }
  const file = path.basename(stylesPath);
  try {
    const { records, sha256 } = await readWholeCsvFile(stylesPath, file);
    const plan = planStyles(records, file, model);
    return { styles: plan.styles, names: plan.names, file, sha256, problems: plan.problems };
  } catch (error) {
    if (!(error instanceof CsvSyntaxError)) throw readError('--styles', stylesPath, error);
    const problems = [{ file, line: error.line, message: error.reason }];
    return { styles: [], names: new Set(), file, sha256: undefined, problems };
  }
}

/** What reading the manifest found. */
interface ManifestReading {
  readonly layout: ManifestLayout | undefined;
  readonly rows: number;
  readonly normalisedCells: number;
  /** Problems that no row can be skipped past: the header, the styles file, broken CSV, the row limit. */
  readonly fileProblems: ManifestProblem[];
  readonly rowProblems: ManifestProblem[];
  readonly invalidLines: Set<number>;
  /** Each distinct control image and the lines that use it (only with preflight on). */
  readonly images: ReadonlyMap<string, { readonly ref: S3Location; readonly lines: number[] }>;
  readonly bytes: number;
  /** The manifest's sha256; throws when the file was not read to its end. */
  readonly sha256: () => string;
}

/**
 * Reads the manifest once, as a stream: header, then every row → jobs (spooled) or problems. Jobs of a run that exists
 * are compared with what it has, a batch at a time.
 */
async function readManifest(
  manifestPath: string,
  settings: IngestSettings,
  styles: StylesInput,
  existingRun: RunMeta | undefined,
  environment: IngestEnvironment,
  spool: JobSpool,
): Promise<ManifestReading> {
  const { run, model } = settings;
  const file = settings.manifestName;
  const fileProblems: ManifestProblem[] = [...styles.problems];
  const rowProblems: ManifestProblem[] = [];
  const invalidLines = new Set<number>();
  const images = new Map<string, { readonly ref: S3Location; readonly lines: number[] }>();
  const claims = new ManifestClaims();
  let layout: ManifestLayout | undefined;
  let existing: ExistingJobs | undefined;
  let rows = 0;
  let normalisedCells = 0;
  let pending: CandidateJob[] = [];

  const flush = async (): Promise<void> => {
    const batch = pending;
    pending = [];
    if (batch.length === 0) return;
    const classified = existing === undefined ? undefined : await existing.classify(batch);
    for (const problem of classified?.problems ?? []) {
      rowProblems.push(problem);
      invalidLines.add(problem.line);
    }
    for (const [index, candidate] of batch.entries()) {
      const isNew = classified?.isNew[index] ?? true;
      const { job, ...entry } = candidate;
      await spool.write(isNew ? { ...entry, isNew, job } : { ...entry, isNew });
    }
  };

  const startLayout = (header: { readonly fields: readonly string[]; readonly line: number }): ManifestLayout => {
    // The manifest needs no prompt column when --set prompt= gives one, or every style writes its own without {prompt}.
    const promptOptional =
      settings.defaults.prompt !== undefined ||
      (styles.styles !== undefined &&
        styles.styles.length > 0 &&
        styles.styles.every((style) => style.prompt !== undefined && !usesPlaceholder(style.prompt, 'prompt')));
    const planned = planManifestColumns(header, { file, model, promptOptional });
    fileProblems.push(...planned.problems);
    if (styles.styles !== undefined && styles.file !== undefined) {
      fileProblems.push(...styleTemplateProblems(styles.styles, styles.file, planned.layout, file));
    }
    if (existingRun !== undefined) {
      const { redis, prefix, ledger } = environment;
      const sources = new RunSources(redis, prefix);
      existing = new ExistingJobs({ redis, prefix, ledger, sources, run, file, layout: planned.layout });
    }
    return planned.layout;
  };

  const source = readCsvFile(manifestPath, file);
  try {
    for await (const record of source.records) {
      if (layout === undefined) {
        layout = startLayout(record);
        continue;
      }
      rows++;
      if (rows > settings.maxRows) {
        fileProblems.push({
          file,
          line: record.line,
          message:
            `the manifest has more than ${settings.maxRows} rows: split it into several manifests ` +
            '(ingest each into the same run), or raise --max-rows',
        });
        break;
      }
      if (rows % 10_000 === 0) environment.onProgress?.({ phase: 'read', rows });
      // Without an id or a control image column no row can be built; the header's problems say so once.
      if (!layout.known.has('id') || !layout.known.has('control_image')) continue;
      const row = manifestRowJobs(record, {
        file,
        run,
        model,
        layout,
        styles: styles.styles,
        styleNames: styles.names,
        ...(styles.file === undefined ? {} : { stylesFile: styles.file }),
        defaults: settings.defaults,
        defaultBucket: settings.output.bucket,
        output: settings.output,
        claims,
      });
      normalisedCells += row.normalisedCells;
      if (row.problems.length > 0) {
        rowProblems.push(...row.problems);
        invalidLines.add(row.line);
      }
      if (settings.preflight && row.controlImage !== undefined) {
        const key = `${row.controlImage.bucket}\n${row.controlImage.key}`;
        const image = images.get(key);
        if (image === undefined) images.set(key, { ref: row.controlImage, lines: [row.line] });
        else image.lines.push(row.line);
      }
      for (const job of row.jobs) {
        const images = imageCountOf(model, job.input);
        const costMicros = costOf(job.priceMicrosPerImage, images);
        pending.push({
          line: row.line,
          jobId: renderJobIdOf(job),
          job,
          digests: jobContentDigests(job),
          costMicros,
          images,
        });
      }
      if (pending.length >= BATCH) await flush();
    }
  } catch (error) {
    if (!(error instanceof CsvSyntaxError)) throw readError(undefined, manifestPath, error);
    const unread = error instanceof CsvEncodingError ? '' : ' (nothing after this line was read)';
    fileProblems.push({ file, line: error.line, message: `${error.reason}${unread}` });
  }
  await flush();
  await spool.finish();

  if (layout === undefined) {
    // A file refused for its encoding has said why already.
    if (!fileProblems.some((problem) => problem.file === file)) {
      fileProblems.push({
        file,
        line: 1,
        message: 'is empty: the first line must be a header, e.g. id,control_image,prompt',
      });
    }
  } else if (rows === 0 && fileProblems.length === 0) {
    fileProblems.push({ file, line: layout.headerLine, message: 'has a header but no rows: add one row per image' });
  }
  return {
    layout,
    rows,
    normalisedCells,
    fileProblems,
    rowProblems,
    invalidLines,
    images,
    bytes: source.bytes(),
    sha256: () => source.sha256(),
  };
}

// ---------------------------------------------------------------------------------------------------------------------
// 2. Preflight
// ---------------------------------------------------------------------------------------------------------------------

/** Checks each distinct control image once; a problem lands on every row that uses the image. Returns how many. */
async function preflightRows(
  reading: ManifestReading,
  settings: IngestSettings,
  environment: IngestEnvironment,
): Promise<number | undefined> {
  if (!settings.preflight || environment.s3 === undefined) return undefined;
  const controlColumn = reading.layout?.known.get('control_image');
  const column =
    controlColumn === undefined ? {} : { column: { index: controlColumn.position + 1, name: controlColumn.header } };
  const entries = [...reading.images.values()];
  const results = await preflightControlImages(
    environment.s3,
    entries.map((entry) => entry.ref),
    {
      concurrency: settings.preflightConcurrency,
      maxBytes: settings.maxControlImageBytes,
      onChecked: (checked, total) => {
        if (checked % 100 === 0 || checked === total) environment.onProgress?.({ phase: 'preflight', checked, total });
      },
    },
  );
  for (const [index, result] of results.entries()) {
    if (result.problem === undefined) continue;
    for (const line of entries[index]?.lines ?? []) {
      reading.rowProblems.push({ file: settings.manifestName, line, ...column, message: result.problem });
      reading.invalidLines.add(line);
    }
  }
  return entries.length;
}

// ---------------------------------------------------------------------------------------------------------------------
// 3. Verdict, 4. estimate
// ---------------------------------------------------------------------------------------------------------------------

/** Throws `ManifestInvalidError` unless the ingest may go on (no problems, or only row problems and `skipInvalid`). */
function refuseOnProblems(
  reading: ManifestReading,
  settings: IngestSettings,
  styles: StylesInput,
  skipInvalid: boolean,
) {
  const file = settings.manifestName;
  const { fileProblems, rowProblems, invalidLines } = reading;
  if (fileProblems.length > 0) {
    const all = [...fileProblems, ...rowProblems];
    const fix =
      rowProblems.length === 0
        ? 'them'
        : 'the header, styles and file problems first (--skip-invalid skips rows, not these)';
    throw new ManifestInvalidError(
      `${file}${styles.file === undefined ? '' : ` and ${styles.file}`}: ${countOf(all.length, 'problem')}; ` +
        `nothing was enqueued. Fix ${fix} and ingest again`,
      all,
      invalidLines.size,
    );
  }
  if (rowProblems.length > 0 && !skipInvalid) {
    throw new ManifestInvalidError(
      `${file}: ${countOf(rowProblems.length, 'problem')} in ${countOf(invalidLines.size, 'row')} of ${reading.rows}; ` +
        'nothing was enqueued. Fix them and ingest again, or pass --skip-invalid to enqueue the valid rows',
      rowProblems,
      invalidLines.size,
    );
  }
}

interface SpoolTotals {
  readonly jobs: number;
  readonly newJobs: number;
  readonly estimate: IngestEstimate;
}

/** Totals of the valid spooled jobs; rows found invalid after their jobs were spooled (conflicts, preflight) are left out. */
async function estimateOf(
  spool: JobSpool,
  invalidLines: ReadonlySet<number>,
  model: ModelDefinition,
): Promise<SpoolTotals> {
  let jobs = 0;
  let newJobs = 0;
  let images = 0;
  let newImages = 0;
  let totalMicros = 0;
  let newMicros = 0;
  for await (const entry of spool.read({ payloads: false })) {
    if (invalidLines.has(entry.line)) continue;
    jobs++;
    images += entry.images;
    totalMicros += entry.costMicros;
    if (entry.isNew) {
      newJobs++;
      newImages += entry.images;
      newMicros += entry.costMicros;
    }
  }
  return {
    jobs,
    newJobs,
    estimate: { priceMicrosPerImage: model.priceMicrosPerImage, images, totalMicros, newImages, newMicros },
  };
}

// ---------------------------------------------------------------------------------------------------------------------
// 5. Enqueue
// ---------------------------------------------------------------------------------------------------------------------

/**
 * Enqueues the new, valid spooled jobs in batches, recording each job's source after its batch is in. One batch is in
 * Redis while the next is read from the spool: the reading overlaps the round trips instead of waiting for them.
 */
async function enqueueSpooled(
  spool: JobSpool,
  invalidLines: ReadonlySet<number>,
  target: { readonly run: string; readonly ingestIndex: number; readonly total: number },
  environment: IngestEnvironment,
): Promise<number> {
  const { redis, prefix, ledger } = environment;
  const sources = new RunSources(redis, prefix);
  const queue = createRenderQueue(redis, prefix, environment.queueSettings ?? defaultRenderQueueSettings);
  let added = 0;
  let enqueued = 0;
  let batch: SpooledJob[] = [];
  const enqueue = async (entries: readonly SpooledJob[]): Promise<void> => {
    if (entries.length === 0) return;
    const jobs = entries.flatMap((entry) => (entry.job === undefined ? [] : [entry.job]));
    // New jobs and jobs the queue lost (restored) alike: what this ingest put in the queue.
    const enqueueOutcome = await enqueueRenderJobs(queue, ledger, target.run, jobs);
    added += enqueueOutcome.added + enqueueOutcome.restored;
    // Recorded after the jobs are in: a crash in between leaves jobs without a source, which the next ingest compares
    // with their ledger rows and then leaves alone — never a source for a job that is not there.
    await sources.record(
      target.run,
      entries.map((entry) => ({
        jobId: entry.jobId,
        source: { ingest: target.ingestIndex, line: entry.line, digests: entry.digests },
      })),
    );
    enqueued += entries.length;
    environment.onProgress?.({ phase: 'enqueue', enqueued, total: target.total });
  };
  /** The batch in Redis now; a failure is rethrown where it is awaited, never left unhandled. */
  let inFlight: Promise<void> = Promise.resolve();
  const send = async (entries: readonly SpooledJob[]): Promise<void> => {
    await inFlight;
    const sending = enqueue(entries);
    sending.catch(() => undefined);
    inFlight = sending;
  };
  try {
    for await (const entry of spool.read()) {
      if (!entry.isNew || invalidLines.has(entry.line)) continue;
      batch.push(entry);
      if (batch.length >= BATCH) {
        await send(batch);
        batch = [];
      }
    }
    await send(batch);
    await inFlight;
  } finally {
    await inFlight.catch(() => undefined);
    await queue.close();
  }
  return added;
}

// ---------------------------------------------------------------------------------------------------------------------
// The ingest
// ---------------------------------------------------------------------------------------------------------------------

/**
 * Ingests a manifest (see the module comment). Throws `ManifestInvalidError` (every problem listed; nothing enqueued),
 * `BudgetConfirmationError`, `RunMetaConflictError` or another `UsageError`/`ConfigError` naming the flag at fault.
 */
export async function ingestManifest(request: IngestRequest, environment: IngestEnvironment): Promise<IngestOutcome> {
  const settings = ingestSettingsOf(request, {
    bucket: environment.bucket,
    canPreflight: environment.s3 !== undefined,
  });
  const { run, model } = settings;
  const { ledger } = environment;
  const now = environment.now ?? (() => new Date());

  const existingRun = await ledger.getRun(run);
  if (existingRun !== undefined) {
    const differences = runSettingsDifferences(existingRun, settings);
    if (differences.length > 0) throw new RunMetaConflictError(run, differences);
  }
  const styles = await readStyles(request.stylesPath, model);

  const spool = await JobSpool.create(environment.tempDirectory);
  try {
    const reading = await readManifest(request.manifestPath, settings, styles, existingRun, environment, spool);
    const preflighted = await preflightRows(reading, settings, environment);
    reading.rowProblems.sort(byPosition);
    refuseOnProblems(reading, settings, styles, request.skipInvalid === true);

    const { jobs, newJobs, estimate } = await estimateOf(spool, reading.invalidLines, model);
    if (jobs === 0) {
      throw new ManifestInvalidError(
        `${settings.manifestName}: every one of its ${countOf(reading.rows, 'row')} is invalid, so there is nothing to enqueue`,
        reading.rowProblems,
        reading.invalidLines.size,
      );
    }
    const budgetMicros = request.budgetMicros ?? (existingRun === undefined ? null : (await ledger.money(run)).budget);
    const overBudget = budgetMicros !== null && estimate.totalMicros > budgetMicros;
    if (overBudget && request.yes !== true) throw new BudgetConfirmationError(estimate, budgetMicros, jobs);

    const manifest = { name: settings.manifestName, sha256: reading.sha256(), bytes: reading.bytes };
    const outcome = {
      run,
      model: model.id,
      manifest,
      rows: reading.rows,
      invalidRows: reading.invalidLines.size,
      problems: reading.rowProblems,
      jobs: { total: jobs, new: newJobs, existing: jobs - newJobs },
      estimate,
      budgetMicros,
      overBudget,
      normalisedCells: reading.normalisedCells,
      preflighted,
    };
    if (request.dryRun === true) return { ...outcome, dryRun: true, runCreated: false, added: 0 };

    const budget = request.budgetMicros ?? null;
    const created = await ledger.createRun(run, requestedRunMeta(settings, existingRun, budget, manifest.sha256));
    if (request.budgetMicros !== undefined && !created.created) await ledger.setBudget(run, request.budgetMicros);
    const sources = new RunSources(environment.redis, environment.prefix);
    const record: IngestRecord = {
      startedAt: now().toISOString(),
      manifest,
      ...(styles.file !== undefined && styles.sha256 !== undefined
        ? { styles: { name: styles.file, sha256: styles.sha256 } }
        : {}),
      rows: reading.rows,
      invalidRows: reading.invalidLines.size,
      jobs,
      existing: jobs - newJobs,
    };
    const ingestIndex = await sources.beginIngest(run, record);
    const added = await enqueueSpooled(spool, reading.invalidLines, { run, ingestIndex, total: newJobs }, environment);
    await sources.finishIngest(run, ingestIndex, { ...record, finishedAt: now().toISOString(), added });
    return { ...outcome, dryRun: false, runCreated: created.created, added };
  } finally {
    await spool.dispose();
  }
}
