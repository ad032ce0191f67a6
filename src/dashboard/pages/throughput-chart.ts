/**
 * The throughput chart of a run page: images finished per minute over time, as an inline SVG drawn on the server (no
 * script, no chart library), one bar per `ThroughputBar`.
 */
import type { ThroughputBar } from '../run-views.js';
import { html, type SafeHtml } from './html.js';

const WIDTH = 720;
const HEIGHT = 180;
const LEFT = 44;
const BOTTOM = 22;
const TOP = 10;
const MIN_SLOTS = 24;

function clock(ms: number): string {
  return new Date(ms).toISOString().slice(11, 19);
}

/** `10 s`, `5 min`, `2 h`, `1 d`. */
export function spanText(ms: number): string {
  if (ms < 60_000) return `${ms / 1000} s`;
  if (ms < 3_600_000) return `${ms / 60_000} min`;
  if (ms < 86_400_000) return `${ms / 3_600_000} h`;
  return `${ms / 86_400_000} d`;
}

function dayAndClock(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19).replace('T', ' ');
}

export function throughputChart(bars: readonly ThroughputBar[]): SafeHtml {
  if (bars.length === 0) {
    return html`<p class="muted" data-chart="empty">No image has finished yet: the chart starts with the first.</p>`;
  }
  const peak = Math.max(...bars.map((bar) => bar.perMinute), 1);
  const plotWidth = WIDTH - LEFT - 4;
  const plotHeight = HEIGHT - TOP - BOTTOM;
  // At least MIN_SLOTS slots: two bars of a short run are bars, not two halves of the chart.
  const step = plotWidth / Math.max(bars.length, MIN_SLOTS);
  const gap = step > 6 ? 2 : 0;
  const first = bars[0];
  const last = bars.at(-1);
  const widthMs = first?.widthMs ?? 60_000;
  const rects = bars.map((bar, index) => {
    const height = (bar.perMinute / peak) * plotHeight;
    const x = LEFT + index * step;
    const y = TOP + plotHeight - height;
    return html`<rect class="bar" x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${Math.max(1, step - gap).toFixed(1)}" height="${height.toFixed(1)}"><title>${clock(bar.startMs)} UTC: ${bar.images} images (${bar.perMinute} per minute)</title></rect>`;
  });
  const startText = first === undefined ? '' : dayAndClock(first.startMs);
  const endText = last === undefined ? '' : `${clock(last.startMs + last.widthMs)} UTC`;
  const barsEnd = LEFT + bars.length * step;
  // Under a few bars there is no room for two labels: one says from when to when.
  const timeAxis =
    barsEnd - LEFT < 300
      ? html`<text class="tick" x="${LEFT}" y="${HEIGHT - 6}">${startText} – ${endText}</text>`
      : html`<text class="tick" x="${LEFT}" y="${HEIGHT - 6}">${startText} UTC</text><text class="tick" x="${barsEnd.toFixed(1)}" y="${HEIGHT - 6}" text-anchor="end">${endText}</text>`;
  const label = `Images finished per minute, one bar per ${spanText(widthMs)}, peak ${peak}`;
  return html`<figure class="chart">
<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${WIDTH} ${HEIGHT}" role="img" aria-label="${label}" data-chart="throughput" data-bars="${bars.length}">
<line class="axis" x1="${LEFT}" y1="${TOP + plotHeight}" x2="${WIDTH - 4}" y2="${TOP + plotHeight}"/>
<line class="grid" x1="${LEFT}" y1="${TOP}" x2="${WIDTH - 4}" y2="${TOP}"/>
<text class="tick" x="${LEFT - 6}" y="${TOP + 4}" text-anchor="end">${peak}</text>
<text class="tick" x="${LEFT - 6}" y="${TOP + plotHeight}" text-anchor="end">0</text>
${rects}
${timeAxis}
</svg>
<figcaption>${label}.</figcaption>
</figure>`;
}
