/**
 * A manifest row: one CSV record → the render jobs it asks for (one per style), or every problem of the record, each
 * on the column at fault with a message that says what is wrong and what to write instead.
 *
 * Pure: no I/O, no clock, no environment.
 */
import { UsageError } from '../errors.js';
import { objectKeyProblem } from '../keys.js';
import { outputFormatOf } from '../models.js';
import { buildRenderJob, MAX_ROW_ID_LENGTH, type RenderJob } from '../render-job.js';
import { type InputValue, parseInputCell } from './cells.js';
import { type CsvRecordLike, type ManifestColumn, type ManifestColumnName, surplusFieldsMessage } from './columns.js';
import { extensionOf, isImageExtension, placeholdersOf, sameImageType } from './output-keys.js';
import { type ManifestProblem, problemAt } from './problems.js';
import { renderPromptTemplate, usesPlaceholder } from './prompt-templates.js';
import { type ManifestContext, type ManifestRow, mapBuildProblem, type RowStyle } from './row-context.js';
import { parseS3Location, type S3Location } from './s3-locations.js';
import { styleNameProblem } from './styles.js';

/**
 * The longest cell depthq reads: far above any prompt or metadata a person writes, low enough that a job payload, a
 * report row and a message stay small. docs/input-rules.md.
 */
export const MAX_CELL_CHARACTERS = 10_000;

/** The checks of one record, each adding its problems on the column at fault. */
class RowReader {
  readonly problems: ManifestProblem[] = [];
  normalisedCells = 0;

  constructor(
    private readonly record: CsvRecordLike,
    private readonly context: ManifestContext,
  ) {}

  get line(): number {
    return this.record.line;
  }

  column(name: ManifestColumnName): ManifestColumn | undefined {
    return this.context.layout.known.get(name);
  }

  cell(column: ManifestColumn | undefined): string {
    return column === undefined ? '' : (this.record.fields[column.position] ?? '');
  }

  at(column: ManifestColumn | undefined, message: string): void {
    this.problems.push(problemAt(this.context.file, this.record.line, column, message));
  }

  /**
   * False when the fields cannot be matched to the columns at all (then nothing else is checked). A record with fewer
   * fields is refused here only: a styles file reads its missing cells as empty.
   */
  fieldsMatchHeader(): boolean {
    const width = this.context.layout.width;
    const count = this.record.fields.length;
    if (count < width) {
      this.at(
        undefined,
        `has ${count} field${count === 1 ? '' : 's'} but the header has ${width} columns: ` +
          'add the missing commas (empty fields are fine, e.g. a,,c) and quote fields that contain commas',
      );
      return false;
    }
    const surplus = surplusFieldsMessage(this.record.fields, width);
    if (surplus !== undefined) this.at(undefined, surplus);
    return surplus === undefined;
  }

  /**
   * Problems any cell can have. False when a cell is too long to be checked further: every later message would quote
   * it, so the row reports that alone.
   */
  checkCells(): boolean {
    let checkable = true;
    for (const column of this.context.layout.columns) {
      const text = this.cell(column);
      if (text.length > MAX_CELL_CHARACTERS) {
        this.at(
          column,
          `holds ${text.length.toLocaleString('en-US')} characters, over depthq's limit of ` +
            `${MAX_CELL_CHARACTERS.toLocaleString('en-US')} for one cell: shorten it (a cell this long is usually ` +
            'a paste gone wrong, or a quote that is closed much later than meant)',
        );
        checkable = false;
        continue;
      }
      if (text.includes('\uFFFD')) {
        this.at(
          column,
          'holds bytes that are not UTF-8 (shown as �): save the manifest as UTF-8 (in Excel: "CSV UTF-8")',
        );
      }
      if (column.role.kind === 'unnamed' && text.trim() !== '') {
        this.at(column, `has a value ("${text.trim()}") but no header name: name the column, or empty it`);
      }
    }
    return checkable;
  }

  rowId(): string | undefined {
    const column = this.column('id');
    if (column === undefined) return undefined;
    const rowId = this.cell(column).trim();
    if (rowId === '') this.at(column, 'id is empty: every row needs a unique id (it names the job and its output)');
    else if (rowId.length > MAX_ROW_ID_LENGTH) {
      this.at(column, `id is ${rowId.length} characters long, over ${MAX_ROW_ID_LENGTH}: use a shorter id`);
    } else {
      // Claimed even when the row has other problems, so a duplicate is reported in the same pass.
      const previous = this.context.claims.claimRowId(rowId, this.line);
      if (previous !== undefined) {
        this.at(
          column,
          `id "${rowId}" is also on line ${previous}: ids must be unique in a manifest; rename one of them`,
        );
      }
    }
    return rowId;
  }

