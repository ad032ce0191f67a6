/**
 * Escaping text for HTML (element content and quoted attribute values): the one rule for the contact sheet
 * (src/runs/contact-sheet.ts) and the dashboard's templates (src/dashboard/pages/html.ts). Pure.
 */

const HTML_ESCAPES: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (character) => HTML_ESCAPES[character] ?? character);
}
