/**
 * What the dashboard reads from the run ledger (never from BullMQ, whose finished jobs may be pruned): one scan of a
 * run's rows gives its status (`StatusTally`, the numbers of `depthq status`), its failures by reason, its completions
 * per minute and its latest outputs.
 *
 * Every open page asks for fresh data every second, and a scan of 100k rows takes seconds (docs/dashboard.md, `npm run
 * bench:dashboard`), so the two parts are read apart: the counters, money and state (a few keys) at most once a
 * `minIntervalMs` — the card, progress bar and ETA follow the run every second whatever its size — and the scan
 * (rate, parked reasons, failures, chart, gallery) in the background once it is older than `minIntervalMs` and
 * `costFactor` times its last duration, so a huge run costs Redis and this process a bounded share of their time.
 * Pages and events that ask in between share the readings.
 */
import { type RunLedger, type RunMeta, RunNotFoundError } from '../ledger/run-ledger.js';
import { etaOf, hasEnded, type RunCounts, type RunStatus, readRunCounts, StatusTally } from '../runs/run-status.js';
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
  /** Told of a failed background refresh (the page keeps the last reading). */
  readonly onBackgroundError?: (error: unknown) => void;
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

/**
 * The scanned detail with newer counters, money and state: the card and the ETA follow every second while the scan
 * (rate, parked reasons, failures, chart, gallery) is as old as its last refresh.
 */
export function withFreshCounts(scanned: RunDetail, counts: RunCounts): RunDetail {
  if (counts.observedAtMs <= scanned.status.observedAtMs) return scanned;
  const { pause: _pause, etaNote: _etaNote, ...rest } = scanned.status;
  const parkedByReason = counts.counts.parked === 0 ? {} : scanned.status.parkedByReason;
  const status: RunStatus = {
    ...rest,
    ...counts,
    parkedByReason,
    ...etaOf(counts.counts, counts.state, parkedByReason, scanned.status.imagesPerMinute),
  };
  return { ...scanned, status, card: runCardOf(status) };
}

interface Timed<T> {
  readAtMs: number;
  tookMs: number;
  value: T;
}

interface RunEntry {
  counts?: Timed<RunCounts | undefined>;
  countsReading?: Promise<RunCounts | undefined> | undefined;
  scan?: Timed<RunDetail | undefined>;
  scanReading?: Promise<RunDetail | undefined> | undefined;
}

export class RunDataCache {
  readonly #ledger: RunLedger;
  readonly #options: RunDataOptions;
  readonly #now: () => number;
  readonly #entries = new Map<string, RunEntry>();

  constructor(ledger: RunLedger, options: RunDataOptions = {}) {
    this.#ledger = ledger;
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  #entry(run: string): RunEntry {
    let entry = this.#entries.get(run);
    if (entry === undefined) {
      entry = {};
      this.#entries.set(run, entry);
    }
    return entry;
  }

  #minIntervalMs(): number {
    return this.#options.minIntervalMs ?? 1000;
  }

  /** Counters, money and state: a few keys, read at most once a `minIntervalMs` however many pages ask. */
  #counts(run: string): Promise<RunCounts | undefined> {
    const entry = this.#entry(run);
    if (entry.countsReading !== undefined) return entry.countsReading;
    if (entry.counts !== undefined && this.#now() - entry.counts.readAtMs < this.#minIntervalMs()) {
      return Promise.resolve(entry.counts.value);
    }
    const startedMs = this.#now();
    const reading = readRunCounts(this.#ledger, run, this.#options.now).catch((error: unknown) => {
      if (error instanceof RunNotFoundError) return undefined;
      throw error;
    });
    entry.countsReading = reading;
    return reading.then(
      (value) => {
        entry.counts = { readAtMs: this.#now(), tookMs: this.#now() - startedMs, value };
        entry.countsReading = undefined;
        return value;
      },
      (error: unknown) => {
        entry.countsReading = undefined;
        throw error;
      },
    );
  }

  /** One scan of the rows, shared by every ask while it runs. */
  #startScan(run: string, entry: RunEntry): Promise<RunDetail | undefined> {
    const startedMs = this.#now();
    const reading = (async () => {
      const meta = await this.#ledger.getRun(run);
      return meta === undefined ? undefined : readRunDetail(this.#ledger, run, meta, this.#options);
    })();
    entry.scanReading = reading;
    return reading.then(
      (value) => {
        entry.scan = { readAtMs: this.#now(), tookMs: this.#now() - startedMs, value };
        entry.scanReading = undefined;
        return value;
      },
      (error: unknown) => {
        // A failed scan is not kept: the next ask tries again.
        entry.scanReading = undefined;
        throw error;
      },
    );
  }

  /**
   * The last scan, refreshed in the background once it is older than `minIntervalMs` and `costFactor` × its duration
   * (a live page never waits on a long scan); awaited only when there is none yet.
   */
  #scan(run: string): Promise<RunDetail | undefined> {
    const entry = this.#entry(run);
    const last = entry.scan;
    if (last === undefined) return entry.scanReading ?? this.#startScan(run, entry);
    const maxAgeMs = Math.max(this.#minIntervalMs(), (this.#options.costFactor ?? 5) * last.tookMs);
    if (entry.scanReading === undefined && this.#now() - last.readAtMs >= maxAgeMs) {
      this.#startScan(run, entry).catch((error: unknown) => this.#options.onBackgroundError?.(error));
    }
    return Promise.resolve(last.value);
  }

  /** The run's data, or `undefined` when the ledger has no such run. */
  async detail(run: string): Promise<RunDetail | undefined> {
    const counts = await this.#counts(run);
    if (counts === undefined) return undefined;
    const scanned = await this.#scan(run);
    return scanned === undefined ? undefined : withFreshCounts(scanned, counts);
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
