/**
 * The manifest's rules: one CSV record → the render jobs it asks for, or every problem of the record, each with its line,
 * column and a message that says what is wrong and what to write instead. Also the header (which column is what), the
 * styles file (one job per row × style), the typed reading of cells ("TRUE", "1.0", " 20 ") and `s3://` locations.
 *
 * Reading the file (streaming, line numbers), S3 and Redis live in src/ingest; everything here is pure so that every
 * rule is unit-tested without a server, and a row refused here is never paid for.
 *
 * Pure: no I/O, no clock, no environment (hashing only).
 */
import { createHash } from 'node:crypto';
import { UsageError } from './errors.js';
import { imageTypeOfOutputFormat } from './image-type.js';
import { objectKeyProblem } from './keys.js';
import { type InputField, type ModelDefinition, modelRegistry, outputFormatOf } from './models.js';
import {
  bucketNameProblem,
  buildRenderJob,
  MAX_ROW_ID_LENGTH,
  MAX_STYLE_LENGTH,
  type RenderJob,
} from './render-job.js';
import { MAX_SEED } from './seed.js';

// ---------------------------------------------------------------------------------------------------------------------
// Problems
// ---------------------------------------------------------------------------------------------------------------------

/** A column of the manifest (or styles file): its 1-based index, as spreadsheets count, and its header name. */
export interface ManifestColumnRef {
  readonly index: number;
  readonly name: string;
}

/** One thing wrong with a manifest, a styles file or a row: where it is and what to do about it. */
export interface ManifestProblem {
  readonly file: string;
  /** 1-based; for a record spanning several lines (quoted newlines) its first line. */
  readonly line: number;
  readonly column?: ManifestColumnRef;
  readonly message: string;
}

/** `manifest.csv:12:3 (steps): message` — file:line:column as compilers print it, so terminals make it a link. */
export function formatManifestProblem(problem: ManifestProblem): string {
  const where = `${problem.file}:${problem.line}`;
  if (problem.column === undefined) return `${where}: ${problem.message}`;
  return `${where}:${problem.column.index} (${problem.column.name}): ${problem.message}`;
}

// ---------------------------------------------------------------------------------------------------------------------
// Typed cells
// ---------------------------------------------------------------------------------------------------------------------

export type InputValue = string | number | boolean;

export type ParsedCell =
  | {
      readonly ok: true;
      /** `undefined` for an empty cell: the input is not given (a default applies). */
      readonly value: InputValue | undefined;
      /** The text was not written exactly as the value prints ("1.0" → 1, "TRUE" → true, " 20 " → 20). */
      readonly normalised: boolean;
    }
  | { readonly ok: false; readonly message: string };

const TRUE_WORDS = new Set(['true', 'yes', '1']);
const FALSE_WORDS = new Set(['false', 'no', '0']);

/** The range of a numeric input in words: `from 15 to 50`, `at least 1`, or '' when unbounded. */
function rangeWords(minimum: number | undefined, maximum: number | undefined): string {
  if (minimum !== undefined && maximum !== undefined) return `from ${minimum} to ${maximum}`;
  if (minimum !== undefined) return `of at least ${minimum}`;
  if (maximum !== undefined) return `of at most ${maximum}`;
  return '';
}

/** Seeds are integers for the model, but depthq only sends what every backend can hold (see seed.ts). */
function boundsOf(
  name: string,
  field: InputField & { type: 'integer' | 'number' },
): [number | undefined, number | undefined] {
  if (name === 'seed') return [field.minimum ?? 0, field.maximum ?? MAX_SEED];
  return [field.minimum, field.maximum];
}

