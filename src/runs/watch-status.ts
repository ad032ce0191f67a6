/**
 * `depthq status --watch`: the run's status redrawn until every job has ended.
 *
 * On a terminal the status block (a progress bar and three lines) is redrawn in place: the cursor goes back up over the
 * previous block, which is cleared, so the screen always shows one current block. Anywhere else — a pipe, a CI log, a
 * file — carriage returns and escape codes would be noise, so a plain line is written each time something other than
 * the clock and the rate changed (the demo's progress line follows the same rule). `--json` writes one JSON object per
 * line instead, on the same changes.
 *
 * Each tick reads only the ledger's counters and money; the rows are scanned (for parked reasons) at the start and every
 * `rescanMs` while jobs are parked, so watching a 100k-job run costs Redis next to nothing.
 */
import { formatUsd } from '../core/money.js';
import type { RunLedger, RunMeta } from '../ledger/run-ledger.js';
import { type ProgressSnapshot, type ProgressStream, progressBar } from './progress.js';
import {
  endedOf,
  etaOf,
  formatCounts,
  formatEta,
  formatMoney,
  formatPauseCause,
  formatRate,
  hasEnded,
  type RunStatus,
  readRunCounts,
  readRunStatus,
  runStatusJson,
  ThroughputTracker,
} from './run-status.js';

export interface WatchOptions {
  /** process.stdout, or anything with `write` (and `isTTY`/`columns` when it is a terminal). */
  readonly stream: ProgressStream;
  /** @defaultValue 1000 */
  readonly intervalMs?: number;
  /** Write JSON lines instead of text. @defaultValue false */
  readonly json?: boolean;
  /** Stops the watch (Ctrl-C); the last status is drawn first. */
  readonly signal?: AbortSignal;
  /** How often the rows are scanned again for parked reasons while jobs are parked. @defaultValue 15000 */
  readonly rescanMs?: number;
  readonly now?: () => number;
}

export type WatchOutcome = 'ended' | 'interrupted';

const HIDE_CURSOR = '\x1b[?25l';
const SHOW_CURSOR = '\x1b[?25h';
const CLEAR_TO_END = '\x1b[J';

function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve();
      return;
    }
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** The demo's progress bar over ended jobs (succeeded, or ended without an image). */
function barOf(status: RunStatus): string {
  const snapshot: ProgressSnapshot = {
    total: status.counts.total,
    succeeded: status.counts.succeeded,
    failed: status.counts.failed + status.counts.flagged + status.counts.canceled,
    running: status.counts.running,
    parked: status.counts.parked,
    spentMicros: status.money.spent,
    elapsedMs: 0,
  };
  return progressBar(snapshot, 30);
}

/** The block a terminal shows. */
export function formatWatchBlock(status: RunStatus): string[] {
  const total = status.counts.total;
  const ended = endedOf(status.counts);
  const percent = total === 0 ? 100 : Math.floor((ended / total) * 100);
  const clock = new Date(status.observedAtMs).toISOString().slice(11, 19);
  return [
    `${barOf(status)} ${ended}/${total} ended (${percent}%) · run ${status.run} · ${status.state}`,
    ...(status.pause === undefined ? [] : [formatPauseCause(status.run, status.pause)]),
    formatCounts(status.counts, status.parkedByReason),
    `money: ${formatMoney(status.money)}`,
    `${formatRate(status.imagesPerMinute)} · ${formatEta(status)} · ${clock} UTC${hasEnded(status.counts) ? ' · run ended' : ''}`,
  ];
}

/** The plain line for logs. */
export function formatWatchLine(status: RunStatus): string {
  return `status: ${changeKeyOf(status)} · ${formatRate(status.imagesPerMinute)} · ${formatEta(status)}`;
}

/** What must change for a log line or JSON line to be written: everything but the clock, the rate and the ETA. */
function changeKeyOf(status: RunStatus): string {
  const budget = status.money.budget === null ? 'unlimited' : formatUsd(status.money.budget);
  return (
    `${status.state}${status.pause === undefined ? '' : ` (${status.pause.reason})`} ` +
    `${endedOf(status.counts)}/${status.counts.total} ended · ` +
    `${formatCounts(status.counts, status.parkedByReason)} · spent ${formatUsd(status.money.spent)} of ${budget}`
  );
}

