/**
 * The dashboard's HTML templating: a tagged template that escapes every interpolated value unless it is markup made by
 * this same tag, so a run id, an error text or a row id from a manifest can never become markup on a page.
 *
 * Pure.
 */
import { escapeHtml } from '../../core/html-escape.js';

/** Markup this module made (escaped already); anything else interpolated into `html` is escaped. */
export class SafeHtml {
  readonly text: string;

  constructor(text: string) {
    this.text = text;
  }

  toString(): string {
    return this.text;
  }
}

export type HtmlValue = SafeHtml | string | number | null | undefined | false | readonly HtmlValue[];

function render(value: HtmlValue): string {
  if (value instanceof SafeHtml) return value.text;
  if (value === null || value === undefined || value === false) return '';
  if (Array.isArray(value)) return value.map(render).join('');
  return escapeHtml(String(value));
}

/** `html\`<p>${text}</p>\``: values are escaped, nested `html` results and arrays of them are kept as markup. */
export function html(strings: TemplateStringsArray, ...values: readonly HtmlValue[]): SafeHtml {
  let out = strings[0] ?? '';
  values.forEach((value, index) => {
    out += render(value) + (strings[index + 1] ?? '');
  });
  return new SafeHtml(out);
}

/** A path segment for a URL on a page: percent-encoded (job ids hold `~` and `.`, run ids `.`), then escaped. */
export function segment(text: string): string {
  return encodeURIComponent(text);
}