function parseNumberCell(
  name: string,
  field: InputField & { type: 'integer' | 'number' },
  text: string,
  trimmed: string,
): ParsedCell {
  const [minimum, maximum] = boundsOf(name, field);
  const range = rangeWords(minimum, maximum);
  const kind = field.type === 'integer' ? 'a whole number' : 'a number';
  const expected = `${name} must be ${kind}${range === '' ? '' : ` ${range}`}`;
  if (/^[+-]?\d{1,3}([, ]\d{3})+$/.test(trimmed) && field.type === 'integer') {
    return {
      ok: false,
      message: `${expected}, got "${text}": write digits only, e.g. ${trimmed.replace(/[, ]/g, '')}`,
    };
  }
  if (/^[+-]?\d+,\d+$/.test(trimmed)) {
    return {
      ok: false,
      message: `${expected}, got "${text}": use a point as decimal separator, e.g. ${trimmed.replace(',', '.')}`,
    };
  }
  if (!/^[+-]?(\d+(\.\d*)?|\.\d+)$/.test(trimmed)) {
    if (/^[+-]?(\d+(\.\d*)?|\.\d+)e[+-]?\d+$/i.test(trimmed) && Number.isFinite(Number(trimmed))) {
      return { ok: false, message: `${expected}, got "${text}": write it in plain digits, e.g. ${Number(trimmed)}` };
    }
    return { ok: false, message: `${expected}, got "${text}"` };
  }
  const value = Number(trimmed);
  if (field.type === 'integer' && !Number.isInteger(value)) {
    const lower = Math.floor(value);
    return { ok: false, message: `${expected}, got "${text}": write ${lower} or ${lower + 1}` };
  }
  if (!Number.isFinite(value) || (field.type === 'integer' && !Number.isSafeInteger(value))) {
    return { ok: false, message: `${expected}, got "${text}", which is too large` };
  }
  if ((minimum !== undefined && value < minimum) || (maximum !== undefined && value > maximum)) {
    return { ok: false, message: `${expected}, got ${trimmed}` };
  }
  // `-0` reads as 0; written as "-0" it is still normalised.
  const normalisedValue = Object.is(value, -0) ? 0 : value;
  return { ok: true, value: normalisedValue, normalised: String(normalisedValue) !== text };
}

/**
 * A model input written in a CSV cell or a `--set` flag, typed by the model's rule for it. What people and spreadsheets
 * write is accepted when it can mean one thing only — surrounding spaces, "1.0" for a whole number, "TRUE"/"yes"/"1"
 * for true, "JPG" for the enum value "jpg" — and refused with a suggestion otherwise ("1.5" for a whole number,
 * "3,5", "1e3", "maybe"). Range checks are done here too, with the range in the message. An empty cell is "not given".
 */
export function parseInputCell(name: string, field: InputField, text: string): ParsedCell {
  const trimmed = text.trim();
  if (trimmed === '') return { ok: true, value: undefined, normalised: false };
  switch (field.type) {
    case 'string':
      return { ok: true, value: trimmed, normalised: trimmed !== text };
    case 'uri':
      return {
        ok: false,
        message: `${name} cannot be given here: image inputs are S3 objects, presigned when the prediction starts`,
      };
    case 'boolean': {
      const word = trimmed.toLowerCase();
      if (TRUE_WORDS.has(word)) return { ok: true, value: true, normalised: text !== 'true' };
      if (FALSE_WORDS.has(word)) return { ok: true, value: false, normalised: text !== 'false' };
      return { ok: false, message: `${name} must be true or false, got "${text}"` };
    }
    case 'enum': {
      if (field.values.includes(trimmed)) return { ok: true, value: trimmed, normalised: trimmed !== text };
      const matches = field.values.filter((value) => value.toLowerCase() === trimmed.toLowerCase());
      const [only] = matches;
      if (matches.length === 1 && only !== undefined) return { ok: true, value: only, normalised: true };
      const allowed = field.values.map((value) => `"${value}"`).join(', ');
      return { ok: false, message: `${name} must be one of ${allowed}, got "${text}"` };
    }
    case 'integer':
    case 'number':
      return parseNumberCell(name, field, text, trimmed);
  }
}

/** The model inputs a manifest column, a styles column or `--set` may give: every input except image inputs. */
export function settableInputs(model: ModelDefinition): ReadonlyMap<string, InputField> {
  return new Map(Object.entries(model.inputs).filter(([name]) => !model.imageInputs.includes(name)));
}

/**
 * `--set key=value` flags → run-wide model-input defaults, typed like cells. Throws one UsageError naming every bad
 * flag, so a command line is fixed in one pass.
 */