function fitted(line: string, columns: number | undefined): string {
  // A line as wide as the terminal wraps, and the cursor-up count would then miss a line.
  return columns !== undefined && columns > 1 && line.length >= columns ? line.slice(0, columns - 1) : line;
}

interface Renderer {
  draw(status: RunStatus): void;
  finish(status: RunStatus | undefined): void;
}

function terminalRenderer(stream: ProgressStream): Renderer {
  let drawnLines = 0;
  let finished = false;
  stream.write(HIDE_CURSOR);
  const draw = (status: RunStatus) => {
    const lines = formatWatchBlock(status).map((line) => fitted(line, stream.columns));
    const back = drawnLines > 1 ? `\x1b[${drawnLines - 1}A` : '';
    stream.write(`${drawnLines > 0 ? `\r${back}` : ''}${CLEAR_TO_END}${lines.join('\n')}`);
    drawnLines = lines.length;
  };
  return {
    draw(status) {
      if (!finished) draw(status);
    },
    finish(status) {
      if (finished) return;
      if (status !== undefined) draw(status);
      finished = true;
      stream.write(`\n${SHOW_CURSOR}`);
    },
  };
}

function lineRenderer(stream: ProgressStream, json: boolean): Renderer {
  let lastKey = '';
  let finished = false;
  const write = (status: RunStatus) => {
    stream.write(json ? `${JSON.stringify(runStatusJson(status))}\n` : `${formatWatchLine(status)}\n`);
  };
  return {
    draw(status) {
      if (finished) return;
      const key = changeKeyOf(status);
      if (key === lastKey) return;
      lastKey = key;
      write(status);
    },
    finish(status) {
      if (finished) return;
      finished = true;
      // The last line always goes out: it carries the final rate and ETA even when no count changed.
      if (status !== undefined) write(status);
    },
  };
}

/** Watches until the run has ended or `signal` aborts; the ledger must hold the run (checked by the caller). */
export async function watchRunStatus(
  ledger: RunLedger,
  run: string,
  meta: RunMeta,
  options: WatchOptions,
): Promise<WatchOutcome> {
  const now = options.now ?? Date.now;
  const intervalMs = options.intervalMs ?? 1_000;
  const rescanMs = options.rescanMs ?? 15_000;
  const terminal = options.stream.isTTY === true && options.json !== true;
  const renderer = terminal ? terminalRenderer(options.stream) : lineRenderer(options.stream, options.json === true);
  const tracker = new ThroughputTracker();
  let scanned = await readRunStatus(ledger, run, meta, now);
  let lastScanMs = now();
  let status: RunStatus = scanned;
  try {
    while (true) {
      if (hasEnded(status.counts) && status !== scanned) {
        // The last picture gets what a one-off `depthq status` says: the rate over the whole run.
        status = await readRunStatus(ledger, run, meta, now);
      }
      tracker.add(status.observedAtMs, status.counts.succeeded);
      renderer.draw(status);
      if (hasEnded(status.counts)) return 'ended';
      await pause(intervalMs, options.signal);
      if (options.signal?.aborted) return 'interrupted';
      const counts = await readRunCounts(ledger, run, now);
      if (counts.counts.parked > 0 && now() - lastScanMs >= rescanMs) {
        scanned = await readRunStatus(ledger, run, meta, now);
        lastScanMs = now();
      }
      // Parked reasons are as of the last scan; with nothing parked now there are none to show.
      const parkedByReason = counts.counts.parked > 0 ? scanned.parkedByReason : {};
      const imagesPerMinute = tracker.imagesPerMinute() ?? scanned.imagesPerMinute;
      status = {
        ...counts,
        meta,
        parkedByReason,
        imagesPerMinute,
        ...etaOf(counts.counts, counts.state, parkedByReason, imagesPerMinute),
      };
    }
  } finally {
    renderer.finish(status);
  }
}
