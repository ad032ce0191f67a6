/**
 * Streams a CSV file as records with the line each one starts on, hashing the bytes on the way (the manifest's sha256
 * is recorded with the run), with csv-parse doing the parsing: a UTF-8 BOM, CRLF or LF, quoted fields with commas,
 * quotes and newlines, blank lines.
 *
 * Line numbers are counted here, not taken from csv-parse's `info.lines`: csv-parse 7 counts "\r\n" inside a quoted
 * field as two lines, so after the first such field every line number it reports is off. This module counts line breaks
 * (CRLF, LF or a lone CR, each one break) in the raw bytes as they pass, and maps each record's end offset
 * (`info.bytes`) to a line; the record's first line is its last line minus the breaks inside its fields.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { type Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CsvError, parse } from 'csv-parse';
import { UsageError } from '../core/errors.js';
import { textEncodingProblem } from '../core/manifest/encoding.js';

export interface CsvRecord {
  readonly fields: readonly string[];
  /** 1-based line the record starts on. */
  readonly line: number;
}

/** The file is not well-formed CSV at `line`; nothing after it can be read reliably. */
export class CsvSyntaxError extends UsageError {
  override readonly name: string = 'CsvSyntaxError';
  readonly file: string;
  readonly line: number;
  readonly reason: string;

  constructor(file: string, line: number, reason: string, options?: ErrorOptions) {
    super(reason, { location: { file, line }, ...(options?.cause === undefined ? {} : { cause: options.cause }) });
    this.file = file;
    this.line = line;
    this.reason = reason;
  }
}

/**
 * The file is not UTF-8 text (UTF-16, a workbook, binary): refused from its first bytes, before any record. Its
 * `reason` is said after the file's name.
 */
export class CsvEncodingError extends CsvSyntaxError {
  override readonly name: string = 'CsvEncodingError';
}

/** Characters one record may hold: far above any real row; an unclosed quote stops here instead of at the file's end. */
export const MAX_RECORD_CHARACTERS = 16 * 1024 * 1024;

const LF = 0x0a;
const CR = 0x0d;

/**
 * Passes bytes through unchanged while hashing them and remembering where each line break ends, so a byte offset can be
 * turned into a line number. Offsets are asked for in increasing order, so break ends are dropped once passed: memory
 * stays bounded by what is in flight between this stream and the parser.
 */
class LineIndexer extends Transform {
  readonly #hash = createHash('sha256');
  #offset = 0;
  #pendingCr = false;
  #breakEnds: number[] = [];
  #head = 0;
  #breaksPassed = 0;
  #digest: string | undefined;

  constructor(private readonly file: string) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.#offset === 0 && chunk.length > 0) {
      const problem = textEncodingProblem(chunk);
      if (problem !== undefined) {
        callback(new CsvEncodingError(this.file, 1, problem));
        return;
      }
    }
    this.#hash.update(chunk);
    const base = this.#offset;
    const length = chunk.length;
    let index = 0;
    if (this.#pendingCr && length > 0) {
      this.#pendingCr = false;
      if (chunk[0] === LF) {
        this.#breakEnds.push(base + 1);
        index = 1;
      } else this.#breakEnds.push(base);
    }
    for (; index < length; index++) {
      const byte = chunk[index];
      if (byte === LF) this.#breakEnds.push(base + index + 1);
      else if (byte === CR) {
        if (index + 1 === length) this.#pendingCr = true;
        else if (chunk[index + 1] === LF) {
          this.#breakEnds.push(base + index + 2);
          index++;
        } else this.#breakEnds.push(base + index + 1);
      }
    }
    this.#offset += length;
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    if (this.#pendingCr) this.#breakEnds.push(this.#offset);
    this.#pendingCr = false;
    this.#digest = this.#hash.digest('hex');
    callback();
  }

  /** The 1-based line of the byte at `offset`; offsets must not decrease from one call to the next. */
  lineAt(offset: number): number {
    while (this.#head < this.#breakEnds.length && (this.#breakEnds[this.#head] ?? Number.POSITIVE_INFINITY) <= offset) {
      this.#head++;
      this.#breaksPassed++;
    }
    if (this.#head > 4096 && this.#head * 2 > this.#breakEnds.length) {
      this.#breakEnds = this.#breakEnds.slice(this.#head);
      this.#head = 0;
    }
    return 1 + this.#breaksPassed;
  }

  get bytes(): number {
    return this.#offset;
  }

  /** The sha256 (hex) of every byte, once the input has ended. */
  get sha256(): string | undefined {
    return this.#digest;
  }
}

function breaksIn(text: string): number {
  if (!text.includes('\n') && !text.includes('\r')) return 0;
  return text.match(/\r\n|\r|\n/g)?.length ?? 0;
}

function numberIn(value: unknown, name: string): number | undefined {
  if (typeof value !== 'object' || value === null || !(name in value)) return undefined;
  const found: unknown = Reflect.get(value, name);
  return typeof found === 'number' ? found : undefined;
}