export function parseInputDefaults(
  assignments: readonly string[],
  model: ModelDefinition,
): Readonly<Record<string, InputValue>> {
  const inputs = settableInputs(model);
  const defaults: Record<string, InputValue> = {};
  const problems: string[] = [];
  for (const assignment of assignments) {
    const equals = assignment.indexOf('=');
    if (equals <= 0) {
      problems.push(`--set takes key=value, e.g. --set steps=30, got "${assignment}"`);
      continue;
    }
    const name = assignment.slice(0, equals).trim();
    const field = inputs.get(name);
    if (field === undefined) {
      const why = model.imageInputs.includes(name)
        ? `${name} comes from each row's control_image column`
        : `${model.id} has no input named "${name}"; it takes ${[...inputs.keys()].join(', ')}`;
      problems.push(`--set ${assignment}: ${why}`);
      continue;
    }
    const parsed = parseInputCell(name, field, assignment.slice(equals + 1));
    if (!parsed.ok) problems.push(`--set ${assignment}: ${parsed.message}`);
    else if (parsed.value === undefined) problems.push(`--set ${assignment}: give a value, e.g. --set ${name}=…`);
    else if (Object.hasOwn(defaults, name) && defaults[name] !== parsed.value) {
      problems.push(`--set ${name} is given twice with different values: keep one`);
    } else defaults[name] = parsed.value;
  }
  if (problems.length > 0) {
    throw new UsageError(problems.length === 1 ? (problems[0] ?? '') : `bad --set flags:\n- ${problems.join('\n- ')}`);
  }
  return defaults;
}

// ---------------------------------------------------------------------------------------------------------------------
// S3 locations
// ---------------------------------------------------------------------------------------------------------------------

export interface S3Location {
  readonly bucket: string;
  readonly key: string;
}

export type ParsedLocation =
  | { readonly ok: true; readonly location: S3Location }
  | { readonly ok: false; readonly message: string };

/**
 * A control image as a manifest writes it: a key in the default bucket (`S3_BUCKET`) or `s3://bucket/key`. Keys are
 * taken literally (S3 keys are not URL-encoded). Web URLs are refused on purpose: depthq presigns control images itself
 * when a prediction starts, so a URL in a manifest would be a credential that expires in the queue.
 */
export function parseS3Location(text: string, defaultBucket: string | undefined): ParsedLocation {
  const value = text.trim();
  const example = defaultBucket === undefined ? 's3://bucket/controls/shot-1.png' : 'controls/shot-1.png';
  if (value === '') {
    return { ok: false, message: `control_image is empty: write the image's S3 key, e.g. ${example}` };
  }
  if (/^s3:\/\//i.test(value)) {
    const rest = value.slice(5);
    const slash = rest.indexOf('/');
    const bucket = slash === -1 ? rest : rest.slice(0, slash);
    const key = slash === -1 ? '' : rest.slice(slash + 1);
    if (bucket === '') return { ok: false, message: `"${value}" names no bucket: write s3://bucket/key` };
    const bucketProblem = bucketNameProblem(bucket);
    if (bucketProblem !== undefined) {
      return { ok: false, message: `"${value}": "${bucket}" is not an S3 bucket name, which ${bucketProblem}` };
    }
    if (key === '') return { ok: false, message: `"${value}" names no key: write s3://${bucket}/path/to/image.png` };
    const keyProblem = objectKeyProblem(key);
    if (keyProblem !== undefined) return { ok: false, message: `"${value}": the key is not usable: ${keyProblem}` };
    return { ok: true, location: { bucket, key } };
  }
  if (/^s3:/i.test(value)) {
    return { ok: false, message: `"${value}" is not an s3:// URI: write s3://bucket/key (two slashes)` };
  }
  if (/^https?:\/\//i.test(value)) {
    return {
      ok: false,
      message:
        `"${value}" is a web URL: control_image must be an S3 object (a key, or s3://bucket/key), ` +
        'which depthq presigns itself when the prediction starts',
    };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) {
    return { ok: false, message: `"${value}" is not an S3 location: write a key, or s3://bucket/key` };
  }
  if (defaultBucket === undefined) {
    return {
      ok: false,
      message: `"${value}" is a key, but S3_BUCKET is not set: write s3://bucket/${value.replace(/^\/+/, '')} or set S3_BUCKET`,
    };
  }
  const keyProblem = objectKeyProblem(value);
  if (keyProblem !== undefined) {
    const hint = value.startsWith('/') ? `: write ${value.replace(/^\/+/, '')}` : '';
    return { ok: false, message: `key "${value}" is not usable: ${keyProblem}${hint}` };
  }
  return { ok: true, location: { bucket: defaultBucket, key: value } };
}

