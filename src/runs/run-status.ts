/**
 * Where a run stands, read from the run ledger (never from BullMQ, whose finished jobs may be gone): jobs by state,
 * money, throughput and an ETA.
 *
 * Two ways to read it. `readRunStatus` scans every result row once (HSCAN) to say why jobs are parked and how fast
 * images finished over the last minutes — right for a one-off `depthq status`, a second or two for 100k rows.
 * `readRunCounts` reads only the counters and the money (a few keys), which is what `--watch` does every second; its
 * throughput comes from the change of the `succeeded` counter between samples (`ThroughputTracker`).
 */
import { type BudgetState, formatUsd, type Micros, microsToDecimal, remainingOf } from '../core/money.js';
import type { PauseCause, ResultRow, RunCounters, RunLedger, RunMeta, RunState } from '../ledger/run-ledger.js';

/** The states a person asks about; `waiting` is the ledger's `queued`. */
export const STATUS_STATES = ['waiting', 'running', 'succeeded', 'failed', 'flagged', 'parked', 'canceled'] as const;
export type StatusState = (typeof STATUS_STATES)[number];

export type StateCounts = Readonly<Record<StatusState | 'total', number>>;

export interface RunCounts {
  readonly run: string;
  readonly state: RunState;
  /** Why the run paused itself (an account the provider refused), while it stays paused. */
  readonly pause?: PauseCause;
  readonly counts: StateCounts;
  readonly money: BudgetState;
  /** When the counts were read, ms since the epoch. */
  readonly observedAtMs: number;
}

export interface RunStatus extends RunCounts {
  readonly meta: RunMeta;
  /** Parked jobs by reason (`budget`, `paused`); empty when the rows were not scanned. */
  readonly parkedByReason: Readonly<Record<string, number>>;
  /** Images finished per minute lately; for an ended run, over its whole span. `null`: nothing to measure yet. */
  readonly imagesPerMinute: number | null;
  /** Seconds until every job that can still finish has; `null` when there is no rate or nothing can finish. */
  readonly etaSeconds: number | null;
  /** Why there is no ETA although jobs remain (`paused`, `waiting for budget`). */
  readonly etaNote?: string;
}

/** Throughput is measured over this much recent time: long enough to smooth waves of jobs, short enough to follow. */
export const RATE_WINDOW_MS = 5 * 60_000;
/** Less time than this since the first job started says nothing about a rate. */
const MIN_RATE_SPAN_MS = 5_000;

export function countsOf(counters: RunCounters): StateCounts {
  return {
    waiting: counters.queued,
    running: counters.running,
    succeeded: counters.succeeded,
    failed: counters.failed,
    flagged: counters.flagged,
    parked: counters.parked,
    canceled: counters.canceled,
    total: counters.total,
  };
}

/** Jobs that will not change any more: succeeded, failed, flagged or canceled. */
export function endedOf(counts: StateCounts): number {
  return counts.succeeded + counts.failed + counts.flagged + counts.canceled;
}

/** A run has ended when every one of its jobs has (a run with no jobs has nothing to wait for). */
export function hasEnded(counts: StateCounts): boolean {
  return endedOf(counts) >= counts.total;
}

export async function readRunCounts(ledger: RunLedger, run: string, now: () => number = Date.now): Promise<RunCounts> {
  const [counters, money, state, pause] = await Promise.all([
    ledger.counters(run),
    ledger.money(run),
    ledger.runState(run),
    ledger.pauseCause(run),
  ]);
  return {
    run,
    state,
    ...(state === 'paused' && pause !== undefined ? { pause } : {}),
    counts: countsOf(counters),
    money,
    observedAtMs: now(),
  };
}

interface RowTimes {
  /** Earliest `startedAt` of any row. */
  firstStartMs: number | null;
  /** Latest `finishedAt` of a succeeded row. */
  lastFinishMs: number | null;
  /** Succeeded rows that finished inside the rate window. */
  recentSucceeded: number;
}

function timeOf(iso: string | undefined): number | null {
  if (iso === undefined) return null;
  const ms = Date.parse(iso);
  return Number.isFinite(ms) ? ms : null;
}

/** Images per minute from what the rows say, or `null` when too little time has passed to tell. */
function rateFromRows(times: RowTimes, succeeded: number, ended: boolean, nowMs: number): number | null {
  if (times.firstStartMs === null) return null;
  if (ended) {
    // A finished run's recent rate is 0; its average over its own span is what a person wants to know.
    if (times.lastFinishMs === null) return null;
    // A whole run is a fair sample however short it was.
    const span = times.lastFinishMs - times.firstStartMs;
    return span <= 0 ? null : (succeeded / span) * 60_000;
  }
  const windowStart = Math.max(nowMs - RATE_WINDOW_MS, times.firstStartMs);
  const span = nowMs - windowStart;
  return span < MIN_RATE_SPAN_MS ? null : (times.recentSucceeded / span) * 60_000;
}

