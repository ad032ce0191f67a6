/**
 * Every name depthq makes up for something stored elsewhere, built in exactly one place (like bullmq's `queue-keys.ts`):
 * run ids, BullMQ job ids, S3 output keys and the Redis keys of the run ledger. Two modules building the same name
 * differently is how a job id stops matching its ledger row or an output lands outside its prefix.
 *
 * Pure: hashing only.
 */
import { createHash } from 'node:crypto';
import { InvalidObjectKeyError, InvalidRunIdError, UsageError } from './errors.js';

// ---------------------------------------------------------------------------------------------------------------------
// Run ids
// ---------------------------------------------------------------------------------------------------------------------

/**
 * Run ids appear in job ids, Redis keys and S3 keys, so they use only characters that are safe in all three (no ':',
 * which BullMQ and Redis key conventions reserve; no '/', which would make an S3 folder) and cannot be `.` or `..`.
 */
export const runIdPattern = /^[a-z0-9][a-z0-9._-]{0,63}$/;

export function isValidRunId(text: string): boolean {
  return runIdPattern.test(text);
}

/** The run id, or an `InvalidRunIdError` whose message quotes the value and states the rule in words. */
export function parseRunId(text: string): string {
  if (!isValidRunId(text)) throw new InvalidRunIdError(text);
  return text;
}

// ---------------------------------------------------------------------------------------------------------------------
// BullMQ job ids
// ---------------------------------------------------------------------------------------------------------------------

export interface RenderJobIdentity {
  readonly run: string;
  readonly rowId: string;
  readonly style: string | null;
}

/** Past this length a job id is shortened with a hash: ids are repeated in many Redis keys, events and log lines. */
export const MAX_JOB_ID_LENGTH = 160;

const jobIdSeparator = '.';
const escapeCharacter = '~';
/** Marks a shortened id; an escaped part never contains it, because every '~' there is followed by two hex digits. */
const hashedMarker = '~~';
const hashHexLength = 40;
const literalCharacter = /^[A-Za-z0-9_-]$/;
const loneSurrogate = /[\uD800-\uDFFF]/u;

/**
 * Letters, digits, '_' and '-' stay as they are, so plain ids stay readable; every other character becomes `~HH` per
 * UTF-8 byte. The separator '.', the escape '~' and ':' (which BullMQ refuses in custom ids) are thereby never literal,
 * so parts can be split apart again and different parts never give the same id.
 */
function escapeJobIdPart(part: string): string {
  let escaped = '';
  for (const character of part) {
    if (literalCharacter.test(character)) {
      escaped += character;
      continue;
    }
    for (const byte of new TextEncoder().encode(character)) {
      escaped += `${escapeCharacter}${byte.toString(16).toUpperCase().padStart(2, '0')}`;
    }
  }
  return escaped;
}