// ---------------------------------------------------------------------------------------------------------------------
// Prompt templates ({prompt} and column placeholders in a style's prompt)
// ---------------------------------------------------------------------------------------------------------------------

export type TemplatePart = { readonly text: string } | { readonly placeholder: string };

/** `{name}` placeholders and literal text; `{{` and `}}` write a literal brace. Throws a message on stray braces. */
export function parsePromptTemplate(template: string): TemplatePart[] {
  const parts: TemplatePart[] = [];
  let text = '';
  for (let index = 0; index < template.length; index++) {
    const character = template.charAt(index);
    const next = template.charAt(index + 1);
    if ((character === '{' && next === '{') || (character === '}' && next === '}')) {
      text += character;
      index++;
      continue;
    }
    if (character === '}') throw new UsageError(`has a '}' without a '{' before it: write '}}' for a literal brace`);
    if (character !== '{') {
      text += character;
      continue;
    }
    const end = template.indexOf('}', index + 1);
    const nested = template.indexOf('{', index + 1);
    if (end === -1 || (nested !== -1 && nested < end)) {
      throw new UsageError(`has a '{' that is not closed by '}': write '{{' for a literal brace`);
    }
    const name = template.slice(index + 1, end).trim();
    if (name === '') throw new UsageError(`has an empty placeholder '{}': write {prompt} or {<column>}`);
    if (text !== '') parts.push({ text });
    text = '';
    parts.push({ placeholder: name });
    index = end;
  }
  if (text !== '') parts.push({ text });
  return parts;
}

/** Whether a template uses `{name}`. */
export function usesPlaceholder(parts: readonly TemplatePart[], name: string): boolean {
  return parts.some((part) => 'placeholder' in part && part.placeholder === name);
}

function renderPromptTemplate(parts: readonly TemplatePart[], value: (placeholder: string) => string): string {
  return parts.map((part) => ('text' in part ? part.text : value(part.placeholder))).join('');
}

// ---------------------------------------------------------------------------------------------------------------------
// Column names
// ---------------------------------------------------------------------------------------------------------------------

/** Columns with a meaning of their own; every model input is known too; anything else is metadata. */
export const MANIFEST_COLUMNS = ['id', 'control_image', 'prompt', 'style', 'output_key'] as const;
export type ManifestColumnName = (typeof MANIFEST_COLUMNS)[number];

/** `Control Image`, `control-image` and ` CONTROL_IMAGE ` all mean `control_image`: one spelling only is possible. */
export function normaliseColumnName(header: string): string {
  return header
    .trim()
    .toLowerCase()
    .replace(/[\s-]+/g, '_');
}

/** Levenshtein distance, capped: only "is it a likely typo" matters. */
function editDistance(a: string, b: string, cap: number): number {
  if (Math.abs(a.length - b.length) > cap) return cap + 1;
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    let rowMin = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a.charAt(i - 1) === b.charAt(j - 1) ? 0 : 1;
      const value = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + cost);
      current.push(value);
      rowMin = Math.min(rowMin, value);
    }
    if (rowMin > cap) return cap + 1;
    previous = current;
  }
  return previous[b.length] ?? cap + 1;
}

/** The known name `name` is probably a misspelling of, if any (`guidence` → `guidance`, `seeds` → `seed`). */
export function likelyMisspellingOf(name: string, known: Iterable<string>): string | undefined {
  if (name.length < 4) return undefined;
  const cap = name.length <= 6 ? 1 : 2;
  let best: { name: string; distance: number } | undefined;
  for (const candidate of known) {
    if (candidate.length < 4) continue;
    const distance = editDistance(name, candidate, cap);
    if (distance <= cap && (best === undefined || distance < best.distance)) best = { name: candidate, distance };
  }
  return best?.name;
}

