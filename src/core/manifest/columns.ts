/**
 * Columns: the one header scanner that manifests and styles files share (each header cell trimmed and normalised, given
 * its role by the file's rules, repeats reported once), the field-count check of their records, and the manifest's
 * header (which column is what).
 *
 * Pure: no I/O, no clock, no environment.
 */
import { type InputField, type ModelDefinition, modelRegistry } from '../models.js';
import { settableInputs } from './cells.js';
import { type ColumnAt, type ManifestProblem, problemAt } from './problems.js';
import { likelyMisspellingOf } from './spelling.js';

export interface CsvRecordLike {
  readonly fields: readonly string[];
  /** 1-based first line of the record. */
  readonly line: number;
}

/** Columns with a meaning of their own; every model input is known too; anything else is metadata. */
export const MANIFEST_COLUMNS = ['id', 'control_image', 'prompt', 'style', 'output_key'] as const;
export type ManifestColumnName = (typeof MANIFEST_COLUMNS)[number];

function isManifestColumnName(name: string): name is ManifestColumnName {
  return (MANIFEST_COLUMNS as readonly string[]).includes(name);
}

/** `Control Image`, `control-image` and ` CONTROL_IMAGE ` all mean `control_image`: one spelling only is possible. */
export function normaliseColumnName(header: string): string {
  return header
    .trim()
    .toLowerCase()
    .replace(/[\s-]+/g, '_');
}

// ---------------------------------------------------------------------------------------------------------------------
// The header scanner (manifests and styles files)
// ---------------------------------------------------------------------------------------------------------------------

/** One cell of a header record: where it is, its text trimmed, and its name normalised (`normaliseColumnName`). */
export interface HeaderCell extends ColumnAt {
  readonly name: string;
}

/** What one kind of file makes of its header cells. */
export interface HeaderRules<Role> {
  /** The name by which two columns are the same column; a column without header text is never a repeat. */
  identity(cell: HeaderCell): string;
  /**
   * What the column is. `problem` adds a problem on this column; `repeatOf` is the earlier column this one repeats
   * (the scanner reports the repeat itself, after the role's own problems).
   */
  role(cell: HeaderCell, problem: (message: string) => void, repeatOf: HeaderCell | undefined): Role;
}

export interface ScannedColumn<Role> extends HeaderCell {
  readonly role: Role;
}

/**
 * A header record → its columns, each with the role `rules` gives it, and every problem of the header in column order:
 * the role's own, then `repeats column N ("…"): keep one` for a column whose identity an earlier column has.
 */
export function scanHeader<Role>(
  header: CsvRecordLike,
  file: string,
  rules: HeaderRules<Role>,
): { readonly columns: ScannedColumn<Role>[]; readonly problems: ManifestProblem[] } {
  const problems: ManifestProblem[] = [];
  const seen = new Map<string, HeaderCell>();
  const columns = header.fields.map((raw, position): ScannedColumn<Role> => {
    const cell: HeaderCell = { position, header: raw.trim(), name: normaliseColumnName(raw) };
    const problem = (message: string) => {
      problems.push(problemAt(file, header.line, cell, message));
    };
    const identity = cell.header === '' ? undefined : rules.identity(cell);
    const first = identity === undefined ? undefined : seen.get(identity);
    if (identity !== undefined && first === undefined) seen.set(identity, cell);
    const role = rules.role(cell, problem, first);
    if (first !== undefined) problem(`repeats column ${first.position + 1} ("${first.header}"): keep one`);
    return { ...cell, role };
  });
  return { columns, problems };
}

/**
 * A record with more fields than its header has columns, when a field past the last column holds a value: a comma
 * split a field. Trailing empty fields are a spreadsheet's padding and fine.
 */
export function surplusFieldsMessage(fields: readonly string[], width: number): string | undefined {
  if (!fields.slice(width).some((field) => field.trim() !== '')) return undefined;
  return `has ${fields.length} fields but the header has ${width} columns: quote fields that contain commas ("a, b")`;
}

// ---------------------------------------------------------------------------------------------------------------------
// The manifest's header
// ---------------------------------------------------------------------------------------------------------------------

export type ColumnRole =
  | { readonly kind: ManifestColumnName }
  | { readonly kind: 'input'; readonly name: string; readonly field: InputField }
  | { readonly kind: 'metadata'; readonly name: string }
  /** A column without a header name: tolerated (spreadsheets export trailing commas) while its cells stay empty. */
  | { readonly kind: 'unnamed' };

export interface ManifestColumn {
  /** 0-based position in the record. */
  readonly position: number;
  /** The header text, trimmed. */
  readonly header: string;
  readonly role: ColumnRole;
}

/** What each column of the manifest is, found once from the header. */
export interface ManifestLayout {
  readonly headerLine: number;
  readonly width: number;
  readonly columns: readonly ManifestColumn[];
  readonly known: ReadonlyMap<ManifestColumnName, ManifestColumn>;
  readonly inputs: readonly ManifestColumn[];
  readonly metadata: readonly ManifestColumn[];
  /** Header text → column, for `{column}` placeholders in style prompts. */
  readonly byHeader: ReadonlyMap<string, ManifestColumn>;
}