/** ETA and, when there is none although jobs remain, the reason. */
export function etaOf(
  counts: StateCounts,
  state: RunState,
  parkedByReason: Readonly<Record<string, number>>,
  imagesPerMinute: number | null,
): { readonly etaSeconds: number | null; readonly etaNote?: string } {
  const remaining = counts.total - endedOf(counts);
  if (remaining <= 0) return { etaSeconds: 0 };
  if (state === 'paused') return { etaSeconds: null, etaNote: 'paused' };
  if (state === 'canceled') return { etaSeconds: null, etaNote: 'canceled' };
  const waitingForMoney = parkedByReason.budget ?? 0;
  if (waitingForMoney > 0 && waitingForMoney >= remaining) return { etaSeconds: null, etaNote: 'waiting for budget' };
  if (imagesPerMinute === null || imagesPerMinute <= 0) return { etaSeconds: null };
  // Jobs parked for budget finish only after a raise: they are not in the estimate.
  return { etaSeconds: Math.round(((remaining - waitingForMoney) / imagesPerMinute) * 60) };
}

/**
 * What one pass over a run's rows learns for its status — parked jobs by reason and the times throughput is measured
 * from — so a caller that scans the rows for more (the dashboard's run page) reads them once, not twice.
 */
export class StatusTally {
  readonly #parkedByReason: Record<string, number> = {};
  readonly #times: RowTimes = { firstStartMs: null, lastFinishMs: null, recentSucceeded: 0 };
  readonly #windowStart: number;

  /** @param observedAtMs when the counts were read: the rate window ends there */
  constructor(observedAtMs: number) {
    this.#windowStart = observedAtMs - RATE_WINDOW_MS;
  }