// ---------------------------------------------------------------------------------------------------------------------
// Styles
// ---------------------------------------------------------------------------------------------------------------------

export interface CsvRecordLike {
  readonly fields: readonly string[];
  /** 1-based first line of the record. */
  readonly line: number;
}

/** One style of a styles file: every manifest row is rendered once per style. */
export interface StyleDefinition {
  readonly name: string;
  readonly line: number;
  /** The style's prompt template; `undefined`: the row's own prompt is used as it is. */
  readonly prompt: readonly TemplatePart[] | undefined;
  readonly inputs: Readonly<Record<string, InputValue>>;
}

export interface StylesPlan {
  readonly styles: readonly StyleDefinition[];
  /** Every style name the file defines, valid or not: a row naming an invalid style is not reported a second time. */
  readonly names: ReadonlySet<string>;
  readonly problems: readonly ManifestProblem[];
}

/** Why `name` cannot be a style (it is part of job ids and output keys), or undefined. */
export function styleNameProblem(name: string): string | undefined {
  if (name === '') return 'is empty: name the style, e.g. modern';
  if (name.length > MAX_STYLE_LENGTH) return `is ${name.length} characters long, over ${MAX_STYLE_LENGTH}`;
  if (name.includes('/')) return `"${name}" contains '/': a style is one folder of the output key; use '-' instead`;
  const problem = objectKeyProblem(name);
  if (problem !== undefined) return `"${name}" cannot be part of an output key: ${problem}`;
  return undefined;
}

/**
 * A styles file (`style`, `prompt` with `{prompt}` and `{<manifest column>}` placeholders, optional model inputs) →
 * its styles, or every problem with line and column. Placeholders are checked against the manifest's header later
 * (`styleTemplateProblems`), once the manifest has been opened.
 */