  controlImage(): S3Location | undefined {
    const column = this.column('control_image');
    if (column === undefined) return undefined;
    const parsed = parseS3Location(this.cell(column), this.context.defaultBucket);
    if (parsed.ok) return parsed.location;
    this.at(column, parsed.message);
    return undefined;
  }

  inputs(): Record<string, InputValue> {
    const inputs: Record<string, InputValue> = {};
    for (const column of this.context.layout.inputs) {
      if (column.role.kind !== 'input') continue;
      const parsed = parseInputCell(column.role.name, column.role.field, this.cell(column));
      if (!parsed.ok) this.at(column, parsed.message);
      else if (parsed.value !== undefined) {
        inputs[column.role.name] = parsed.value;
        if (parsed.normalised) this.normalisedCells++;
      }
    }
    return inputs;
  }

  metadata(): Record<string, string> {
    const metadata: Record<string, string> = {};
    for (const column of this.context.layout.metadata) {
      if (column.role.kind === 'metadata') metadata[column.role.name] = this.cell(column);
    }
    return metadata;
  }

  /** The styles this row is rendered in: every style, the one its `style` cell names, or its own style label. */
  styles(): RowStyle[] {
    const { styles } = this.context;
    const column = this.column('style');
    const name = this.cell(column).trim();
    if (styles === undefined) {
      const problem = name === '' ? undefined : styleNameProblem(name);
      if (problem !== undefined) this.at(column, `style ${problem}`);
      return [{ name: name === '' ? null : name, prompt: undefined, inputs: {} }];
    }
    if (name === '') return [...styles];
    const style = styles.find((candidate) => candidate.name === name);
    if (style !== undefined) return [style];
    // A style the styles file defines with problems of its own is reported there, not again on every row.
    if (!(this.context.styleNames?.has(name) ?? false)) {
      this.at(
        column,
        `style "${name}" is not in ${this.context.stylesFile ?? 'the styles file'}: ` +
          `write one of ${styles.map((candidate) => candidate.name).join(', ')}, or leave it empty for every style`,
      );
    }
    return [];
  }

  /**
   * The output key template of this row (its `output_key` cell, or the run's), after checking the values that go
   * into it here, so a message names the column that carries the bad value rather than "the output key".
   */
  outputTemplate(rowId: string | undefined, styleCount: number): string {
    const column = this.column('output_key');
    const own = this.cell(column).trim();
    const template = own === '' ? this.context.output.template : own;
    if (own !== '' && styleCount > 1 && !placeholdersOf(own).includes('style')) {
      this.at(
        column,
        `output_key "${own}" would be the same for all ${styleCount} styles, each output overwriting the last: ` +
          'put {style} in it, e.g. renders/{style}/shot-1.{ext}',
      );
    }
    for (const placeholder of placeholdersOf(template)) {
      if (placeholder === 'id' && rowId !== undefined && rowId !== '') {
        const problem = objectKeyProblem(rowId);
        if (problem !== undefined) {
          this.at(
            this.column('id'),
            `id "${rowId}" cannot be part of the output key (${template}): ${problem}; use another id`,
          );
        }
      } else if (placeholder.startsWith('meta.')) {
        const name = placeholder.slice(5);
        const meta = this.context.layout.byHeader.get(name);
        if (meta === undefined || meta.role.kind !== 'metadata') {
          this.at(
            column,
            `the output key (${template}) uses {${placeholder}}, but there is no metadata column "${name}"`,
          );
          continue;
        }
        const value = this.cell(meta);
        const problem = value.trim() === '' ? 'it is empty' : objectKeyProblem(value);
        if (problem !== undefined)
          this.at(meta, `"${value}" cannot be part of the output key (${template}): ${problem}`);
      }
    }
    return template;
  }

  /** The row's prompt; empty is a problem when a style puts it in its prompt, or there is no style prompt at all. */
  prompt(styles: readonly RowStyle[]): string {
    const column = this.column('prompt');
    const prompt = this.cell(column).trim();
    if (prompt !== '') return prompt;
    const quoting = styles.find((style) => style.prompt !== undefined && usesPlaceholder(style.prompt, 'prompt'));
    if (quoting !== undefined) {
      this.at(
        column,
        `prompt is empty, and style "${quoting.name ?? ''}" puts it in its prompt ({prompt}): write the prompt`,
      );
    } else if (styles.some((style) => style.prompt === undefined) && this.context.defaults.prompt === undefined) {
      this.at(
        column,
        'prompt is empty: write what to render, e.g. "a sunlit living room, oak floor" (or give a default with --set prompt=…)',
      );
    }
    return prompt;
  }

