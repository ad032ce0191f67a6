/**
 * Render workers as child processes (`node bin/depthq.js worker`), for tests that kill, stop or signal them the way a
 * deploy or a crash would. Every child is tracked: `useWorkerProcesses()` SIGKILLs whatever still runs after each test
 * and after the file — a failed assertion must never leave a worker consuming jobs of the next test — and a last-resort
 * `exit` hook does the same if the test process ends without its hooks.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach } from 'vitest';

const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const depthqBin = path.join(projectRoot, 'bin', 'depthq.js');

/** What the worker logs once its BullMQ Worker is ready (src/worker/start.ts). */
export const WORKER_STARTED_MESSAGE = 'render worker started';

export interface WorkerExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** `Date.now()` when the exit was seen. */
  readonly at: number;
}

/** One pino JSON line from the worker's stdout. */
export type WorkerLogLine = Readonly<Record<string, unknown>> & { readonly msg?: string };

export interface WorkerProcess {
  readonly name: string;
  readonly pid: number;
  readonly exited: Promise<WorkerExit>;
  hasExited(): boolean;
  stdout(): string;
  stderr(): string;
  /** The stdout lines that parse as JSON objects (pino's log lines). */
  logLines(): WorkerLogLine[];
  /** Name, pid, exit and the tail of its output: for assertion messages. */
  describe(): string;
  signal(signal: NodeJS.Signals): void;
  /** SIGKILL, then wait for the exit. */
  kill(): Promise<WorkerExit>;
  /** SIGSTOP: the process keeps its sockets and state but runs no code — an event loop blocked from outside. */
  pause(): void;
  /** SIGCONT after `pause()`. */
  resume(): void;
}

export interface SpawnWorkerOptions {
  /** The worker's whole environment beside PATH and HOME (e.g. `workerEnvironment(stack, prefix, extra)`). */
  readonly env: Readonly<Record<string, string>>;
  /** Arguments after `worker`, e.g. `['--concurrency', '20']`. */
  readonly args?: readonly string[];
  /** Shown in messages. @defaultValue `worker-<n>` */
  readonly name?: string;
  /**
   * The helpers read the worker's log lines (readiness, what it did), so the level given here replaces the env's
   * LOG_LEVEL. @defaultValue 'info'
   */
  readonly logLevel?: 'info' | 'debug';
}

const children = new Set<ChildProcess>();
let spawned = 0;

// Last resort: the test process is ending and some child is still there (a hook never ran).
process.once('exit', () => {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
});

function tail(text: string, lines: number): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

function parseLogLines(stdout: string): WorkerLogLine[] {
  const parsed: WorkerLogLine[] = [];
  for (const line of stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const value: unknown = JSON.parse(line);
      if (value !== null && typeof value === 'object' && !Array.isArray(value)) parsed.push(value as WorkerLogLine);
    } catch {
      // A line cut short by a kill: not a log line.
    }
  }
  return parsed;
}

/** Starts `depthq worker` as a child process; returns at once (see `startWorker` to wait until it takes jobs). */
export function spawnWorker(options: SpawnWorkerOptions): WorkerProcess {
  spawned += 1;
  const name = options.name ?? `worker-${spawned}`;
  const child = spawn(process.execPath, [depthqBin, 'worker', ...(options.args ?? [])], {
    cwd: projectRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? '/tmp',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      ...options.env,
      LOG_LEVEL: options.logLevel ?? 'info',
    },
  });
  const { pid } = child;
  if (pid === undefined) throw new Error(`${name}: spawning ${depthqBin} failed`);
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString('utf8');
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  let exit: WorkerExit | undefined;
  const exited = new Promise<WorkerExit>((resolve) => {
    // 'close' (not 'exit'): the output is complete once the pipes are closed.
    child.once('close', (code, signal) => {
      exit = { code, signal, at: Date.now() };
      children.delete(child);
      resolve(exit);
    });
  });
  const worker: WorkerProcess = {
    name,
    pid,
    exited,
    hasExited: () => exit !== undefined,
    stdout: () => stdout,
    stderr: () => stderr,
    logLines: () => parseLogLines(stdout),
    describe: () =>
      `${name} (pid ${pid}, ${exit ? `exited ${exit.code ?? exit.signal}` : 'running'})\n` +
      `--- stderr ---\n${tail(stderr, 20)}\n--- last log lines ---\n${tail(stdout, 15)}`,
    signal(signal) {
      if (exit === undefined) child.kill(signal);
    },
    async kill() {
      if (exit === undefined) child.kill('SIGKILL');
      return exited;
    },
    pause() {
      if (exit === undefined) child.kill('SIGSTOP');
    },
    resume() {
      if (exit === undefined) child.kill('SIGCONT');
    },
  };
  return worker;
}

