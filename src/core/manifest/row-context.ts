/**
 * What a manifest row is read against (the header's layout, the styles, the run's defaults and output, the claims of
 * earlier rows) and what reading it gives (its jobs, or every problem of it), and where a problem that
 * `buildRenderJob` found belongs.
 *
 * Pure: no I/O, no clock, no environment.
 */
import type { ModelDefinition } from '../models.js';
import type { RenderJob } from '../render-job.js';
import type { InputValue } from './cells.js';
import type { ManifestClaims } from './claims.js';
import type { ManifestColumn, ManifestLayout } from './columns.js';
import { type ManifestProblem, problemAt } from './problems.js';
import type { TemplatePart } from './prompt-templates.js';
import type { S3Location } from './s3-locations.js';
import type { StyleDefinition } from './styles.js';

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
export interface RowStyle {
  readonly name: string | null;
  readonly prompt: readonly TemplatePart[] | undefined;
  readonly inputs: Readonly<Record<string, InputValue>>;
}

/** A problem `buildRenderJob` found, placed on the column that caused it. */
export function mapBuildProblem(
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
    // The key's own messages say "output key …" already.
    prefix = problem.message.startsWith('output key') ? '' : 'output key: ';
  }
  return problemAt(file, line, column, `${prefix}${problem.message}`);
}