export interface HeaderContext {
  readonly file: string;
  readonly model: ModelDefinition;
  /** True when a prompt is not needed from the manifest: every style writes its own, or `--set prompt=` is given. */
  readonly promptOptional: boolean;
}

/** The model that has an input of this name, when it is not the chosen one: a column meant for another model. */
function otherModelWithInput(name: string, model: ModelDefinition): ModelDefinition | undefined {
  for (const other of modelRegistry.values()) {
    if (other.id !== model.id && Object.hasOwn(other.inputs, name) && !Object.hasOwn(model.inputs, name)) return other;
  }
  return undefined;
}

/**
 * What is wrong with a column read as metadata when it was probably meant as something else: an image input, an input
 * of another model, or a misspelt known column.
 */
function metadataColumnProblem(
  cell: HeaderCell,
  model: ModelDefinition,
  knownNames: ReadonlySet<string>,
): string | undefined {
  const { name } = cell;
  if (model.imageInputs.includes(name)) {
    return `${name} is not a manifest column: write the image's S3 key in control_image`;
  }
  const other = otherModelWithInput(name, model);
  if (other !== undefined) {
    return `${name} is an input of ${other.id}, not of ${model.id}: remove the column or use --model ${other.id}`;
  }
  const guess = likelyMisspellingOf(name, knownNames);
  if (guess === undefined) return undefined;
  return `"${cell.header}" looks like a misspelling of ${guess}: rename it to ${guess}, or give the metadata column a clearly different name`;
}

/**
 * The header record → the layout, and every problem of the header: missing `id`/`control_image`/`prompt`, repeated
 * columns, a semicolon- or tab-separated file read as one column, image inputs, inputs of another model, and metadata
 * columns that look like a misspelt input (`guidence` would otherwise silently fall back to the default).
 */
export function planManifestColumns(
  header: CsvRecordLike,
  context: HeaderContext,
): { readonly layout: ManifestLayout; readonly problems: ManifestProblem[] } {
  const { file, model } = context;
  const problems: ManifestProblem[] = [];
  const inputs = settableInputs(model);
  const knownNames = new Set<string>([...MANIFEST_COLUMNS, ...inputs.keys()]);

  const [only] = header.fields;
  if (header.fields.length === 1 && only !== undefined && /[;\t|]/.test(only)) {
    const separator = only.includes(';') ? 'semicolons' : only.includes('\t') ? 'tabs' : "'|'";
    problems.push({
      file,
      line: header.line,
      message: `the header is one column separated by ${separator}: depthq reads comma-separated files; save as CSV with commas`,
    });
  }

  const scanned = scanHeader<ColumnRole>(header, file, {
    // Metadata columns are compared exactly (they are the user's names); known ones by their normalised spelling.
    identity: (cell) => (knownNames.has(cell.name) ? cell.name : `meta:${cell.header}`),
    role: (cell, problem, repeatOf) => {
      let role: ColumnRole;
      const field = inputs.get(cell.name);
      if (cell.header === '') role = { kind: 'unnamed' };
      else if (isManifestColumnName(cell.name)) role = { kind: cell.name };
      else if (field !== undefined) role = { kind: 'input', name: cell.name, field };
      else {
        role = { kind: 'metadata', name: cell.header };
        const message = metadataColumnProblem(cell, model, knownNames);
        if (message !== undefined) problem(message);
      }
      // A repeated column is read as no column at all: its first occurrence is the one used.
      return repeatOf === undefined ? role : { kind: 'unnamed' };
    },
  });
  problems.push(...scanned.problems);
  const columns = scanned.columns.map(({ position, header, role }): ManifestColumn => ({ position, header, role }));
  const known = new Map<ManifestColumnName, ManifestColumn>();
  for (const column of columns) {
    const { role } = column;
    if (role.kind !== 'input' && role.kind !== 'metadata' && role.kind !== 'unnamed') known.set(role.kind, column);
  }

  const missing = (name: string, message: string) => {
    problems.push({ file, line: header.line, message: `there is no ${name} column: ${message}` });
  };
  if (!known.has('id')) missing('id', 'add one with a unique id per row (it names the job and its output)');
  if (!known.has('control_image')) {
    missing('control_image', "add one with each row's control image: a key in S3_BUCKET or s3://bucket/key");
  }
  if (!known.has('prompt') && !context.promptOptional) {
    missing(
      'prompt',
      'add one, give styles whose prompts need no {prompt} (--styles), or a default with --set prompt=…',
    );
  }

  const layout: ManifestLayout = {
    headerLine: header.line,
    width: header.fields.length,
    columns,
    known,
    inputs: columns.filter((column) => column.role.kind === 'input'),
    metadata: columns.filter((column) => column.role.kind === 'metadata'),
    byHeader: new Map(
      columns.filter((column) => column.role.kind !== 'unnamed').map((column) => [column.header, column] as const),
    ),
  };
  return { layout, problems };
}
