/**
 * The frame every dashboard page shares: head, navigation, the notice of the last action, and the one stylesheet and
 * script (served by the app from `assets.ts`, so the Content-Security-Policy needs no inline script).
 */
import { type HtmlValue, html, type SafeHtml } from './html.js';

export interface LayoutOptions {
  readonly title: string;
  /** Which navigation entry is the current page. */
  readonly current: 'runs' | 'run';
  readonly allowActions: boolean;
  /** The outcome of the action just taken (after its redirect), shown once. */
  readonly notice?: { readonly kind: 'ok' | 'error'; readonly text: string };
}

export function layout(options: LayoutOptions, body: HtmlValue): SafeHtml {
  const mode = options.allowActions
    ? html`<span class="mode mode-actions" title="started with --allow-actions">actions enabled</span>`
    : html`<span class="mode" title="start with --allow-actions to pause, resume, cancel, budget and retry from here">read-only</span>`;
  const notice =
    options.notice === undefined
      ? ''
      : html`<p class="notice notice-${options.notice.kind}" role="status">${options.notice.text}</p>`;
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>${options.title} · depthq</title>
<link rel="stylesheet" href="/assets/dashboard.css">
<script src="/assets/live.js" defer></script>
</head>
<body>
<header class="top">
<a class="brand" href="/">depthq</a>
<nav><a href="/"${options.current === 'runs' ? html` aria-current="page"` : ''}>Runs</a> <a href="/queues">Queue (bull-board)</a></nav>
${mode}
</header>
<main>
${notice}
${body}
</main>
</body>
</html>
`;
}
