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

/** Succeeded rows counted per minute of their `finishedAt` (the row's own record of when the image was stored). */
export class CompletionTally {
  readonly #perMinute = new Map<number, number>();

  add(row: ResultRow): void {
    if (row.status !== 'succeeded' || row.finishedAt === undefined) return;
    const at = Date.parse(row.finishedAt);
    if (!Number.isFinite(at)) return;
    const minute = Math.floor(at / MINUTE_MS) * MINUTE_MS;
    this.#perMinute.set(minute, (this.#perMinute.get(minute) ?? 0) + 1);
  }

  /** Minute start (ms since the epoch) → images finished in it. */
  perMinute(): ReadonlyMap<number, number> {
    return new Map(this.#perMinute);
  }
}

export interface ThroughputBar {
  readonly startMs: number;
  readonly minutes: number;
  readonly images: number;
  /** Images per minute over the bar's span. */
  readonly perMinute: number;
}

/**
 * Completions per minute as at most `maxBars` bars of equal width, from the first completion to `endMs` (now, or the
 * last completion of an ended run): one minute a bar for a short run, wider bars for a long one, so the chart keeps its
 * shape whether the run took ten minutes or two days.
 */
export function throughputBars(perMinute: ReadonlyMap<number, number>, endMs: number, maxBars = 60): ThroughputBar[] {
  if (perMinute.size === 0) return [];
  const minutes = [...perMinute.keys()];
  const first = Math.min(...minutes);
  const last = Math.max(Math.max(...minutes), Math.floor(endMs / MINUTE_MS) * MINUTE_MS);
  const spanMinutes = (last - first) / MINUTE_MS + 1;
  const width = Math.max(1, Math.ceil(spanMinutes / maxBars));
  const bars: ThroughputBar[] = [];
  for (let start = first; start <= last; start += width * MINUTE_MS) {
    let images = 0;
    for (let minute = 0; minute < width; minute += 1) images += perMinute.get(start + minute * MINUTE_MS) ?? 0;
    bars.push({ startMs: start, minutes: width, images, perMinute: roundTo(images / width, 2) });
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
