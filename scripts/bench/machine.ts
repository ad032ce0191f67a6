/**
 * What the bench reads about the machine it runs on: a process's CPU time and the load average, from /proc (Linux).
 * The machine may be shared: every measurement records the load it ran under.
 */
import { readFile } from 'node:fs/promises';

/** A process's CPU time so far (all its threads, user + system), ms; undefined where /proc cannot say. */
export async function processCpuMs(pid: number): Promise<number | undefined> {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  // Fields after the command (which may hold spaces) start at its closing parenthesis: utime and stime are 14 and 15.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  // Linux reports clock ticks of 1/100 s (USER_HZ) on every architecture Node runs on.
  return Number.isFinite(ticks) ? ticks * 10 : undefined;
}

/** The CPU time of several processes so far, ms; undefined when any could not be read. */
export async function totalCpuMs(pids: readonly number[]): Promise<number | undefined> {
  const each = await Promise.all(pids.map(processCpuMs));
  return each.some((ms) => ms === undefined) ? undefined : each.reduce<number>((sum, ms) => sum + (ms ?? 0), 0);
}

/** The CPU time a process spent between two readings, or undefined when either could not be read. */
export function cpuBetween(before: number | undefined, after: number | undefined): number | undefined {
  return before === undefined || after === undefined ? undefined : after - before;
}

export async function loadAverage(): Promise<number> {
  const text = await readFile('/proc/loadavg', 'utf8').catch(() => '');
  return Number(text.split(' ')[0] ?? Number.NaN);
}
