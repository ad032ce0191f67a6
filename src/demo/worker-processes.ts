/**
 * Render workers as child processes (`node bin/depthq.js worker`), the way a deployment runs them: separate processes
 * sharing one Redis, each with its own BullMQ Worker.
 *
 * None may outlive the process that started them:
 * - `stop()` sends SIGTERM (the worker's graceful close) and SIGKILLs whatever has not exited by the deadline;
 * - a `process.on('exit')` hook SIGKILLs live workers if the parent exits without calling stop();
 * - on Linux each worker starts through `setpriv --pdeathsig SIGKILL`, so the kernel kills it when the parent dies by
 *   SIGKILL, when no JavaScript runs. SIGKILL rather than SIGTERM: the stack dies with the parent too, and a worker
 *   closing gracefully against a vanished Redis would wait on it.
 * Each worker also gets its own process group (`detached`), so a Ctrl-C in the terminal reaches only the parent, which
 * stops the workers before the stack they depend on.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { findSetpriv } from '../local/redis.js';

/** `bin/depthq.js` of this checkout: workers run the same code as the process that starts them. */
export const DEPTHQ_CLI_PATH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/depthq.js');

const OUTPUT_TAIL_CHARS = 4_000;

export interface WorkerExit {
  readonly pid: number;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface WorkerProcess {
  readonly pid: number;
  /** Resolves when the process has exited, whatever the reason. */
  readonly exited: Promise<WorkerExit>;
  /** The end of what it wrote to stdout and stderr, for error messages. */
  outputTail(): string;
}

export interface WorkerFleet {
  readonly workers: readonly WorkerProcess[];
  /** Resolves with the first worker that exits before `stop()` was called: a crash or a failed start. */
  readonly unexpectedExit: Promise<WorkerExit & { readonly output: string }>;
  /**
   * SIGTERM to each live worker, SIGKILL to any still running after `graceMs`; resolves when all have exited.
   * Idempotent: later calls share the first call's outcome.
   */
  stop(graceMs: number): Promise<readonly WorkerExit[]>;
  /** SIGKILL now to every live worker (a second Ctrl-C); `stop()` still waits for their exits. */
  kill(): void;
}

export class WorkerStartError extends Error {
  override readonly name = 'WorkerStartError';
}

export interface StartWorkersOptions {
  readonly count: number;
  /** The complete environment of each worker (PATH included). */
  readonly env: Readonly<Record<string, string>>;
  /** Passed as `--concurrency`. */
  readonly concurrency?: number;
  /** @defaultValue DEPTHQ_CLI_PATH */
  readonly cliPath?: string;
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function killLiveWorkersOnExit(): void {
  for (const child of live) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

function track(child: ChildProcess): void {
  live.add(child);
  if (!exitHookInstalled) {
    process.on('exit', killLiveWorkersOnExit);
    exitHookInstalled = true;
  }
}

function untrack(child: ChildProcess): void {
  live.delete(child);
  if (live.size === 0 && exitHookInstalled) {
    process.off('exit', killLiveWorkersOnExit);
    exitHookInstalled = false;
  }
}

function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

function startOne(
  setpriv: string | undefined,
  args: readonly string[],
  env: Readonly<Record<string, string>>,
): Promise<{ child: ChildProcess; process: WorkerProcess }> {
  const command = setpriv ?? process.execPath;
  const fullArgs = setpriv === undefined ? [...args] : ['--pdeathsig', 'SIGKILL', '--', process.execPath, ...args];
  const child = spawn(command, fullArgs, { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  const collect = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-OUTPUT_TAIL_CHARS);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  return new Promise((resolve, reject) => {
    child.once('error', (error) => {
      reject(new WorkerStartError(`could not start a worker (${command}): ${error.message}`, { cause: error }));
    });
    child.once('spawn', () => {
      const pid = child.pid;
      if (pid === undefined) {
        reject(new WorkerStartError(`a worker started without a pid (${command})`));
        return;
      }
      track(child);
      const exited = new Promise<WorkerExit>((resolveExit) => {
        // 'close' (not 'exit') so the output tail is complete when someone reads it.
        child.once('close', (code, signal) => {
          untrack(child);
          resolveExit({ pid, code, signal });
        });
      });
      resolve({ child, process: { pid, exited, outputTail: () => output } });
    });
  });
}

export async function startWorkerProcesses(options: StartWorkersOptions): Promise<WorkerFleet> {
  if (!Number.isSafeInteger(options.count) || options.count < 1) {
    throw new RangeError(`count must be a whole number ≥ 1, got ${options.count}`);
  }
  const setpriv = await findSetpriv();
  const args = [
    options.cliPath ?? DEPTHQ_CLI_PATH,
    'worker',
    ...(options.concurrency === undefined ? [] : ['--concurrency', String(options.concurrency)]),
  ];
  const started: Array<{ child: ChildProcess; process: WorkerProcess }> = [];
  let stopping: Promise<readonly WorkerExit[]> | undefined;

  const kill = () => {
    for (const { child } of started) if (isRunning(child)) child.kill('SIGKILL');
  };
  const stop = (graceMs: number): Promise<readonly WorkerExit[]> => {
    stopping ??= Promise.all(
      started.map(async ({ child, process: worker }) => {
        if (isRunning(child)) child.kill('SIGTERM');
        let timer: NodeJS.Timeout | undefined;
        const overdue = new Promise<'overdue'>((resolve) => {
          timer = setTimeout(() => resolve('overdue'), graceMs);
        });
        const first = await Promise.race([worker.exited, overdue]);
        clearTimeout(timer);
        if (first !== 'overdue') return first;
        if (isRunning(child)) child.kill('SIGKILL');
        return worker.exited;
      }),
    );
    return stopping;
  };

  try {
    for (let index = 0; index < options.count; index++) {
      started.push(await startOne(setpriv, args, options.env));
    }
  } catch (error) {
    kill();
    await Promise.all(started.map(({ process: worker }) => worker.exited));
    throw error;
  }

  const unexpectedExit = new Promise<WorkerExit & { readonly output: string }>((resolve) => {
    for (const { process: worker } of started) {
      void worker.exited.then((exit) => {
        if (stopping === undefined) resolve({ ...exit, output: worker.outputTail() });
      });
    }
  });
  return { workers: started.map(({ process: worker }) => worker), unexpectedExit, stop, kill };
}
