/** The runs page (`/`): every run in the ledger, newest first, each as a card that updates live. */
import type { RunCardView } from '../run-views.js';
import { html, type SafeHtml } from './html.js';
import { type LayoutOptions, layout } from './layout.js';
import { runCard } from './run-card.js';

/** What the live events replace: the list of cards. */
export function runsFragment(cards: readonly RunCardView[], prefix: string): SafeHtml {
  if (cards.length === 0) {
    return html`<p class="empty">No runs under DEPTHQ_PREFIX=${prefix} yet: <code>depthq ingest</code> creates one.</p>`;
  }
  return html`${cards.map((card) => runCard(card, { link: true }))}`;
}

export function runsPage(
  cards: readonly RunCardView[],
  prefix: string,
  options: Pick<LayoutOptions, 'allowActions' | 'notice'>,
): SafeHtml {
  return layout(
    { ...options, title: 'Runs', current: 'runs' },
    html`<h1>Runs <small class="muted">under prefix ${prefix}, newest first</small></h1>
<div id="live" class="runs" data-events="/events" aria-live="polite">${runsFragment(cards, prefix)}</div>`,
  );
}
