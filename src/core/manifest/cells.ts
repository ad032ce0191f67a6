/**
 * Typed cells: a model input written in a CSV cell, a styles file or a `--set` flag → its value, read the way people
 * and spreadsheets write it ("TRUE", "1.0", " 20 ") and refused with a suggestion when it could mean two things.
 *
 * Pure: no I/O, no clock, no environment.
 */
import { UsageError } from '../errors.js';
import type { InputField, ModelDefinition } from '../models.js';
import { MAX_SEED } from '../seed.js';

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