export function planStyles(records: readonly CsvRecordLike[], file: string, model: ModelDefinition): StylesPlan {
  const problems: ManifestProblem[] = [];
  const [header, ...rows] = records;
  if (header === undefined) {
    return {
      styles: [],
      names: new Set(),
      problems: [{ file, line: 1, message: 'is empty: write a header such as style,prompt and one line per style' }],
    };
  }
  const inputs = settableInputs(model);
  let styleColumn: number | undefined;
  let promptColumn: number | undefined;
  const inputColumns: Array<{ readonly index: number; readonly name: string; readonly field: InputField }> = [];
  const seen = new Map<string, number>();
  header.fields.forEach((raw, index) => {
    const name = normaliseColumnName(raw);
    const column = { index: index + 1, name: raw.trim() };
    if (name === '') {
      problems.push({ file, line: header.line, column, message: 'has no name: name it, or delete the column' });
      return;
    }
    const first = seen.get(name);
    if (first !== undefined) {
      problems.push({ file, line: header.line, column, message: `repeats column ${first} ("${name}"): keep one` });
      return;
    }
    seen.set(name, index + 1);
    if (name === 'style') styleColumn = index;
    else if (name === 'prompt') promptColumn = index;
    else {
      const field = inputs.get(name);
      if (field !== undefined) inputColumns.push({ index, name, field });
      else {
        const known = ['style', 'prompt', ...inputs.keys()];
        const guess = likelyMisspellingOf(name, known);
        problems.push({
          file,
          line: header.line,
          column,
          message:
            guess !== undefined
              ? `is not a styles column: did you mean ${guess}?`
              : `is not a styles column: a styles file has style, prompt and inputs of ${model.id} (${[...inputs.keys()].join(', ')})`,
        });
      }
    }
  });
  if (styleColumn === undefined) {
    problems.push({ file, line: header.line, message: 'has no style column: add one naming each style, e.g. modern' });
  }

  const styles: StyleDefinition[] = [];
  const names = new Set<string>();
  const lineOfName = new Map<string, number>();
  for (const row of rows) {
    if (row.fields.every((field) => field.trim() === '')) continue;
    const rowProblems: ManifestProblem[] = [];
    const at = (index: number, message: string): ManifestProblem => ({
      file,
      line: row.line,
      column: { index: index + 1, name: header.fields[index]?.trim() ?? '' },
      message,
    });
    if (
      row.fields.length > header.fields.length &&
      row.fields.slice(header.fields.length).some((f) => f.trim() !== '')
    ) {
      rowProblems.push({
        file,
        line: row.line,
        message: `has ${row.fields.length} fields but the header has ${header.fields.length}: quote fields that contain commas`,
      });
    }
    const name = styleColumn === undefined ? '' : (row.fields[styleColumn] ?? '').trim();
    if (styleColumn !== undefined) {
      const problem = styleNameProblem(name);
      if (problem !== undefined) rowProblems.push(at(styleColumn, `style ${problem}`));
      const previous = lineOfName.get(name);
      if (name !== '' && previous !== undefined) {
        rowProblems.push(
          at(styleColumn, `style "${name}" is also defined on line ${previous}: style names must be unique`),
        );
      }
      if (name !== '') {
        names.add(name);
        if (previous === undefined) lineOfName.set(name, row.line);
      }
    }
    let prompt: TemplatePart[] | undefined;
    const promptText = promptColumn === undefined ? '' : (row.fields[promptColumn] ?? '').trim();
    if (promptColumn !== undefined && promptText !== '') {
      try {
        prompt = parsePromptTemplate(promptText);
      } catch (error) {
        rowProblems.push(at(promptColumn, `prompt ${error instanceof UsageError ? error.detail : String(error)}`));
      }
    }
    const styleInputs: Record<string, InputValue> = {};
    for (const column of inputColumns) {
      const parsed = parseInputCell(column.name, column.field, row.fields[column.index] ?? '');
      if (!parsed.ok) rowProblems.push(at(column.index, parsed.message));
      else if (parsed.value !== undefined) styleInputs[column.name] = parsed.value;
    }
    problems.push(...rowProblems);
    if (rowProblems.length === 0 && styleColumn !== undefined) {
      styles.push({ name, line: row.line, prompt, inputs: styleInputs });
    }
  }
  if (rows.every((row) => row.fields.every((field) => field.trim() === '')) && styleColumn !== undefined) {
    problems.push({ file, line: header.line, message: 'defines no style: add one line per style below the header' });
  }
  return { styles, names, problems };
}