  /** The job of one style, or its problems (from `buildRenderJob`, placed on their columns). */
  build(
    style: RowStyle,
    row: {
      readonly rowId: string;
      readonly controlImage: S3Location;
      readonly prompt: string;
      readonly inputs: Readonly<Record<string, InputValue>>;
      readonly metadata: Readonly<Record<string, string>>;
      readonly template: string;
    },
  ): RenderJob | undefined {
    const { context } = this;
    const input: Record<string, InputValue> = { ...context.defaults, ...style.inputs, ...row.inputs };
    if (style.prompt !== undefined) {
      input.prompt = renderPromptTemplate(style.prompt, (name) =>
        name === 'prompt' ? row.prompt : this.cell(context.layout.byHeader.get(name)).trim(),
      ).trim();
    } else if (row.prompt !== '') input.prompt = row.prompt;
    if (typeof input.prompt !== 'string' || input.prompt.trim() === '') {
      this.at(
        this.column('prompt'),
        `the prompt of style "${style.name ?? ''}" comes out empty for this row: fill the columns it uses`,
      );
      return undefined;
    }
    try {
      return buildRenderJob({
        run: context.run,
        rowId: row.rowId,
        style: style.name,
        model: context.model.id,
        controlImage: row.controlImage,
        input,
        output: { bucket: context.output.bucket, prefix: context.output.prefix, template: row.template },
        metadata: row.metadata,
        source: { file: context.file, line: this.line },
      });
    } catch (error) {
      if (!(error instanceof UsageError)) throw error;
      const listed = error.problems.length > 0 ? error.problems : [{ field: '', message: error.detail }];
      const ownTemplate = this.cell(this.column('output_key')).trim() !== '';
      for (const problem of listed) this.problems.push(mapBuildProblem(problem, this.line, context, ownTemplate));
      return undefined;
    }
  }

  /** A key ending in .png holding JPEG data, and two rows writing one key (the later one would overwrite a paid image). */
  checkOutputKeys(jobs: readonly RenderJob[]): void {
    const column = this.column('output_key');
    const ownTemplate = this.cell(column).trim() !== '';
    for (const job of ownTemplate ? jobs : []) {
      const extension = extensionOf(job.output.key);
      const format = outputFormatOf(this.context.model, job.input);
      if (extension !== undefined && isImageExtension(extension) && !sameImageType(extension, format)) {
        this.at(
          column,
          `output key "${job.output.key}" ends in .${extension} but output_format is ${format}, so the file would hold ` +
            `${format} data: end the key in .{ext}, or set output_format to match`,
        );
        return;
      }
    }
    for (const job of jobs) {
      const earlier = this.context.claims.claimOutputKey(job.output, this.line);
      if (earlier !== undefined) {
        this.at(
          ownTemplate ? column : this.column('id'),
          `output key "${job.output.key}" is also the output of line ${earlier}, which would overwrite one paid image ` +
            'with another: make the keys differ (put {id} and {style} in the output key)',
        );
      }
    }
  }
}

/**
 * One manifest record → its render jobs (one per style), or every problem of the record. The record's cells are read
 * (typed, trimmed), its control image parsed, its output key checked for staying under its prefix, its id checked for
 * being unique in this manifest and every job built with `buildRenderJob` — the same function and schema the worker
 * applies, so a row accepted here cannot be refused after it was paid for.
 */
export function manifestRowJobs(record: CsvRecordLike, context: ManifestContext): ManifestRow {
  const reader = new RowReader(record, context);
  const refused = (rowId?: string, controlImage?: S3Location): ManifestRow => ({
    line: record.line,
    rowId,
    controlImage,
    jobs: [],
    problems: reader.problems,
    normalisedCells: reader.normalisedCells,
  });
  if (!reader.fieldsMatchHeader() || !reader.checkCells()) return refused();
  const rowId = reader.rowId();
  const controlImage = reader.controlImage();
  const inputs = reader.inputs();
  const metadata = reader.metadata();
  const styles = reader.styles();
  const template = reader.outputTemplate(rowId, styles.length);
  const prompt = reader.prompt(styles);
  if (reader.problems.length > 0 || rowId === undefined || controlImage === undefined) {
    return refused(rowId, controlImage);
  }
  const jobs: RenderJob[] = [];
  for (const style of styles) {
    const job = reader.build(style, { rowId, controlImage, prompt, inputs, metadata, template });
    if (job !== undefined) jobs.push(job);
  }
  if (reader.problems.length === 0) reader.checkOutputKeys(jobs);
  if (reader.problems.length > 0) return refused(rowId, controlImage);
  return { line: record.line, rowId, controlImage, jobs, problems: [], normalisedCells: reader.normalisedCells };
}
