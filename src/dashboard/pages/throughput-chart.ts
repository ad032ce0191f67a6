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

function clock(ms: number): string {
  return new Date(ms).toISOString().slice(11, 16);
}

function dayAndClock(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

export function throughputChart(bars: readonly ThroughputBar[]): SafeHtml {
  if (bars.length === 0) {
    return html`<p class="muted" data-chart="empty">No image has finished yet: the chart starts with the first.</p>`;
  }
  const peak = Math.max(...bars.map((bar) => bar.perMinute), 1);
  const plotWidth = WIDTH - LEFT - 4;
  const plotHeight = HEIGHT - TOP - BOTTOM;
  const step = plotWidth / bars.length;
  const gap = step > 6 ? 2 : 0;
  const first = bars[0];
  const last = bars.at(-1);
  const minutes = first?.minutes ?? 1;
  const rects = bars.map((bar, index) => {
    const height = (bar.perMinute / peak) * plotHeight;
    const x = LEFT + index * step;
    const y = TOP + plotHeight - height;
    return html`<rect class="bar" x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${Math.max(1, step - gap).toFixed(1)}" height="${height.toFixed(1)}"><title>${clock(bar.startMs)} UTC: ${bar.images} images (${bar.perMinute} per minute)</title></rect>`;
  });
  const label = `Images finished per minute, ${minutes === 1 ? 'one bar a minute' : `one bar per ${minutes} minutes`}, peak ${peak}`;
  return html`<figure class="chart">
<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${WIDTH} ${HEIGHT}" role="img" aria-label="${label}" data-chart="throughput" data-bars="${bars.length}">
<line class="axis" x1="${LEFT}" y1="${TOP + plotHeight}" x2="${WIDTH - 4}" y2="${TOP + plotHeight}"/>
<line class="grid" x1="${LEFT}" y1="${TOP}" x2="${WIDTH - 4}" y2="${TOP}"/>
<text class="tick" x="${LEFT - 6}" y="${TOP + 4}" text-anchor="end">${peak}</text>
<text class="tick" x="${LEFT - 6}" y="${TOP + plotHeight}" text-anchor="end">0</text>
${rects}
<text class="tick" x="${LEFT}" y="${HEIGHT - 6}">${first === undefined ? '' : dayAndClock(first.startMs)}</text>
<text class="tick" x="${WIDTH - 4}" y="${HEIGHT - 6}" text-anchor="end">${last === undefined ? '' : clock(last.startMs + last.minutes * 60_000)} UTC</text>
</svg>
<figcaption>${label}.</figcaption>
</figure>`;
}
