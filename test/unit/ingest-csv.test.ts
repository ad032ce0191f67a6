import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { type CsvRecord, CsvSyntaxError, readCsvRecords } from '../../src/ingest/csv-records.js';

/** Feeds `text` in chunks of `chunkSize` bytes, so line breaks and characters are split across chunk boundaries. */
async function recordsOf(text: string, chunkSize = 1): Promise<{ records: CsvRecord[]; sha256: string }> {
  const bytes = Buffer.from(text, 'utf8');
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < bytes.length; offset += chunkSize)
    chunks.push(bytes.subarray(offset, offset + chunkSize));
  const source = readCsvRecords(Readable.from(chunks), 'm.csv');
  const records: CsvRecord[] = [];
  for await (const record of source.records) records.push(record);
  return { records, sha256: source.sha256() };
}

async function syntaxErrorOf(text: string): Promise<{ error: CsvSyntaxError; before: CsvRecord[] }> {
  const source = readCsvRecords(Readable.from([Buffer.from(text)]), 'm.csv');
  const before: CsvRecord[] = [];
  try {
    for await (const record of source.records) before.push(record);
  } catch (error) {
    if (error instanceof CsvSyntaxError) return { error, before };
    throw error;
  }
  throw new Error('expected a CsvSyntaxError');
}

describe('reading CSV records with their lines', () => {
  it.each([1, 3, 64 * 1024])(
    'numbers lines through a BOM, CRLF, blank lines and quoted newlines (chunks of %i)',
    async (size) => {
      const text =
        '\uFEFFid,prompt\r\n' +
        'a,"first, with a comma"\r\n' +
        '\r\n' +
        'b,"two\r\nlines\r\nhere"\r\n' +
        'c,"unicode: ünïcödé 東京 🏠"\r\n' +
        ',,\r\n' +
        'd,"say ""hi"""';
      const { records, sha256 } = await recordsOf(text, size);
      expect(records).toEqual([
        { line: 1, fields: ['id', 'prompt'] },
        { line: 2, fields: ['a', 'first, with a comma'] },
        { line: 4, fields: ['b', 'two\r\nlines\r\nhere'] },
        { line: 7, fields: ['c', 'unicode: ünïcödé 東京 🏠'] },
        { line: 9, fields: ['d', 'say "hi"'] },
      ]);
      expect(sha256).toBe(createHash('sha256').update(Buffer.from(text, 'utf8')).digest('hex'));
    },
  );

  it('counts LF and lone CR line breaks the same way', async () => {
    const lf = await recordsOf('id,prompt\na,"x\ny"\n\n\nb,z\n');
    expect(lf.records.map((record) => record.line)).toEqual([1, 2, 6]);
    const cr = await recordsOf('id,prompt\ra,b\rc,"d\re"\rf,g');
    expect(cr.records.map((record) => record.line)).toEqual([1, 2, 3, 5]);
  });

  it('reports an unclosed quote on the line its record starts, after yielding the records before it', async () => {
    const { error, before } = await syntaxErrorOf('id,prompt\r\na,"b\r\nc"\r\n\r\nd,"never\nclosed\n');
    expect(before.map((record) => record.line)).toEqual([1, 2]);
    expect(error.line).toBe(5);
    expect(error.message).toContain('m.csv:5: a quoted field that starts in this record is never closed');
  });

  it('reports text after a closing quote and a quote inside an unquoted field', async () => {
    const closing = await syntaxErrorOf('id,prompt\na,b\n\nc,"q"x\nd,e\n');
    expect(closing.error.line).toBe(4);
    expect(closing.error.reason).toContain('write quotes inside it as two');
    const opening = await syntaxErrorOf('id,prompt\na,b\nc,5" nail\n');
    expect(opening.error.line).toBe(3);
    expect(opening.error.reason).toContain('"5"" nail"');
  });
});
