/**
 * Prompt templates: `{prompt}` and `{<manifest column>}` placeholders in a style's prompt, parsed once and rendered
 * per row.
 *
 * Pure: no I/O, no clock, no environment.
 */
import { UsageError } from '../errors.js';

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

/** The template with each placeholder replaced by `value(placeholder)`. */
export function renderPromptTemplate(parts: readonly TemplatePart[], value: (placeholder: string) => string): string {
  return parts.map((part) => ('text' in part ? part.text : value(part.placeholder))).join('');
}