/** Placeholders of every style prompt that name no manifest column (`{prompt}` needs a prompt column). */
export function styleTemplateProblems(
  styles: readonly StyleDefinition[],
  stylesFile: string,
  layout: ManifestLayout,
  manifestFile: string,
): ManifestProblem[] {
  const problems: ManifestProblem[] = [];
  for (const style of styles) {
    for (const part of style.prompt ?? []) {
      if (!('placeholder' in part) || layout.byHeader.has(part.placeholder)) continue;
      const message =
        part.placeholder === 'prompt'
          ? `style "${style.name}" uses {prompt}, but ${manifestFile} has no prompt column: add one, or remove {prompt}`
          : `style "${style.name}" uses {${part.placeholder}}, but ${manifestFile} has no column named "${part.placeholder}": ` +
            `its columns are ${[...layout.byHeader.keys()].join(', ')}`;
      problems.push({ file: stylesFile, line: style.line, message });
    }
  }
  return problems;
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
  const columns: ManifestColumn[] = [];
  const known = new Map<ManifestColumnName, ManifestColumn>();
  const seen = new Map<string, number>();
  const at = (position: number, message: string): ManifestProblem => ({
    file,
    line: header.line,
    column: { index: position + 1, name: header.fields[position]?.trim() ?? '' },
    message,
  });

  const [only] = header.fields;
  if (header.fields.length === 1 && only !== undefined && /[;\t|]/.test(only)) {
    const separator = only.includes(';') ? 'semicolons' : only.includes('\t') ? 'tabs' : "'|'";
    problems.push({
      file,
      line: header.line,
      message: `the header is one column separated by ${separator}: depthq reads comma-separated files; save as CSV with commas`,
    });
  }

  header.fields.forEach((raw, position) => {
    const trimmed = raw.trim();
    const normalised = normaliseColumnName(raw);
    let role: ColumnRole;
    if (trimmed === '') role = { kind: 'unnamed' };
    else if ((MANIFEST_COLUMNS as readonly string[]).includes(normalised)) {
      role = { kind: normalised as ManifestColumnName };
    } else if (inputs.has(normalised)) {
      const field = inputs.get(normalised);
      role = field === undefined ? { kind: 'metadata', name: trimmed } : { kind: 'input', name: normalised, field };
    } else {
      role = { kind: 'metadata', name: trimmed };
      if (model.imageInputs.includes(normalised)) {
        problems.push(
          at(position, `${normalised} is not a manifest column: write the image's S3 key in control_image`),
        );
      } else {
        const other = otherModelWithInput(normalised, model);
        const guess = likelyMisspellingOf(normalised, knownNames);
        if (other !== undefined) {
          problems.push(
            at(
              position,
              `${normalised} is an input of ${other.id}, not of ${model.id}: remove the column or use --model ${other.id}`,
            ),
          );
        } else if (guess !== undefined) {
          problems.push(
            at(
              position,
              `"${trimmed}" looks like a misspelling of ${guess}: rename it to ${guess}, or give the metadata column a clearly different name`,
            ),
          );
        }
      }
    }
    // Metadata columns are compared exactly (they are the user's names); known ones by their normalised spelling.
    const identity = role.kind === 'metadata' ? `meta:${trimmed}` : role.kind === 'unnamed' ? '' : normalised;
    if (identity !== '') {
      const first = seen.get(identity);
      if (first !== undefined) {
        problems.push(at(position, `repeats column ${first} ("${header.fields[first - 1]?.trim() ?? ''}"): keep one`));
        role = { kind: 'unnamed' };
      } else seen.set(identity, position + 1);
    }
    const column: ManifestColumn = { position, header: trimmed, role };
    columns.push(column);
    if (role.kind !== 'input' && role.kind !== 'metadata' && role.kind !== 'unnamed') known.set(role.kind, column);
  });

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

// ---------------------------------------------------------------------------------------------------------------------
// Uniqueness inside one manifest
// ---------------------------------------------------------------------------------------------------------------------

/** Long strings are remembered by a digest so 100,000 rows cost a few MB whatever their ids and keys look like. */
function compactKey(text: string): string {
  if (text.length <= 40) return `=${text}`;
  return `#${createHash('sha256').update(text, 'utf8').digest('base64url').slice(0, 22)}`;
}

/** Which line claimed each row id and output key first: duplicates name both lines. */
export class ManifestClaims {
  readonly #rowIds = new Map<string, number>();
  readonly #outputKeys = new Map<string, number>();

  /** Records the row id on `line`; returns the earlier line that has it, if any. */
  claimRowId(rowId: string, line: number): number | undefined {
    const key = compactKey(rowId);
    const previous = this.#rowIds.get(key);
    if (previous === undefined) this.#rowIds.set(key, line);
    return previous;
  }

  /** Records an output location on `line`; returns the earlier line that writes there, if any. */
  claimOutputKey(location: S3Location, line: number): number | undefined {
    const key = compactKey(`${location.bucket}/${location.key}`);
    const previous = this.#outputKeys.get(key);
    if (previous === undefined) this.#outputKeys.set(key, line);
    return previous === line ? undefined : previous;
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// Rows
// ---------------------------------------------------------------------------------------------------------------------

export interface ManifestContext {
  readonly file: string;
  readonly run: string;
  readonly model: ModelDefinition;
  readonly layout: ManifestLayout;
  /** `undefined`: no styles file; each row is one job with the style its `style` column gives (or none). */
  readonly styles: readonly StyleDefinition[] | undefined;
  /** Every name the styles file defines, valid or not. */
  readonly styleNames?: ReadonlySet<string>;
  readonly stylesFile?: string;
  /** Run-wide model-input defaults (`--set`). A row's cell beats its style's input, which beats these. */
  readonly defaults: Readonly<Record<string, InputValue>>;
  /** Where bare control-image keys live (`S3_BUCKET`). */
  readonly defaultBucket: string | undefined;
  readonly output: { readonly bucket: string; readonly prefix: string; readonly template: string };
  readonly claims: ManifestClaims;
}

export interface ManifestRow {
  readonly line: number;
  readonly rowId: string | undefined;
  /** Parsed even when the row has other problems, so preflight can still report on the image. */
  readonly controlImage: S3Location | undefined;
  /** Empty when the row has problems: a row is enqueued whole or not at all. */
  readonly jobs: readonly RenderJob[];
  readonly problems: readonly ManifestProblem[];
  /** Cells read in a normalised spelling ("1.0", "TRUE", " 20 "). */
  readonly normalisedCells: number;
}

/** A style as one row is rendered in: a style of the styles file, or the row's own `style` cell (maybe none). */
interface RowStyle {
  readonly name: string | null;
  readonly prompt: readonly TemplatePart[] | undefined;
  readonly inputs: Readonly<Record<string, InputValue>>;
}

const PLACEHOLDER = /\{([^{}]+)\}/g;

function placeholdersOf(template: string): string[] {
  return [...template.matchAll(PLACEHOLDER)].map((match) => match[1] ?? '');
}

/** The file extension of a key's last segment, lowercased, if it has one. */
function extensionOf(key: string): string | undefined {
  const name = key.slice(key.lastIndexOf('/') + 1);
  const dot = name.lastIndexOf('.');
  return dot > 0 ? name.slice(dot + 1).toLowerCase() : undefined;
}

function sameImageType(a: string, b: string): boolean {
  try {
    return imageTypeOfOutputFormat(a) === imageTypeOfOutputFormat(b);
  } catch {
    return false;
  }
}

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
    const { file } = this.context;
    const line = this.record.line;
    this.problems.push(
      column === undefined
        ? { file, line, message }
        : { file, line, column: { index: column.position + 1, name: column.header }, message },
    );
  }

  /** False when the fields cannot be matched to the columns at all (then nothing else is checked). */
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
    // Trailing empty fields are a spreadsheet's padding; trailing values mean a comma split a field.
    if (this.record.fields.slice(width).some((field) => field.trim() !== '')) {
      this.at(
        undefined,
        `has ${count} fields but the header has ${width} columns: quote fields that contain commas ("a, b")`,
      );
      return false;
    }
    return true;
  }

  checkCells(): void {
    for (const column of this.context.layout.columns) {
      const text = this.cell(column);
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
  if (!reader.fieldsMatchHeader()) return refused();
  reader.checkCells();
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

function isImageExtension(extension: string): boolean {
  try {
    imageTypeOfOutputFormat(extension);
    return true;
  } catch {
    return false;
  }
}

/** A problem `buildRenderJob` found, placed on the column that caused it. */
function mapBuildProblem(
  problem: { readonly field: string; readonly message: string },
  line: number,
  context: ManifestContext,
  ownTemplate: boolean,
): ManifestProblem {
  const { file, layout } = context;
  let column: ManifestColumn | undefined;
  let prefix = '';
  if (problem.field.startsWith('input.')) {
    const name = problem.field.slice(6);
    column =
      name === 'prompt'
        ? layout.known.get('prompt')
        : layout.inputs.find((candidate) => candidate.role.kind === 'input' && candidate.role.name === name);
    prefix = column === undefined ? `${name} (from --set or the style): ` : `${name}: `;
  } else if (problem.field === 'rowId') column = layout.known.get('id');
  else if (problem.field === 'style') column = layout.known.get('style');
  else if (problem.field.startsWith('controlImage')) column = layout.known.get('control_image');
  else if (problem.field.startsWith('output')) {
    column = ownTemplate ? layout.known.get('output_key') : layout.known.get('id');
    prefix = 'output key: ';
  }
  const where = column === undefined ? {} : { column: { index: column.position + 1, name: column.header } };
  return { file, line, ...where, message: `${prefix}${problem.message}` };
}