/** csv-parse's record with `info: true`, checked rather than cast: its types say `any`. */
function recordOf(item: unknown): { fields: string[]; endOffset: number; index: number } {
  if (typeof item === 'object' && item !== null && 'record' in item && 'info' in item) {
    const { record, info } = item;
    const bytes = numberIn(info, 'bytes');
    const index = numberIn(info, 'records');
    if (
      Array.isArray(record) &&
      record.every((field) => typeof field === 'string') &&
      bytes !== undefined &&
      index !== undefined
    ) {
      return { fields: record, endOffset: bytes, index };
    }
  }
  throw new TypeError('csv-parse emitted a record of an unexpected shape');
}

function syntaxReason(error: CsvError): string {
  switch (error.code) {
    case 'CSV_QUOTE_NOT_CLOSED':
      return (
        'a quoted field that starts in this record is never closed, so the rest of the file reads as one field: ' +
        'close the quote, and write a quote inside a quoted field as two ("")'
      );
    case 'CSV_INVALID_CLOSING_QUOTE':
      return (
        'a quoted field is followed by more text before the next comma: quote the whole field and write quotes ' +
        'inside it as two, e.g. "a ""quoted"" word"'
      );
    case 'INVALID_OPENING_QUOTE':
      return 'a quote appears inside an unquoted field: quote the whole field and double the quote, e.g. "5"" nail"';
    case 'CSV_MAX_RECORD_SIZE':
      return (
        `a record is longer than ${MAX_RECORD_CHARACTERS.toLocaleString('en-US')} characters, so a quote opened in it ` +
        'is most likely never closed: close it, and write a quote inside a quoted field as two ("")'
      );
    case 'CSV_NON_TRIMABLE_CHAR_AFTER_CLOSING_QUOTE':
      return 'text follows a closing quote: quote the whole field and write quotes inside it as two ("")';
    default:
      return `not valid CSV: ${error.message}`;
  }
}

export interface CsvSource {
  /** The records, in order. Throws `CsvSyntaxError` at the first place the file stops being CSV. */
  readonly records: AsyncIterable<CsvRecord>;
  /** The sha256 (hex) of the file's bytes; available once `records` has been read to the end. */
  sha256(): string;
  /** Bytes read so far. */
  bytes(): number;
}

/**
 * Opens a CSV stream as records. Records whose fields are all blank (`,,,` rows spreadsheets leave behind) are skipped
 * like blank lines. `file` names the source in messages.
 */
export function readCsvRecords(input: Readable, file: string): CsvSource {
  const indexer = new LineIndexer(file);
  // A parse error would destroy the stream and drop the records parsed before it; skipping the bad record instead
  // lets every good record before it through, and the first error is raised after them. csv-parse's state after a
  // broken quote is not trustworthy, so nothing after the first error is read.
  const parser = parse({
    bom: true,
    info: true,
    max_record_size: MAX_RECORD_CHARACTERS,
    relax_column_count: true,
    skip_empty_lines: true,
    skip_records_with_error: true,
  });
  let firstError: { readonly error: CsvError; readonly recordsBefore: number; readonly offset: number } | undefined;
  parser.on('skip', (error: unknown) => {
    if (firstError !== undefined || !(error instanceof CsvError)) return;
    firstError = { error, recordsBefore: numberIn(error, 'records') ?? 0, offset: numberIn(error, 'bytes') ?? 0 };
  });
  // The pipeline's own promise settles when the parser is drained; failures surface through the iterator below.
  const piped = pipeline(input, indexer, parser);
  piped.catch(() => undefined);

  const syntaxError = (found: NonNullable<typeof firstError>): CsvSyntaxError =>
    // The error's offset lies inside the broken record, past the last good record's end.
    new CsvSyntaxError(file, indexer.lineAt(found.offset), syntaxReason(found.error), { cause: found.error });

  async function* records(): AsyncGenerator<CsvRecord> {
    try {
      for await (const item of parser) {
        const { fields, endOffset, index } = recordOf(item);
        if (firstError !== undefined && index > firstError.recordsBefore) throw syntaxError(firstError);
        if (fields.every((field) => field.trim() === '')) continue;
        // The record's last byte (its line break, if it has one, ends the line the record ends on).
        const lastLine = indexer.lineAt(Math.max(0, endOffset - 1));
        let inner = 0;
        for (const field of fields) inner += breaksIn(field);
        yield { fields, line: lastLine - inner };
      }
      await piped;
      if (firstError !== undefined) throw syntaxError(firstError);
    } finally {
      input.destroy();
    }
  }

  return {
    records: records(),
    sha256: () => {
      const digest = indexer.sha256;
      if (digest === undefined) throw new Error(`${file} has not been read to the end yet`);
      return digest;
    },
    bytes: () => indexer.bytes,
  };
}

/** `readCsvRecords` over a file. */
export function readCsvFile(path: string, file: string = path): CsvSource {
  return readCsvRecords(createReadStream(path), file);
}

/** Every record of a small file (a styles file), with its sha256. */
export async function readWholeCsvFile(
  path: string,
  file: string = path,
): Promise<{ readonly records: CsvRecord[]; readonly sha256: string }> {
  const source = readCsvFile(path, file);
  const records: CsvRecord[] = [];
  for await (const record of source.records) records.push(record);
  return { records, sha256: source.sha256() };
}
