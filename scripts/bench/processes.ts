/**
 * What the orchestration, memory and scale benchmarks share: bench children (scripts/bench/child.ts) spawned as their
 * own processes, so each one's CPU time and peak RSS are its own, and the Redis figures read from `INFO`.
 *
 * A worker child prints one JSON line when its worker is ready, and one with its figures after the parent writes
 * `stop` to its stdin; an ingest child prints one line with its figures and exits.
 */
import { type ChildProcessByStdio, spawn } from 'node:child_process';
import { once } from 'node:events';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import { z } from 'zod';

const childScript = path.join(path.dirname(fileURLToPath(import.meta.url)), 'child.ts');

/** What a worker child reports when told to stop. */
export const workerFiguresSchema = z.object({
  /** Process CPU time (user + system) from the moment its worker was ready until `stop`. */
  cpuMs: z.number(),
  /** The process's peak resident set size over its whole life. */
  maxRssKb: z.number(),
  /** RSS when the worker was ready, before any job: what the modules and connections take. */
  readyRssKb: z.number(),
  /** Jobs its processor finished. */
  completed: z.number(),
  failed: z.number(),
});
export type WorkerFigures = z.output<typeof workerFiguresSchema>;

export interface WorkerChild {
  readonly pid: number;
  /** Tells the child to stop; resolves with its figures once it has closed its worker and exited. */
  stop(): Promise<WorkerFigures>;
  /** SIGKILL, for a bench that is failing anyway. */
  kill(): void;
}

/** Extra `node` options for bench children, e.g. `BENCH_NODE_OPTIONS="--cpu-prof --cpu-prof-dir=/tmp/prof"`. */
function benchNodeOptions(): string[] {
  const extra = process.env.BENCH_NODE_OPTIONS;
  return extra === undefined || extra.trim() === '' ? [] : extra.trim().split(/\s+/);
}

type Child = ChildProcessByStdio<Writable, Readable, null>;

function spawnChild(args: readonly string[], env: Readonly<Record<string, string>>, nodeOptions: string[]): Child {
  return spawn(process.execPath, [...nodeOptions, '--import', 'tsx', childScript, ...args], {
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? os.homedir(), ...env },
  });
}

/** The JSON lines a child prints, in order; rejects when the child exits before printing `count` of them. */
function jsonLines(child: Child): () => Promise<unknown> {
  const lines = createInterface({ input: child.stdout });
  const queued: unknown[] = [];
  const waiting: Array<{ resolve: (value: unknown) => void; reject: (error: Error) => void }> = [];
  let ended: Error | undefined;
  lines.on('line', (line) => {
    if (!line.startsWith('{')) return;
    const value: unknown = JSON.parse(line);
    const next = waiting.shift();
    if (next) next.resolve(value);
    else queued.push(value);
  });
  child.once('exit', (code, signal) => {
    ended = new Error(`bench child ${child.pid ?? ''} exited (${code ?? signal}) before it reported`);
    for (const next of waiting.splice(0)) next.reject(ended);
  });
  return () => {
    if (queued.length > 0) return Promise.resolve(queued.shift());
    if (ended !== undefined) return Promise.reject(ended);
    return new Promise((resolve, reject) => waiting.push({ resolve, reject }));
  };
}

export type WorkerRole =
  | { readonly kind: 'bare'; readonly redisUrl: string; readonly prefix: string; readonly concurrency: number }
  | { readonly kind: 'depthq'; readonly env: Readonly<Record<string, string>>; readonly concurrency: number };

/** Starts a worker child and resolves once its worker is ready (it has taken no job yet if the queue is paused). */
export async function startWorkerChild(role: WorkerRole): Promise<WorkerChild> {
  const args =
    role.kind === 'bare'
      ? ['bare-worker', role.redisUrl, role.prefix, String(role.concurrency)]
      : ['depthq-worker', String(role.concurrency)];
  const env = role.kind === 'depthq' ? role.env : {};
  const child = spawnChild(args, { ...env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' }, [
    '--expose-gc',
    ...benchNodeOptions(),
  ]);
  const next = jsonLines(child);
  try {
    await next();
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  const pid = child.pid ?? 0;
  return {
    pid,
    async stop() {
      child.stdin.end('stop\n');
      const figures = workerFiguresSchema.parse(await next());
      if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
      return figures;
    },
    kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

/** Runs a one-shot child (ingest, parse) to its end and returns the last JSON line it printed. */
export async function runOnceChild(args: readonly string[], nodeOptions: readonly string[] = []): Promise<unknown> {
  const child = spawnChild(args, { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' }, [
    ...nodeOptions,
    '--expose-gc',
  ]);
  child.stdin.end();
  const next = jsonLines(child);
  const value = await next();
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`bench child ${args[0] ?? ''} exited with ${code}`);
  return value;
}

// --- Redis figures ---------------------------------------------------------------------------------------------------

function infoFields(info: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of info.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0 && !line.startsWith('#')) fields.set(line.slice(0, colon), line.slice(colon + 1));
  }
  return fields;
}

/** Redis's own CPU time so far (user + system, main thread and children), in ms. */
export async function redisCpuMs(redis: Redis): Promise<number> {
  const fields = infoFields(await redis.info('cpu'));
  const seconds = Number(fields.get('used_cpu_user') ?? 0) + Number(fields.get('used_cpu_sys') ?? 0);
  return seconds * 1000;
}

export interface CommandCounts {
  /** Every command Redis ran, those inside Lua scripts included (INFO commandstats counts both). */
  readonly total: number;
  /** Script calls (EVALSHA/EVAL/FCALL): one per Lua script run, each a single atomic step. */
  readonly scripts: number;
  readonly byCommand: ReadonlyMap<string, number>;
}

/** Counts since the last `CONFIG RESETSTAT`, leaving out `info` and `config` (the bench's own reads). */
export async function commandCounts(redis: Redis): Promise<CommandCounts> {
  const byCommand = new Map<string, number>();
  for (const [name, value] of infoFields(await redis.info('commandstats'))) {
    const command = name.replace(/^cmdstat_/, '');
    if (command === 'info' || command.startsWith('config')) continue;
    const calls = /calls=(\d+)/.exec(value)?.[1];
    if (calls !== undefined) byCommand.set(command, Number(calls));
  }
  let total = 0;
  let scripts = 0;
  for (const [command, calls] of byCommand) {
    total += calls;
    if (command === 'evalsha' || command === 'eval' || command === 'fcall') scripts += calls;
  }
  return { total, scripts, byCommand };
}

/** Polls `done` every `everyMs` until it holds, failing after `timeoutMs` with `what`; returns how many polls it took. */
export async function waitUntil(
  done: () => Promise<boolean>,
  what: string,
  options: { readonly everyMs?: number; readonly timeoutMs?: number } = {},
): Promise<number> {
  const everyMs = options.everyMs ?? 100;
  const deadline = Date.now() + (options.timeoutMs ?? 30 * 60_000);
  let polls = 0;
  for (;;) {
    polls++;
    if (await done()) return polls;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/** The machine and its load, for the notes of every section. */
export function machineNote(): string {
  const cpus = os.cpus();
  const load = os
    .loadavg()
    .map((value) => value.toFixed(2))
    .join(', ');
  return (
    `machine: ${cpus.length} × ${cpus[0]?.model.trim() ?? 'CPU'}, ${(os.totalmem() / 1024 ** 3).toFixed(0)} GB, ` +
    `node ${process.version}; load average (1, 5, 15 min) at the end: ${load}`
  );
}

export const formatNumber = (value: number, digits = 0): string =>
  value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
