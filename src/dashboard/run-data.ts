/**
 * What the dashboard reads from the run ledger (never from BullMQ, whose finished jobs may be pruned): one scan of a
 * run's rows gives its status (`StatusTally`, the numbers of `depthq status`), its failures by reason, its completions
 * per minute and its latest outputs.
 *
 * A scan of 100k rows takes a second or two, and every open page asks for fresh data every second, so scans are shared
 * and spaced: a run's data is read again only when it is older than `minIntervalMs` and older than `costFactor` times
 * its last scan took (a small run refreshes every second, a huge one every several seconds); page views and live events
 * that ask in between get the same reading, and concurrent asks share one scan.
 */
import type { RunLedger, RunMeta } from '../ledger/run-ledger.js';
import { hasEnded, type RunStatus, readRunCounts, StatusTally } from '../runs/run-status.js';
import {
  CompletionTally,
  type FailureGroup,
  FailureTally,
  type GalleryItem,
  LatestOutputs,
  type RunCardView,
  runCardOf,
  type ThroughputBar,
  throughputBars,
} from './run-views.js';

export interface RunDetail {
  readonly status: RunStatus;
  readonly card: RunCardView;
  readonly failures: readonly FailureGroup[];
  readonly throughput: readonly ThroughputBar[];
  readonly gallery: readonly GalleryItem[];
}

export interface RunDataOptions {
  /** Outputs in a run page's gallery. @defaultValue 12 */
  readonly galleryLimit?: number;
  /** @defaultValue 1000 */
  readonly minIntervalMs?: number;
  /** @defaultValue 5 */
  readonly costFactor?: number;
  readonly now?: () => number;
}

/** One scan of the run's rows, after one read of its counters and money. */
export async function readRunDetail(
  ledger: RunLedger,
  run: string,
  meta: RunMeta,
  options: Pick<RunDataOptions, 'galleryLimit' | 'now'> = {},
): Promise<RunDetail> {
  const counts = await readRunCounts(ledger, run, options.now);
  const tally = new StatusTally(counts.observedAtMs);
  const failures = new FailureTally();
  const completions = new CompletionTally();
  const latest = new LatestOutputs(options.galleryLimit ?? 12);
  for await (const { jobId, row } of ledger.results(run)) {
    tally.add(row);
    failures.add(row);
    completions.add(row);
    latest.add(jobId, row);
  }
  const status = tally.statusOf(counts, meta);
  const perSlot = completions.perSlot();
  // An ended run's chart stops at its last completion rather than stretching to now.
  const endMs = hasEnded(status.counts) ? 0 : counts.observedAtMs;
  return {
    status,
    card: runCardOf(status),
    failures: failures.groups(),
    throughput: throughputBars(perSlot, endMs),
    gallery: latest.items(),
  };
}

interface CacheEntry {
  readAtMs: number;
  tookMs: number;
  value: RunDetail | undefined;
  reading?: Promise<RunDetail | undefined>;
}

export class RunDataCache {
  readonly #ledger: RunLedger;
  readonly #options: RunDataOptions;
  readonly #now: () => number;
  readonly #entries = new Map<string, CacheEntry>();

  constructor(ledger: RunLedger, options: RunDataOptions = {}) {
    this.#ledger = ledger;
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  /** The run's data, or `undefined` when the ledger has no such run. */
  detail(run: string): Promise<RunDetail | undefined> {
    const entry = this.#entries.get(run);
    if (entry?.reading !== undefined) return entry.reading;
    const maxAge = Math.max(
      this.#options.minIntervalMs ?? 1000,
      (this.#options.costFactor ?? 5) * (entry?.tookMs ?? 0),
    );
    if (entry !== undefined && this.#now() - entry.readAtMs < maxAge) return Promise.resolve(entry.value);
    const startedMs = this.#now();
    const reading = (async () => {
      const meta = await this.#ledger.getRun(run);
      return meta === undefined ? undefined : readRunDetail(this.#ledger, run, meta, this.#options);
    })();
    const next: CacheEntry = {
      readAtMs: entry?.readAtMs ?? 0,
      tookMs: entry?.tookMs ?? 0,
      value: entry?.value,
      reading,
    };
    this.#entries.set(run, next);
    return reading.then(
      (value) => {
        this.#entries.set(run, { readAtMs: this.#now(), tookMs: this.#now() - startedMs, value });
        return value;
      },
      (error: unknown) => {
        // A failed read is not cached: the next ask tries again.
        this.#entries.delete(run);
        throw error;
      },
    );
  }

  /** Every run's card, newest first (by creation, as `depthq runs` lists them). */
  async overview(): Promise<RunCardView[]> {
    const cards: RunCardView[] = [];
    for (const run of await this.#ledger.listRuns()) {
      // The index can name a run whose keys were deleted by hand: it is not a run any more.
      const detail = await this.detail(run);
      if (detail !== undefined) cards.push(detail.card);
    }
    return cards.sort((a, b) =>
      a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : a.run.localeCompare(b.run),
    );
  }
}
