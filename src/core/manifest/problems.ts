/**
 * Problems of a manifest, a styles file or a row: where each is (file, line, column) and what to do about it, and how
 * one prints.
 *
 * Pure: no I/O, no clock, no environment.
 */

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

/** A column as the checks hold it: its 0-based position in the record and its header text, trimmed. */
export interface ColumnAt {
  readonly position: number;
  readonly header: string;
}

/** The problem `message` on `line`, placed on `column` (as spreadsheets count) or on the whole line. */
export function problemAt(file: string, line: number, column: ColumnAt | undefined, message: string): ManifestProblem {
  if (column === undefined) return { file, line, message };
  return { file, line, column: { index: column.position + 1, name: column.header }, message };
}

/**
 * Control characters a cell, key or column name brought into a message, written as `\u0007`: printed raw they would
 * vanish, break the line or drive the terminal (an ESC starts a colour or cursor sequence).
 */
export function escapeControlCharacters(text: string): string {
  return text.replace(/\p{Cc}/gu, (character) => `\\u${(character.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}`);
}

/** `manifest.csv:12:3 (steps): message` — file:line:column as compilers print it, so terminals make it a link. */
export function formatManifestProblem(problem: ManifestProblem): string {
  const where = `${problem.file}:${problem.line}`;
  const text =
    problem.column === undefined
      ? `${where}: ${problem.message}`
      : `${where}:${problem.column.index} (${problem.column.name}): ${problem.message}`;
  return escapeControlCharacters(text);
}
