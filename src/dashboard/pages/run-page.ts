/**
 * A run's page (`/runs/:run`): its card, parked reasons, failures grouped by reason, the throughput chart and a gallery
 * of its latest outputs beside their control images — all in the live region — and, with `--allow-actions`, the
 * controls (outside it, so an update never clears a half-typed budget).
 */
import type { RunDetail } from '../run-data.js';
import type { FailureGroup, GalleryItem } from '../run-views.js';
import { html, type SafeHtml, segment } from './html.js';
import { type LayoutOptions, layout } from './layout.js';
import { runCard } from './run-card.js';
import { throughputChart } from './throughput-chart.js';

function failures(groups: readonly FailureGroup[]): SafeHtml {
  if (groups.length === 0) return html`<p class="muted" data-failures="none">No job has failed.</p>`;
  const rows = groups.map(
    (group) =>
      html`<tr data-reason="${group.reason}"><td>${group.status}</td><td><strong>${group.reason}</strong></td><td class="num">${group.count}</td><td class="example">${group.example ?? ''}</td></tr>`,
  );
  return html`<table class="failures"><thead><tr><th>status</th><th>reason</th><th class="num">jobs</th><th>for example</th></tr></thead><tbody>${rows}</tbody></table>`;
}

function galleryItem(run: string, item: GalleryItem): SafeHtml {
  const base = `/runs/${segment(run)}`;
  const job = segment(item.jobId);
  const caption = [item.seed === undefined ? '' : `seed ${item.seed}`, item.cost ?? ''].filter((part) => part !== '');
  return html`<figure class="output" id="job-${item.jobId}" data-job="${item.jobId}">
<div class="pair"><img src="${base}/thumbnails/${job}/control" alt="control image of ${item.rowId}" width="160" height="120"><img src="${base}/thumbnails/${job}/output" alt="output of ${item.rowId}${item.style === null ? '' : ` in ${item.style}`}" width="160" height="120"></div>
<figcaption><strong>${item.rowId}</strong>${item.style === null ? '' : html` · ${item.style}`}<br>${caption.join(' · ')} · <a href="${base}/jobs/${job}/sidecar">provenance</a></figcaption>
</figure>`;
}

export function runFragment(detail: RunDetail): SafeHtml {
  const run = detail.status.run;
  const gallery =
    detail.gallery.length === 0
      ? html`<p class="muted">No output yet.</p>`
      : html`<div class="gallery">${detail.gallery.map((item) => galleryItem(run, item))}</div>`;
  return html`${runCard(detail.card, { link: false })}
<p class="muted">${detail.card.moneyLine}</p>
<section><h2>Failures by reason</h2>${failures(detail.failures)}</section>
<section><h2>Throughput</h2>${throughputChart(detail.throughput)}</section>
<section><h2>Latest outputs</h2>${gallery}</section>`;
}

function actions(run: string): SafeHtml {
  const base = `/runs/${segment(run)}`;
  return html`<section class="actions" aria-label="actions">
<form method="post" action="${base}/pause"><button type="submit" data-action="pause">Pause</button></form>
<form method="post" action="${base}/resume"><button type="submit" data-action="resume">Resume</button></form>
<form method="post" action="${base}/retry"><button type="submit" data-action="retry">Retry failed jobs</button></form>
<form method="post" action="${base}/budget"><label>Budget (USD or "unlimited") <input name="usd" required size="10" autocomplete="off"></label> <button type="submit" data-action="budget">Set budget</button></form>
<form method="post" action="${base}/cancel" class="danger"><label>Cancel is final: type the run id to confirm <input name="confirm" required autocomplete="off" placeholder="${run}"></label> <button type="submit" data-action="cancel">Cancel run</button></form>
</section>`;
}

export function runPage(detail: RunDetail, options: Pick<LayoutOptions, 'allowActions' | 'notice'>): SafeHtml {
  const run = detail.status.run;
  return layout(
    { ...options, title: `Run ${run}`, current: 'run' },
    html`<h1>Run ${run}</h1>
${options.allowActions ? actions(run) : ''}
<div id="live" data-events="/runs/${segment(run)}/events" aria-live="polite">${runFragment(detail)}</div>`,
  );
}
