/**
 * The progress display of `depthq demo` and of the status watch. On a terminal: one line redrawn in place (a bar,
 * done/total, failed, running, spent, elapsed). Anywhere else (a pipe, a CI log, a test): a plain line each time something other than the clock changed,
 * because carriage returns and escape codes turn a log into noise.
 */
import { formatUsd, type Micros } from '../core/money.js';

export interface ProgressSnapshot {
  readonly total: number;
  readonly succeeded: number;
  /** Failed and flagged jobs: ended without an image. */
  readonly failed: number;
  readonly running: number;
  readonly parked: number;
  readonly spentMicros: Micros;
  readonly elapsedMs: number;
}

/** Where progress goes: a stream that may be a terminal (process.stdout). */
export interface ProgressStream {
  readonly isTTY?: boolean;
  readonly columns?: number;
  write(text: string): unknown;
}

export interface ProgressReporter {
  update(snapshot: ProgressSnapshot): void;
  /** Draws the last state and ends the line; later updates are ignored. */
  finish(snapshot: ProgressSnapshot): void;
}

const BAR_WIDTH = 24;

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

function counts(snapshot: ProgressSnapshot): string {
  const parts = [
    `${snapshot.succeeded}/${snapshot.total} done`,
    `${snapshot.failed} failed`,
    `${snapshot.running} running`,
    ...(snapshot.parked > 0 ? [`${snapshot.parked} parked`] : []),
    `${formatUsd(snapshot.spentMicros)} spent`,
  ];
  return parts.join(', ');
}

export function progressBar(snapshot: ProgressSnapshot, width = BAR_WIDTH): string {
  const finished = snapshot.succeeded + snapshot.failed;
  const filled = snapshot.total === 0 ? width : Math.min(width, Math.floor((finished / snapshot.total) * width));
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
}

/** The terminal line: `[##########..............] 7/16 done, 0 failed, 4 running, $0.35 spent  5.2 s`. */
export function formatProgressLine(snapshot: ProgressSnapshot): string {
  return `${progressBar(snapshot)} ${counts(snapshot)}  ${seconds(snapshot.elapsedMs)}`;
}

/** The log line: `progress: 7/16 done, 0 failed, 4 running, $0.35 spent (5.2 s)`. */
export function formatProgressLogLine(snapshot: ProgressSnapshot): string {
  return `progress: ${counts(snapshot)} (${seconds(snapshot.elapsedMs)})`;
}

export function createProgressReporter(stream: ProgressStream): ProgressReporter {
  let finished = false;
  if (stream.isTTY === true) {
    let drawn = '';
    const draw = (snapshot: ProgressSnapshot) => {
      let line = formatProgressLine(snapshot);
      // A line wider than the terminal wraps, and `\r` would then redraw only its last part.
      const columns = stream.columns ?? 0;
      if (columns > 1 && line.length >= columns) line = line.slice(0, columns - 1);
      if (line === drawn) return;
      drawn = line;
      stream.write(`\r\x1b[2K${line}`);
    };
    return {
      update(snapshot) {
        if (!finished) draw(snapshot);
      },
      finish(snapshot) {
        if (finished) return;
        draw(snapshot);
        finished = true;
        stream.write('\n');
      },
    };
  }

  let lastCounts = '';
  return {
    update(snapshot) {
      if (finished) return;
      const now = counts(snapshot);
      if (now === lastCounts) return;
      lastCounts = now;
      stream.write(`${formatProgressLogLine(snapshot)}\n`);
    },
    finish(snapshot) {
      if (finished) return;
      finished = true;
      if (counts(snapshot) !== lastCounts) stream.write(`${formatProgressLogLine(snapshot)}\n`);
    },
  };
}