function unescapeJobIdPart(escaped: string): string | undefined {
  const bytes: number[] = [];
  for (let index = 0; index < escaped.length; ) {
    const character = escaped.charAt(index);
    if (character === escapeCharacter) {
      const hex = escaped.slice(index + 1, index + 3);
      if (!/^[0-9A-F]{2}$/.test(hex)) return undefined;
      bytes.push(Number.parseInt(hex, 16));
      index += 3;
    } else {
      if (!literalCharacter.test(character)) return undefined;
      bytes.push(character.charCodeAt(0));
      index += 1;
    }
  }
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(new Uint8Array(bytes));
    // Only the canonical spelling is ours: `~41` decodes to 'A', but depthq writes 'A'.
    return escapeJobIdPart(text) === escaped ? text : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The BullMQ job id of one output image: deterministic, so re-ingesting a manifest adds nothing twice (BullMQ ignores an
 * add whose id exists), and injective over (run, rowId, style), with `null` style distinct from every string.
 *
 * Form: `<run>.<rowId>[.<style>]`, each part escaped (see `escapeJobIdPart`): `myrun.row-12.modern`. The style part is
 * absent when the style is null. BullMQ 6 refuses custom ids that contain ':' or that read as an integer
 * (`String(parseInt(id, 10)) === id`); an escaped id has no ':' and always contains '.' or '~', so it never reads as an
 * integer.
 *
 * An id longer than MAX_JOB_ID_LENGTH is shortened to its first characters (cut between escapes), `~~`, and the first
 * 160 bits of sha256 over the JSON-encoded parts in hex: still unique in practice, still recognisably the row's.
 */
export function renderJobId(identity: RenderJobIdentity): string {
  for (const [name, value] of [
    ['run', identity.run],
    ['rowId', identity.rowId],
    ['style', identity.style ?? ''],
  ] as const) {
    if (loneSurrogate.test(value)) {
      throw new RangeError(`${name} ${JSON.stringify(value)} is not well-formed Unicode (it has a lone surrogate)`);
    }
  }
  const parts = [identity.run, identity.rowId];
  if (identity.style !== null) parts.push(identity.style);
  const readable = parts.map(escapeJobIdPart).join(jobIdSeparator);
  if (readable.length <= MAX_JOB_ID_LENGTH) return readable;
  const digest = createHash('sha256')
    .update(JSON.stringify(['depthq/job-id/v1', identity.run, identity.rowId, identity.style]), 'utf8')
    .digest('hex')
    .slice(0, hashHexLength);
  let cut = MAX_JOB_ID_LENGTH - hashedMarker.length - hashHexLength;
  // Never end the readable part inside a `~HH` escape, or the marker would be ambiguous.
  const lastEscape = readable.lastIndexOf(escapeCharacter, cut - 1);
  if (lastEscape !== -1 && lastEscape > cut - 3) cut = lastEscape;
  return `${readable.slice(0, cut)}${hashedMarker}${digest}`;
}

/**
 * The identity inside a job id made by `renderJobId`, or `undefined` for a shortened (hashed) id or an id depthq did not
 * make. Shortened ids cannot be reversed: read the job's data instead.
 */
export function parseRenderJobId(id: string): RenderJobIdentity | undefined {
  if (id.includes(hashedMarker)) return undefined;
  const escapedParts = id.split(jobIdSeparator);
  if (escapedParts.length !== 2 && escapedParts.length !== 3) return undefined;
  const parts = escapedParts.map(unescapeJobIdPart);
  const [run, rowId, style] = parts;
  if (run === undefined || rowId === undefined || !isValidRunId(run)) return undefined;
  if (escapedParts.length === 3 && style === undefined) return undefined;
  return { run, rowId, style: style ?? null };
}

// ---------------------------------------------------------------------------------------------------------------------
// S3 object keys
// ---------------------------------------------------------------------------------------------------------------------

/** S3's limit on a key's length, in UTF-8 bytes. */
export const MAX_OBJECT_KEY_BYTES = 1024;

/** C0 controls, DEL and C1 controls (Unicode category Cc: U+0000–U+001F, U+007F–U+009F): invisible in consoles and logs, and mangled by some tools. */
const controlCharacter = /\p{Cc}/u;

function describeCodePoint(character: string): string {
  return `U+${(character.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`;
}

/**
 * Why `key` is not a safe S3 object key (or key prefix), or `undefined` when it is. S3 itself accepts almost anything,
 * but depthq's keys must stay under their prefix when synced to a file system and look the same in every tool: so no
 * `.`/`..` segments, no absolute keys, no empty segments, no backslashes and no control characters.
 */
export function objectKeyProblem(key: string): string | undefined {
  if (key === '') return 'it is empty';
  const control = controlCharacter.exec(key);
  if (control) return `it contains the control character ${describeCodePoint(control[0])}`;
  if (loneSurrogate.test(key)) return 'it is not well-formed Unicode (it has a lone surrogate)';
  if (key.includes('\\')) return 'it contains a backslash, which Windows tools read as a folder separator';
  if (key.startsWith('/')) return "it starts with '/': keys are relative to their bucket and prefix";
  if (key.endsWith('/')) return "it ends with '/', which S3 consoles show as a folder, not a file";
  if (key.includes('//')) return "it has an empty segment ('//')";
  const segments = key.split('/');
  if (segments.includes('..')) return "it has a '..' segment, which would climb out of its prefix";
  if (segments.includes('.')) return "it has a '.' segment, which file systems and sync tools collapse";
  const bytes = new TextEncoder().encode(key).length;
  if (bytes > MAX_OBJECT_KEY_BYTES) {
    return `it is ${bytes} bytes long in UTF-8, over S3's limit of ${MAX_OBJECT_KEY_BYTES}`;
  }
  return undefined;
}

/** Returns `key` when it is a safe object key; throws `InvalidObjectKeyError` saying why it is not. */
export function validateObjectKey(key: string, what = 'object key'): string {
  const problem = objectKeyProblem(key);
  if (problem !== undefined) throw new InvalidObjectKeyError(key, problem, { what });
  return key;
}

/**
 * `prefix/key`. The prefix may end with one '/' (people write `renders/` as often as `renders`); an empty prefix means
 * the bucket's root. Both parts are validated, so a valid prefix joined to a valid key is always under the prefix.
 */
export function joinOutputPrefix(prefix: string, key: string): string {
  validateObjectKey(key);
  if (prefix === '') return key;
  const bare = prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
  validateObjectKey(bare, 'output key prefix');
  return validateObjectKey(`${bare}/${key}`);
}

/** Where an output's provenance is written: next to it, so copying a folder copies both. */
export function sidecarKeyOf(outputKey: string): string {
  return validateObjectKey(`${outputKey}.json`);
}

/**
 * The key of image `index` (0-based) of a prediction that made `count` images (flux-depth-dev's `num_outputs`):
 * the job's key itself when there is one image, else `_1` … `_n` before the extension, numbered as people count.
 */
export function outputKeyForImage(key: string, index: number, count: number): string {
  if (!Number.isSafeInteger(count) || count < 1 || !Number.isSafeInteger(index) || index < 0 || index >= count) {
    throw new RangeError(`image ${index} of ${count} does not exist`);
  }
  if (count === 1) return key;
  const lastSlash = key.lastIndexOf('/');
  const dot = key.lastIndexOf('.');
  const number = `_${index + 1}`;
  // A dot in a folder name, or a leading dot in the file name (`.hidden`), is not an extension.
  if (dot <= lastSlash + 1) return validateObjectKey(`${key}${number}`);
  return validateObjectKey(`${key.slice(0, dot)}${number}${key.slice(dot)}`);
}

// ---------------------------------------------------------------------------------------------------------------------
// Output key templates
// ---------------------------------------------------------------------------------------------------------------------

/**
 * Outputs go under the run, then the style, then the row: a run's outputs can be listed, copied or deleted as one folder,
 * and styles compare side by side. With a null style the `{style}` segment is dropped: `myrun/row-12.jpg`.
 */
export const defaultOutputKeyTemplate = '{run}/{style}/{id}.{ext}';

/** The placeholders a template may use; `{meta.<column>}` stands for any manifest metadata column. */
export const OUTPUT_KEY_PLACEHOLDERS = ['run', 'id', 'style', 'seed', 'ext', 'model'] as const;
export type OutputKeyPlaceholder = (typeof OUTPUT_KEY_PLACEHOLDERS)[number];

const metaPlaceholderPrefix = 'meta.';

export interface OutputKeyValues {
  readonly run: string;
  /** The manifest row id. */
  readonly id: string;
  readonly style: string | null;
  readonly seed: number;
  /** The file extension without its dot, from the model's output format: `jpg`, `png`, `webp`. */
  readonly ext: string;
  /** The model id (`owner/name`); `{model}` writes only its name, so the owner does not add a folder. */
  readonly model?: string;
  /** The row's metadata columns, for `{meta.<column>}`. */
  readonly meta?: Readonly<Record<string, string>>;
}

type TemplatePart = { readonly text: string } | { readonly placeholder: string };

function knownPlaceholdersText(): string {
  return `${OUTPUT_KEY_PLACEHOLDERS.map((name) => `{${name}}`).join(', ')} and {meta.<column>}`;
}

function isKnownPlaceholder(name: string): boolean {
  if (name.startsWith(metaPlaceholderPrefix)) return name.length > metaPlaceholderPrefix.length;
  return (OUTPUT_KEY_PLACEHOLDERS as readonly string[]).includes(name);
}

/** One segment (between '/') of a template, as literal text and placeholders. */
function parseTemplateSegment(segment: string, template: string): TemplatePart[] {
  const parts: TemplatePart[] = [];
  let rest = segment;
  while (rest !== '') {
    const open = rest.indexOf('{');
    const close = rest.indexOf('}');
    if (close !== -1 && (open === -1 || close < open)) {
      throw new UsageError(`Output key template ${JSON.stringify(template)} has a '}' without a '{' before it`);
    }
    if (open === -1) {
      parts.push({ text: rest });
      break;
    }
    if (open > 0) parts.push({ text: rest.slice(0, open) });
    const end = rest.indexOf('}', open);
    const nestedOpen = rest.indexOf('{', open + 1);
    if (end === -1 || (nestedOpen !== -1 && nestedOpen < end)) {
      throw new UsageError(
        `Output key template ${JSON.stringify(template)} has a '{' that is not closed by '}' within the same segment`,
      );
    }
    const name = rest.slice(open + 1, end);
    if (!isKnownPlaceholder(name)) {
      throw new UsageError(
        `Output key template ${JSON.stringify(template)} uses the unknown placeholder {${name}}: ` +
          `known placeholders are ${knownPlaceholdersText()}`,
      );
    }
    parts.push({ placeholder: name });
    rest = rest.slice(end + 1);
  }
  return parts;
}

function parseTemplate(template: string): TemplatePart[][] {
  return template.split('/').map((segment) => parseTemplateSegment(segment, template));
}

function placeholderValue(name: string, values: OutputKeyValues): string {
  if (name.startsWith(metaPlaceholderPrefix)) {
    const column = name.slice(metaPlaceholderPrefix.length);
    const value = values.meta !== undefined && Object.hasOwn(values.meta, column) ? values.meta[column] : undefined;
    if (value === undefined) {
      throw new UsageError(
        `The output key uses {${name}}, but the row has no metadata column ${JSON.stringify(column)}`,
      );
    }
    return value;
  }
  switch (name) {
    case 'run':
      return values.run;
    case 'id':
      return values.id;
    case 'style':
      return values.style ?? '';
    case 'seed':
      return String(values.seed);
    case 'ext':
      return values.ext;
    case 'model': {
      if (values.model === undefined) throw new UsageError('The output key uses {model}, but no model was given');
      return values.model.slice(values.model.lastIndexOf('/') + 1);
    }
    default:
      throw new UsageError(`Unknown placeholder {${name}}: known placeholders are ${knownPlaceholdersText()}`);
  }
}

/**
 * Checks one substituted value on its own, before it meets the rest of the key: a row id `../../etc` is refused, never
 * normalised, and the message names the placeholder that carried it. Values may contain '/' (row ids like `shoes/123`
 * make folders) but every segment of the value must be a proper segment. An empty value is refused too, because it
 * usually means missing data and would give many rows the same key, each output overwriting the last paid one.
 */
function checkValue(name: string, value: string): void {
  const problem = objectKeyProblem(value);
  if (problem !== undefined) {
    throw new InvalidObjectKeyError(value, problem, { what: `the value of {${name}} in the output key` });
  }
}

/**
 * The output key of one row from a template such as `{run}/{style}/{id}.{ext}`.
 *
 * Placeholders: `{run}`, `{id}` (row id), `{style}`, `{seed}`, `{ext}` (from the output format), `{model}` (the model's
 * name without owner) and `{meta.<column>}` (a manifest metadata column). A null style drops a segment that is exactly
 * `{style}` (so style-less runs get no invented folder) and writes nothing where `{style}` shares a segment with other
 * text. Unknown placeholders, stray braces, unsafe values and an unsafe result are refused with `UsageError`s that say
 * which. The result is relative: join it to the output prefix with `joinOutputPrefix`.
 */
export function renderOutputKey(template: string, values: OutputKeyValues): string {
  const segments: string[] = [];
  for (const segment of parseTemplate(template)) {
    const only = segment.length === 1 ? segment[0] : undefined;
    if (only !== undefined && 'placeholder' in only && only.placeholder === 'style' && values.style === null) continue;
    let rendered = '';
    for (const part of segment) {
      if ('text' in part) {
        rendered += part.text;
        continue;
      }
      if (part.placeholder === 'style' && values.style === null) continue;
      const value = placeholderValue(part.placeholder, values);
      checkValue(part.placeholder, value);
      rendered += value;
    }
    segments.push(rendered);
  }
  const key = segments.join('/');
  // A template without placeholders is the key itself (a row's own output_key): naming it twice says nothing more.
  return validateObjectKey(
    key,
    key === template ? 'output key' : `output key (from template ${JSON.stringify(template)})`,
  );
}

/**
 * Checks a template once, before any row: unknown placeholders and braces, and whether it can give a safe key at all
 * (`/{id}` or `{run}/../{id}` never can). Returns the template.
 */
export function validateOutputKeyTemplate(template: string): string {
  const metaColumns = parseTemplate(template)
    .flat()
    .flatMap((part) =>
      'placeholder' in part && part.placeholder.startsWith(metaPlaceholderPrefix)
        ? [part.placeholder.slice(metaPlaceholderPrefix.length)]
        : [],
    );
  const sample: OutputKeyValues = {
    run: 'run',
    id: 'id',
    style: 'style',
    seed: 0,
    ext: 'jpg',
    model: 'owner/model',
    meta: Object.fromEntries(metaColumns.map((column) => [column, 'meta'])),
  };
  renderOutputKey(template, sample);
  renderOutputKey(template, { ...sample, style: null });
  return template;
}

// ---------------------------------------------------------------------------------------------------------------------
// Redis keys of the run ledger
// ---------------------------------------------------------------------------------------------------------------------

/** The default Redis key prefix of depthq's own keys (BullMQ's keys have their own prefix, `bull` by default). */
export const DEFAULT_KEY_PREFIX = 'depthq';

/** The Redis keys of one run's ledger: data that must outlive BullMQ's retention of completed jobs. */
export interface LedgerKeys {
  /** Hash: manifest name, created at, model, budget, defaults. */
  readonly meta: string;
  /** Hash: queued, running, succeeded, failed, flagged, parked … */
  readonly counters: string;
  /** Hash: budget, reserved, spent, possiblyBilled, in micro-dollars. */
  readonly money: string;
  /** Hash: job id → the job's result row as JSON. */
  readonly results: string;
  /** Hash: job id → micro-dollars reserved for it, which makes reserving and settling idempotent per job. */
  readonly reservations: string;
  /** Hash: job id → its settlement as JSON, so a second settle (a resumed job) counts nothing twice. */
  readonly settlements: string;
  /** String: the run's state, `active` (or absent), `paused` or `canceled`; workers read it before starting a job. */
  readonly state: string;
  /**
   * Hash: job id → the job's payload (its `RenderJob`) as JSON, written with its first row: what `depthq retry` rebuilds
   * a job from after BullMQ removed it (`removeOnFail`). About 1 KB a job.
   */
  readonly payloads: string;
  /**
   * Hash: why depthq itself paused the run (`reason`, `message` saying what to fix, `at`), e.g. an account Replicate
   * refuses; absent when the run is active or was paused by hand. Cleared when the state changes from `paused`.
   */
  readonly pause: string;
}

function checkKeyPrefix(prefix: string): string {
  if (prefix === '' || /[\s\p{Cc}]/u.test(prefix)) {
    throw new UsageError(`Redis key prefix ${JSON.stringify(prefix)} must be non-empty and without spaces or controls`);
  }
  return prefix;
}

/** `depthq:run:<run>:meta` and friends. The run id is validated, so it cannot contain ':' and collide with another run. */
export function ledgerKeys(prefix: string, run: string): LedgerKeys {
  const base = `${checkKeyPrefix(prefix)}:run:${parseRunId(run)}`;
  return {
    meta: `${base}:meta`,
    counters: `${base}:counters`,
    money: `${base}:money`,
    results: `${base}:results`,
    reservations: `${base}:reservations`,
    settlements: `${base}:settlements`,
    state: `${base}:state`,
    payloads: `${base}:payloads`,
    pause: `${base}:pause`,
  };
}

/** The set of every run id, so `status` can list runs without scanning the keyspace. */
export function runsIndexKey(prefix: string): string {
  return `${checkKeyPrefix(prefix)}:runs`;
}

/**
 * The Redis keys manifest ingestion keeps per run, beside the ledger: where each job came from (so a re-ingest can tell
 * an unchanged row from one whose content changed) and the history of ingests (each manifest's name and sha256).
 */
export interface IngestKeys {
  /** Hash: job id → JSON `{ ingest, line, digests }`: which ingest and manifest line enqueued it, and its content. */
  readonly sources: string;
  /** List: one JSON record per ingest (manifest name and sha256, styles, counts, time), oldest first. */
  readonly ingests: string;
}

export function ingestKeys(prefix: string, run: string): IngestKeys {
  const base = `${checkKeyPrefix(prefix)}:run:${parseRunId(run)}`;
  return { sources: `${base}:sources`, ingests: `${base}:ingests` };
}

/**
 * The Redis keys of worker telemetry (src/core/telemetry.ts), one set per prefix, not per run: workers add to them every
 * couple of seconds, the dashboard's /metrics reads them. See docs/metrics.md.
 */
export interface TelemetryKeys {
  /** Hash: `kind|label…` → count, added to with HINCRBY by every worker; never reset (Prometheus counters). */
  readonly counters: string;
  /** Hash: worker id → last-seen epoch ms; the reader deletes ids not seen for an hour. Expires a day after the last write. */
  readonly workers: string;
}

export function telemetryKeys(prefix: string): TelemetryKeys {
  const base = `${checkKeyPrefix(prefix)}:telemetry`;
  return { counters: `${base}:counters`, workers: `${base}:workers` };
}
