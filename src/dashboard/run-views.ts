/**
 * The dashboard's view models: what the runs page and a run page show, computed from the ledger's counts, money and
 * rows. Pure: the reading is `run-data.ts`, the markup `pages/`. Throughput, parked reasons and the ETA come from
 * `StatusTally` in src/runs/run-status.ts (the numbers `depthq status` prints); this adds what only a page shows — a
 * progress bar, failures grouped by reason, completions per minute for the chart, and the latest outputs.
 */
import { formatUsd, type Micros } from '../core/money.js';
import { redactUrl } from '../core/redact.js';
import type { ResultRow } from '../ledger/run-ledger.js';
import {
  endedOf,
  formatEta,
  formatMoney,
  formatRate,
  hasEnded,
  type RunStatus,
  type StateCounts,
  type StatusState,
} from '../runs/run-status.js';

/** The bar's segments, left to right: ended states first, then what is still to come. */
const BAR_STATES = ['succeeded', 'failed', 'flagged', 'canceled', 'running', 'parked', 'waiting'] as const;

export interface BarSegment {
  readonly state: StatusState;
  readonly count: number;
  /** Share of all jobs, 0–100, two decimals. */
  readonly percent: number;
}

export interface RunCardView {
  readonly run: string;
  readonly state: RunStatus['state'];
  readonly ended: boolean;
  readonly model: string;
  readonly createdAt: string;
  /** Ended jobs as a share of all, 0–100, one decimal. */
  readonly percentEnded: number;
  readonly segments: readonly BarSegment[];
  readonly counts: StateCounts;
  readonly parkedByReason: Readonly<Record<string, number>>;
  readonly spent: string;
  readonly budget: string;
  readonly moneyLine: string;
  readonly rate: string;
  readonly eta: string;
  /** Why the run paused itself, when it did. */
  readonly pauseNote?: string;
}

function roundTo(value: number, decimals: number): number {
  const factor = 10 ** decimals;
  return Math.round(value * factor) / factor;
}

export function barSegmentsOf(counts: StateCounts): BarSegment[] {
  if (counts.total <= 0) return [];
  return BAR_STATES.filter((state) => counts[state] > 0).map((state) => ({
    state,
    count: counts[state],
    percent: roundTo((counts[state] / counts.total) * 100, 2),
  }));
}

export function runCardOf(status: RunStatus): RunCardView {
  const total = status.counts.total;
  return {
    run: status.run,
    state: status.state,
    ended: hasEnded(status.counts),
    model: status.meta.model,
    createdAt: status.meta.createdAt,
    percentEnded: total === 0 ? 100 : roundTo((endedOf(status.counts) / total) * 100, 1),
    segments: barSegmentsOf(status.counts),
    counts: status.counts,
    parkedByReason: status.parkedByReason,
    spent: formatUsd(status.money.spent),
    budget: status.money.budget === null ? 'unlimited' : formatUsd(status.money.budget),
    moneyLine: formatMoney(status.money),
    rate: formatRate(status.imagesPerMinute),
    eta: formatEta(status),
    ...(status.pause === undefined
      ? {}
      : {
          pauseNote: `paused by depthq (${status.pause.reason}, ${status.pause.at}): ${scrubSecrets(status.pause.message)}`,
        }),
  };
}

// ---------------------------------------------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------------------------------------------

const URL_IN_TEXT = /\bhttps?:\/\/[^\s"'<>]+/g;

/**
 * Text from the ledger (an error, a pause cause) with every URL cut before its query string: a presigned S3 URL's
 * signature or a token in a query never reaches a page or an event.
 */
export function scrubSecrets(text: string): string {
  return text.replace(URL_IN_TEXT, (url) => redactUrl(url));
}

/** A JSON value (a provenance sidecar) with `scrubSecrets` applied to every string in it. */
export function scrubJson(value: unknown): unknown {
  if (typeof value === 'string') return scrubSecrets(value);
  if (Array.isArray(value)) return value.map(scrubJson);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, scrubJson(item)]));
  }
  return value;
}

// ---------------------------------------------------------------------------------------------------------------------
// Failures grouped by reason
// ---------------------------------------------------------------------------------------------------------------------

export interface FailureGroup {
  /** The row's reason word (`flagged`, `account`, `fatal` …), else its status. */
  readonly reason: string;
  readonly status: 'failed' | 'flagged';
  readonly count: number;
  /** One error text of the group (the first seen), scrubbed and shortened, to say what the reason means here. */
  readonly example?: string;
}

const EXAMPLE_LENGTH = 300;

/** Failed and flagged rows counted by status and reason, most frequent first. */
export class FailureTally {
  readonly #groups = new Map<
    string,
    { reason: string; status: 'failed' | 'flagged'; count: number; example?: string }
  >();

  add(row: ResultRow): void {
    if (row.status !== 'failed' && row.status !== 'flagged') return;
    const reason = row.reason ?? row.status;
    const key = `${row.status}\u0000${reason}`;
    const group = this.#groups.get(key) ?? { reason, status: row.status, count: 0 };
    group.count += 1;
    if (group.example === undefined && row.error !== undefined && row.error.trim() !== '') {
      const text = scrubSecrets(row.error.trim());
      group.example = text.length > EXAMPLE_LENGTH ? `${text.slice(0, EXAMPLE_LENGTH - 1)}…` : text;
    }
    this.#groups.set(key, group);
  }

