/**
 * A CSV file's first bytes checked for what depthq cannot read as UTF-8 text: UTF-16 and UTF-32 (what Excel's
 * "Unicode Text" and some Windows tools write), a spreadsheet workbook saved under a .csv name, other binary files.
 * Read as UTF-8, each would turn into missing columns or garbled cells on every line instead of one clear message.
 *
 * Pure: no I/O.
 */

/** Enough of the file's start to tell: the sniffing looks at no more. */
export const ENCODING_SNIFF_BYTES = 4096;

const saveAsUtf8 =
  'save it as UTF-8 (in Excel: File › Save As › "CSV UTF-8 (Comma delimited)"; in other editors: encoding UTF-8) and ingest again';

function startsWith(bytes: Uint8Array, signature: readonly number[]): boolean {
  return bytes.length >= signature.length && signature.every((byte, index) => bytes[index] === byte);
}

/** What the file is instead of UTF-8 text, said after its name (`shots.csv:1: is UTF-16 text…`), or undefined. */
export function textEncodingProblem(first: Uint8Array): string | undefined {
  const head = first.subarray(0, ENCODING_SNIFF_BYTES);
  if (startsWith(head, [0xff, 0xfe, 0x00, 0x00]) || startsWith(head, [0x00, 0x00, 0xfe, 0xff])) {
    return `is UTF-32 text (it starts with a UTF-32 byte-order mark), and depthq reads CSV as UTF-8: ${saveAsUtf8}`;
  }
  if (startsWith(head, [0xff, 0xfe]) || startsWith(head, [0xfe, 0xff])) {
    return `is UTF-16 text (it starts with a UTF-16 byte-order mark), and depthq reads CSV as UTF-8: ${saveAsUtf8}`;
  }
  if (startsWith(head, [0x50, 0x4b, 0x03, 0x04])) {
    return 'is a ZIP archive (an Excel .xlsx workbook or another document), not CSV text: in Excel, File › Save As › "CSV UTF-8 (Comma delimited)"';
  }
  if (startsWith(head, [0xd0, 0xcf, 0x11, 0xe0])) {
    return 'is an Excel 97–2003 workbook (.xls), not CSV text: in Excel, File › Save As › "CSV UTF-8 (Comma delimited)"';
  }
  let evenZeros = 0;
  let oddZeros = 0;
  for (const [index, byte] of head.entries()) {
    if (byte !== 0) continue;
    if (index % 2 === 0) evenZeros++;
    else oddZeros++;
  }
  if (evenZeros + oddZeros === 0) return undefined;
  // ASCII in UTF-16 without a byte-order mark: every other byte is zero.
  const half = head.length / 2;
  if (oddZeros > half * 0.3 || evenZeros > half * 0.3) {
    return `is UTF-16 text without a byte-order mark (every other byte is zero), and depthq reads CSV as UTF-8: ${saveAsUtf8}`;
  }
  return 'holds NUL bytes, so it is a binary file, not CSV text: export the manifest from its spreadsheet as "CSV UTF-8"';
}
