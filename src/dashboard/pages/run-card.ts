/**
 * A run's card: the progress bar, counts by state, spent against budget, images per minute, ETA and state — the same
 * markup on the runs page (one per run) and at the top of a run page, so both update the same way.
 */
import { STATUS_STATES } from '../../runs/run-status.js';
import type { RunCardView } from '../run-views.js';
import { html, type SafeHtml, segment } from './html.js';

function progressBar(card: RunCardView): SafeHtml {
  const segments = card.segments.map(
    (part) =>
      html`<span class="seg seg-${part.state}" style="width:${part.percent}%" title="${part.state} ${part.count}"></span>`,
  );
  return html`<div class="progress" role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow="${card.percentEnded}" aria-label="${card.percentEnded}% of ${card.counts.total} jobs ended" data-percent="${card.percentEnded}">${segments}</div>`;
}

function counts(card: RunCardView): SafeHtml {
  const parked = Object.entries(card.parkedByReason)
    .filter(([, count]) => count > 0)
    .map(([reason, count]) => `${reason} ${count}`)
    .join(', ');
  const items = STATUS_STATES.map(
    (state) =>
      html`<div class="count count-${state}"><dt>${state}</dt><dd data-count="${state}">${card.counts[state]}${state === 'parked' && parked !== '' ? html` <small>(${parked})</small>` : ''}</dd></div>`,
  );
  return html`<dl class="counts"><div class="count"><dt>total</dt><dd data-count="total">${card.counts.total}</dd></div>${items}</dl>`;
}

/** `link`: the run id links to its page (the runs page); a run page's own card does not link to itself. */
export function runCard(card: RunCardView, options: { readonly link: boolean }): SafeHtml {
  const title = options.link ? html`<a href="/runs/${segment(card.run)}">${card.run}</a>` : card.run;
  return html`<article class="run" data-run="${card.run}" data-state="${card.state}">
<header class="run-head"><h2>${title}</h2> <span class="state state-${card.state}" data-field="state">${card.state}${card.ended ? ' · ended' : ''}</span>
<span class="muted">${card.model} · created ${card.createdAt.slice(0, 19).replace('T', ' ')} UTC</span></header>
${card.pauseNote === undefined ? '' : html`<p class="pause-note">${card.pauseNote}</p>`}
${progressBar(card)}
<p class="figures"><span data-field="percent">${card.percentEnded}% ended</span> · <span data-field="spent">spent ${card.spent} of ${card.budget}</span> · <span data-field="rate">${card.rate}</span> · <span data-field="eta">${card.eta}</span></p>
${counts(card)}
</article>`;
}
