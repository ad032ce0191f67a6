/**
 * The styles file: one style per line (`style`, a `prompt` template with `{prompt}` and `{<manifest column>}`
 * placeholders, optional model inputs); every manifest row is rendered once per style.
 *
 * Pure: no I/O, no clock, no environment.
 */
import { UsageError } from '../errors.js';
import { objectKeyProblem } from '../keys.js';
import type { InputField, ModelDefinition } from '../models.js';
import { MAX_STYLE_LENGTH } from '../render-job.js';
import { type InputValue, parseInputCell, settableInputs } from './cells.js';
import { type CsvRecordLike, type ManifestLayout, scanHeader, surplusFieldsMessage } from './columns.js';
import { type ManifestProblem, problemAt } from './problems.js';
import { parsePromptTemplate, type TemplatePart } from './prompt-templates.js';
import { likelyMisspellingOf } from './spelling.js';

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

/** What a column of a styles file is; `none` for a column that is reported and not read. */
type StylesColumnRole =
  | { readonly kind: 'style' | 'prompt' | 'none' }
  | { readonly kind: 'input'; readonly name: string; readonly field: InputField };

/** Why `name` cannot be a style (it is part of job ids and output keys), or undefined. */
export function styleNameProblem(name: string): string | undefined {
  if (name === '') return 'is empty: name the style, e.g. modern';
  if (name.length > MAX_STYLE_LENGTH) return `is ${name.length} characters long, over ${MAX_STYLE_LENGTH}`;
  if (name.includes('/')) return `"${name}" contains '/': a style is one folder of the output key; use '-' instead`;
  const problem = objectKeyProblem(name);
  if (problem !== undefined) return `"${name}" cannot be part of an output key: ${problem}`;
  return undefined;
}

function isBlank(record: CsvRecordLike): boolean {
  return record.fields.every((field) => field.trim() === '');
}

/**
 * A styles file (`style`, `prompt` with `{prompt}` and `{<manifest column>}` placeholders, optional model inputs) →
 * its styles, or every problem with line and column. Placeholders are checked against the manifest's header later
 * (`styleTemplateProblems`), once the manifest has been opened.
 */
export function planStyles(records: readonly CsvRecordLike[], file: string, model: ModelDefinition): StylesPlan {
  const [header, ...rows] = records;
  if (header === undefined) {
    return {
      styles: [],
      names: new Set(),
      problems: [{ file, line: 1, message: 'is empty: write a header such as style,prompt and one line per style' }],
    };
  }
  const inputs = settableInputs(model);
  const scanned = scanHeader<StylesColumnRole>(header, file, {
    identity: (cell) => cell.name,
    role: (cell, problem, repeatOf) => {
      if (cell.header === '') {
        problem('has no name: name it, or delete the column');
        return { kind: 'none' };
      }
      if (repeatOf !== undefined) return { kind: 'none' };
      if (cell.name === 'style' || cell.name === 'prompt') return { kind: cell.name };
      const field = inputs.get(cell.name);
      if (field !== undefined) return { kind: 'input', name: cell.name, field };
      const guess = likelyMisspellingOf(cell.name, ['style', 'prompt', ...inputs.keys()]);
      problem(
        guess !== undefined
          ? `is not a styles column: did you mean ${guess}?`
          : `is not a styles column: a styles file has style, prompt and inputs of ${model.id} (${[...inputs.keys()].join(', ')})`,
      );
      return { kind: 'none' };
    },
  });
  const problems = [...scanned.problems];
  const styleColumn = scanned.columns.find((column) => column.role.kind === 'style');
  const promptColumn = scanned.columns.find((column) => column.role.kind === 'prompt');
  const inputColumns = scanned.columns.flatMap((column) =>
    column.role.kind === 'input' ? [{ ...column, role: column.role }] : [],
  );
  if (styleColumn === undefined) {
    problems.push({ file, line: header.line, message: 'has no style column: add one naming each style, e.g. modern' });
  }

  const styles: StyleDefinition[] = [];
  const names = new Set<string>();
  const lineOfName = new Map<string, number>();
  for (const row of rows) {
    if (isBlank(row)) continue;
    const rowProblems: ManifestProblem[] = [];
    const surplus = surplusFieldsMessage(row.fields, header.fields.length);
    if (surplus !== undefined) rowProblems.push(problemAt(file, row.line, undefined, surplus));
    const name = styleColumn === undefined ? '' : (row.fields[styleColumn.position] ?? '').trim();
    if (styleColumn !== undefined) {
      const problem = styleNameProblem(name);
      if (problem !== undefined) rowProblems.push(problemAt(file, row.line, styleColumn, `style ${problem}`));
      const previous = lineOfName.get(name);
      if (name !== '' && previous !== undefined) {
        rowProblems.push(
          problemAt(
            file,
            row.line,
            styleColumn,
            `style "${name}" is also defined on line ${previous}: style names must be unique`,
          ),
        );
      }
      if (name !== '') {
        names.add(name);
        if (previous === undefined) lineOfName.set(name, row.line);
      }
    }
    let prompt: TemplatePart[] | undefined;
    const promptText = promptColumn === undefined ? '' : (row.fields[promptColumn.position] ?? '').trim();
    if (promptColumn !== undefined && promptText !== '') {
      try {
        prompt = parsePromptTemplate(promptText);
      } catch (error) {
        const why = error instanceof UsageError ? error.detail : String(error);
        rowProblems.push(problemAt(file, row.line, promptColumn, `prompt ${why}`));
      }
    }
    const styleInputs: Record<string, InputValue> = {};
    for (const column of inputColumns) {
      const parsed = parseInputCell(column.role.name, column.role.field, row.fields[column.position] ?? '');
      if (!parsed.ok) rowProblems.push(problemAt(file, row.line, column, parsed.message));
      else if (parsed.value !== undefined) styleInputs[column.role.name] = parsed.value;
    }
    problems.push(...rowProblems);
    if (rowProblems.length === 0 && styleColumn !== undefined) {
      styles.push({ name, line: row.line, prompt, inputs: styleInputs });
    }
  }
  if (rows.every(isBlank) && styleColumn !== undefined) {
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
