/**
 * The manifest's rules: one CSV record → the render jobs it asks for, or every problem of the record, each with its line,
 * column and a message that says what is wrong and what to write instead. Also the header (which column is what), the
 * styles file (one job per row × style), the typed reading of cells ("TRUE", "1.0", " 20 ") and `s3://` locations.
 *
 * Reading the file (streaming, line numbers), S3 and Redis live in src/ingest; everything here is pure so that every
 * rule is unit-tested without a server, and a row refused here is never paid for.
 *
 * The rooms: problems.ts (where a problem is, how it prints), cells.ts (typed cells, `--set`), s3-locations.ts,
 * prompt-templates.ts, spelling.ts (likely misspellings), columns.ts (the one header scanner of manifests and styles
 * files, the field-count check, the manifest's header), styles.ts, claims.ts (uniqueness inside one manifest),
 * row-context.ts, output-keys.ts and rows.ts (one record → its jobs).
 *
 * Pure: no I/O, no clock, no environment (hashing only).
 */
export { type InputValue, type ParsedCell, parseInputCell, parseInputDefaults, settableInputs } from './cells.js';
export { ManifestClaims } from './claims.js';
export {
  type ColumnRole,
  type CsvRecordLike,
  type HeaderContext,
  MANIFEST_COLUMNS,
  type ManifestColumn,
  type ManifestColumnName,
  type ManifestLayout,
  normaliseColumnName,
  planManifestColumns,
} from './columns.js';
export { formatManifestProblem, type ManifestColumnRef, type ManifestProblem } from './problems.js';
export { parsePromptTemplate, type TemplatePart, usesPlaceholder } from './prompt-templates.js';
export type { ManifestContext, ManifestRow } from './row-context.js';
export { manifestRowJobs } from './rows.js';
export { type ParsedLocation, parseS3Location, type S3Location } from './s3-locations.js';
export { likelyMisspellingOf } from './spelling.js';
export {
  planStyles,
  type StyleDefinition,
  type StylesPlan,
  styleNameProblem,
  styleTemplateProblems,
} from './styles.js';