/** Rejects after `ms` with `message()`; the timer never outlives the race. */
async function within<T>(promise: Promise<T>, ms: number, message: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(message())), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls the worker's log lines until one matches; fails early, with its output, if the worker exits first. */
export async function waitForLogLine(
  worker: WorkerProcess,
  matches: (line: WorkerLogLine) => boolean,
  timeoutMs: number,
): Promise<WorkerLogLine> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = worker.logLines().find(matches);
    if (found) return found;
    if (worker.hasExited()) throw new Error(`the worker exited before logging what was awaited: ${worker.describe()}`);
    if (Date.now() > deadline) throw new Error(`no matching log line within ${timeoutMs} ms: ${worker.describe()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Polls `condition` every 25 ms until it holds. Fails after `timeoutMs`, or at once when one of `workers` exits (a
 * crashed worker never brings the awaited state), with the workers' output in the message.
 */
export async function waitForCondition(
  what: string,
  condition: () => boolean | Promise<boolean>,
  options: { readonly timeoutMs: number; readonly workers?: readonly WorkerProcess[] },
): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  const workers = options.workers ?? [];
  const report = () => workers.map((worker) => worker.describe()).join('\n');
  while (!(await condition())) {
    const gone = workers.find((worker) => worker.hasExited());
    if (gone) throw new Error(`waiting for ${what}: ${gone.name} exited first\n${report()}`);
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${options.timeoutMs} ms\n${report()}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Spawns a worker and waits until it is ready to take jobs. */
export async function startWorker(options: SpawnWorkerOptions, timeoutMs = 30_000): Promise<WorkerProcess> {
  const worker = spawnWorker(options);
  await waitForLogLine(worker, (line) => line.msg === WORKER_STARTED_MESSAGE, timeoutMs);
  return worker;
}

/** The worker's exit, or an error carrying its output when it has not exited within `timeoutMs`. */
export function waitForExit(worker: WorkerProcess, timeoutMs: number): Promise<WorkerExit> {
  return within(worker.exited, timeoutMs, () => `did not exit within ${timeoutMs} ms: ${worker.describe()}`);
}

/** SIGKILLs every worker child still running (a stopped one too) and waits until each is gone. */
export async function killAllWorkers(): Promise<void> {
  const waits = [...children].map((child) => {
    const gone = new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once('close', () => resolve());
    });
    child.kill('SIGKILL');
    return within(gone, 10_000, () => `worker child ${child.pid} survived SIGKILL for 10 s`);
  });
  await Promise.all(waits);
}

/** Registers the hooks that leave no worker child behind a test or the file, whatever the tests did. */
/**
 * Kills every worker child after each test and after the file. Returns `deferCleanup`: what a test registers there
 * (a simulator, a proxy, a run) is closed after that test's workers are dead — nothing may talk to a server while it
 * closes — in reverse order of registration.
 */
export function useWorkerProcesses(): { readonly deferCleanup: (cleanup: () => Promise<void>) => void } {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    await killAllWorkers();
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  afterAll(killAllWorkers);
  return { deferCleanup: (cleanup) => void cleanups.push(cleanup) };
}