  groups(): FailureGroup[] {
    return [...this.#groups.values()]
      .map((group) => ({ ...group }))
      .sort((a, b) => b.count - a.count || a.reason.localeCompare(b.reason));
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// Throughput over time
// ---------------------------------------------------------------------------------------------------------------------

const MINUTE_MS = 60_000;
/** The finest time slot completions are counted in: a short demo run still gets a chart of several bars. */
export const COMPLETION_SLOT_MS = 10_000;
/** Bar widths a chart picks from: the finest that keeps the run within `maxBars`. */
const BAR_WIDTHS_MS = [10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21_600, 43_200, 86_400].map((s) => s * 1000);

/** Succeeded rows counted per 10-second slot of their `finishedAt` (the row's own record of when the image was stored). */
export class CompletionTally {
  readonly #perSlot = new Map<number, number>();

  add(row: ResultRow): void {
    if (row.status !== 'succeeded' || row.finishedAt === undefined) return;
    const at = Date.parse(row.finishedAt);
    if (!Number.isFinite(at)) return;
    const slot = Math.floor(at / COMPLETION_SLOT_MS) * COMPLETION_SLOT_MS;
    this.#perSlot.set(slot, (this.#perSlot.get(slot) ?? 0) + 1);
  }

  /** Slot start (ms since the epoch) → images finished in it. */
  perSlot(): ReadonlyMap<number, number> {
    return new Map(this.#perSlot);
  }
}

export interface ThroughputBar {
  readonly startMs: number;
  readonly widthMs: number;
  readonly images: number;
  /** Images per minute over the bar's span, two decimals. */
  readonly perMinute: number;
}

/**
 * Completions as at most `maxBars` bars of one width, from the first completion to `endMs` (now, or the last completion
 * of an ended run): the finest of 10 s, 30 s, 1 min … 1 day that fits, so the chart keeps its shape whether the run took
 * a minute or two days. Bars start on multiples of their width (00:05:00, 00:10:00 …).
 */
export function throughputBars(perSlot: ReadonlyMap<number, number>, endMs: number, maxBars = 60): ThroughputBar[] {
  if (perSlot.size === 0) return [];
  const slots = [...perSlot.keys()];
  const first = Math.min(...slots);
  const end = Math.max(Math.max(...slots) + COMPLETION_SLOT_MS, endMs);
  const fits = (width: number) => Math.ceil(end / width) - Math.floor(first / width) <= maxBars;
  const widthMs = BAR_WIDTHS_MS.find(fits) ?? Math.ceil((end - first) / maxBars / 86_400_000) * 86_400_000;
  const totals = new Map<number, number>();
  for (const [slot, images] of perSlot) {
    const start = Math.floor(slot / widthMs) * widthMs;
    totals.set(start, (totals.get(start) ?? 0) + images);
  }
  const bars: ThroughputBar[] = [];
  for (let start = Math.floor(first / widthMs) * widthMs; start < end; start += widthMs) {
    const images = totals.get(start) ?? 0;
    bars.push({ startMs: start, widthMs, images, perMinute: roundTo((images / widthMs) * MINUTE_MS, 2) });
  }
  return bars;
}

// ---------------------------------------------------------------------------------------------------------------------
// Latest outputs
// ---------------------------------------------------------------------------------------------------------------------

export interface GalleryItem {
  readonly jobId: string;
  readonly rowId: string;
  readonly style: string | null;
  readonly seed?: number;
  readonly cost?: string;
  readonly finishedAt: string;
}

/** The `limit` succeeded rows that finished last, newest first, kept while the rows stream past. */
export class LatestOutputs {
  readonly #limit: number;
  #items: Array<GalleryItem & { readonly atMs: number }> = [];

  constructor(limit: number) {
    this.#limit = limit;
  }

  add(jobId: string, row: ResultRow): void {
    if (row.status !== 'succeeded' || row.outputKey === undefined || row.finishedAt === undefined) return;
    const atMs = Date.parse(row.finishedAt);
    if (!Number.isFinite(atMs)) return;
    const oldest = this.#items.at(-1);
    if (this.#items.length >= this.#limit && oldest !== undefined && atMs <= oldest.atMs) return;
    this.#items.push({
      jobId,
      rowId: row.rowId,
      style: row.style,
      ...(row.seed === undefined ? {} : { seed: row.seed }),
      ...(row.costMicros === undefined ? {} : { cost: formatUsd(row.costMicros as Micros) }),
      finishedAt: row.finishedAt,
      atMs,
    });
    // Ties broken by job id so two scans of the same rows show the same gallery.
    this.#items.sort((a, b) => b.atMs - a.atMs || a.jobId.localeCompare(b.jobId));
    if (this.#items.length > this.#limit) this.#items = this.#items.slice(0, this.#limit);
  }

  items(): GalleryItem[] {
    return this.#items.map(({ atMs: _atMs, ...item }) => item);
  }
}