  add(row: ResultRow): void {
    if (row.status === 'parked') {
      const reason = row.reason ?? 'unknown';
      this.#parkedByReason[reason] = (this.#parkedByReason[reason] ?? 0) + 1;
    }
    const started = timeOf(row.startedAt);
    if (started !== null && (this.#times.firstStartMs === null || started < this.#times.firstStartMs)) {
      this.#times.firstStartMs = started;
    }
    if (row.status === 'succeeded') {
      const finished = timeOf(row.finishedAt);
      if (finished !== null) {
        if (this.#times.lastFinishMs === null || finished > this.#times.lastFinishMs)
          this.#times.lastFinishMs = finished;
        if (finished >= this.#windowStart) this.#times.recentSucceeded += 1;
      }
    }
  }

  statusOf(counts: RunCounts, meta: RunMeta): RunStatus {
    const parkedByReason = { ...this.#parkedByReason };
    const ended = hasEnded(counts.counts);
    const imagesPerMinute = rateFromRows(this.#times, counts.counts.succeeded, ended, counts.observedAtMs);
    return {
      ...counts,
      meta,
      parkedByReason,
      imagesPerMinute,
      ...etaOf(counts.counts, counts.state, parkedByReason, imagesPerMinute),
    };
  }
}

/** The full status: counters and money, plus one scan of the rows for parked reasons and throughput. */
export async function readRunStatus(
  ledger: RunLedger,
  run: string,
  meta: RunMeta,
  now: () => number = Date.now,
): Promise<RunStatus> {
  const counts = await readRunCounts(ledger, run, now);
  const tally = new StatusTally(counts.observedAtMs);
  for await (const { row } of ledger.results(run)) tally.add(row);
  return tally.statusOf(counts, meta);
}

/**
 * Images per minute from successive samples of the `succeeded` counter over the last `windowMs`: what `--watch` shows
 * without scanning rows every second.
 */
export class ThroughputTracker {
  readonly #samples: Array<{ readonly atMs: number; readonly succeeded: number }> = [];
  readonly #windowMs: number;

  constructor(windowMs = 60_000) {
    this.#windowMs = windowMs;
  }

  add(atMs: number, succeeded: number): void {
    this.#samples.push({ atMs, succeeded });
    while (this.#samples.length > 2 && (this.#samples[1]?.atMs ?? atMs) <= atMs - this.#windowMs) {
      this.#samples.shift();
    }
  }

  /** `null` until the samples span at least five seconds. */
  imagesPerMinute(): number | null {
    const first = this.#samples[0];
    const last = this.#samples.at(-1);
    if (first === undefined || last === undefined) return null;
    const span = last.atMs - first.atMs;
    if (span < MIN_RATE_SPAN_MS) return null;
    return ((last.succeeded - first.succeeded) / span) * 60_000;
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// Presentation
// ---------------------------------------------------------------------------------------------------------------------

/** `1 h 02 min`, `3 min 05 s`, `42 s`. */
export function formatDuration(seconds: number): string {
  const whole = Math.max(0, Math.round(seconds));
  const hours = Math.floor(whole / 3600);
  const minutes = Math.floor((whole % 3600) / 60);
  const rest = whole % 60;
  if (hours > 0) return `${hours} h ${String(minutes).padStart(2, '0')} min`;
  if (minutes > 0) return `${minutes} min ${String(rest).padStart(2, '0')} s`;
  return `${rest} s`;
}

export function formatRate(imagesPerMinute: number | null): string {
  return imagesPerMinute === null ? '– images/min' : `${imagesPerMinute.toFixed(1)} images/min`;
}

export function formatEta(status: Pick<RunStatus, 'etaSeconds' | 'etaNote'>): string {
  if (status.etaNote !== undefined) return `ETA – (${status.etaNote})`;
  if (status.etaSeconds === null) return 'ETA –';
  return status.etaSeconds === 0 ? 'ETA done' : `ETA ${formatDuration(status.etaSeconds)}`;
}

/** `waiting 3 · running 4 · succeeded 7 · failed 1 · flagged 0 · parked 1 (budget 1) · canceled 0`. */
export function formatCounts(counts: StateCounts, parkedByReason: Readonly<Record<string, number>> = {}): string {
  return STATUS_STATES.map((state) => {
    const reasons = Object.entries(parkedByReason)
      .filter(([, count]) => count > 0)
      .map(([reason, count]) => `${reason} ${count}`);
    const detail = state === 'parked' && reasons.length > 0 ? ` (${reasons.join(', ')})` : '';
    return `${state} ${counts[state]}${detail}`;
  }).join(' · ');
}

/** `spent $0.35 · reserved $0.20 · possibly billed $0.00 · budget $2.00 (left $1.45)`. */
export function formatMoney(money: BudgetState): string {
  const remaining = remainingOf(money);
  const budget = money.budget === null ? 'budget unlimited' : `budget ${formatUsd(money.budget)}`;
  return [
    `spent ${formatUsd(money.spent)}`,
    `reserved ${formatUsd(money.reserved)}`,
    `possibly billed ${formatUsd(money.possiblyBilled)}`,
    remaining === null ? budget : `${budget} (left ${formatUsd(remaining)})`,
  ].join(' · ');
}

/** `paused by depthq (account, 2026-…): Replicate refused … Then: depthq resume <run>`. */
export function formatPauseCause(run: string, pause: PauseCause): string {
  return `paused by depthq (${pause.reason}, ${pause.at}): ${pause.message} Then: depthq resume ${run}`;
}

/** The status for a person: a few lines, no colours. */
export function formatRunStatus(status: RunStatus): string {
  const ended = hasEnded(status.counts);
  return [
    `run ${status.run} · ${status.state}${ended ? ' · ended' : ''} · ${status.meta.model} · created ${status.meta.createdAt}`,
    ...(status.pause === undefined ? [] : [formatPauseCause(status.run, status.pause)]),
    `jobs ${status.counts.total}: ${formatCounts(status.counts, status.parkedByReason)}`,
    `money: ${formatMoney(status.money)}`,
    `${formatRate(status.imagesPerMinute)} · ${formatEta(status)}`,
  ].join('\n');
}

function moneyJson(money: BudgetState): Record<string, Micros | string | null> {
  const remaining = remainingOf(money);
  return {
    budgetMicros: money.budget,
    reservedMicros: money.reserved,
    spentMicros: money.spent,
    possiblyBilledMicros: money.possiblyBilled,
    remainingMicros: remaining,
    budgetUsd: money.budget === null ? null : microsToDecimal(money.budget),
    reservedUsd: microsToDecimal(money.reserved),
    spentUsd: microsToDecimal(money.spent),
    possiblyBilledUsd: microsToDecimal(money.possiblyBilled),
    remainingUsd: remaining === null ? null : microsToDecimal(remaining),
  };
}

/** The status for scripts: stable field names, money in micro-dollars and as decimal dollars. */
export function runStatusJson(status: RunStatus): Record<string, unknown> {
  return {
    run: status.run,
    state: status.state,
    pause: status.pause === undefined ? null : { ...status.pause },
    ended: hasEnded(status.counts),
    model: status.meta.model,
    createdAt: status.meta.createdAt,
    observedAt: new Date(status.observedAtMs).toISOString(),
    counts: status.counts,
    parkedByReason: status.parkedByReason,
    money: moneyJson(status.money),
    imagesPerMinute: status.imagesPerMinute === null ? null : Number(status.imagesPerMinute.toFixed(2)),
    etaSeconds: status.etaSeconds,
    ...(status.etaNote === undefined ? {} : { etaNote: status.etaNote }),
  };
}
