/**
 * The local stack must leave nothing behind: a child process starts the full stack, and after it ends — by stopping
 * the stack, or killed by a signal — no redis-server of its own runs, no port it used answers, and (when it could
 * clean up) no temp dir is left.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import type { StackChildReport } from '../fixtures/stack-child.js';
import { eventually, portRefusesConnections, processIsGone } from '../helpers/stack.js';

const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

interface RunningChild {
  readonly child: ChildProcess;
  readonly report: StackChildReport;
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly stderr: () => string;
}

const started: RunningChild[] = [];

afterEach(async () => {
  // A failed assertion must not leave the child, its redis-server or the dirs it could not remove behind.
  for (const { child, report } of started.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    // If the test failed because redis-server outlived its parent, it must not outlive the test too.
    if (!processIsGone(report.redis.pid)) process.kill(report.redis.pid, 'SIGKILL');
    await rm(report.redis.dir, { recursive: true, force: true });
    await rm(report.s3.directory, { recursive: true, force: true });
  }
});

async function startChild(args: readonly string[]): Promise<RunningChild> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/stack-child.ts', ...args], {
    cwd: projectRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
  });
  let stdout = '';
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  const report = await new Promise<StackChildReport>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
      const line = stdout.split('\n')[0];
      if (stdout.includes('\n') && line !== undefined) resolve(JSON.parse(line) as StackChildReport);
    });
    void exit.then(({ code, signal }) =>
      reject(new Error(`the child exited (${code ?? signal}) before reporting its stack:\n${stderr}`)),
    );
  });
  const running = { child, report, exit, stderr: () => stderr };
  started.push(running);
  return running;
}

function withinMs<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function expectNothingRuns(report: StackChildReport): Promise<void> {
  expect(processIsGone(report.pid)).toBe(true);
  // Orphaned by its parent's death, redis-server gets its SIGTERM from the kernel: give it a moment to shut down.
  expect(await eventually(() => processIsGone(report.redis.pid), 10_000)).toBe(true);
  for (const port of [report.redis.port, report.s3.port, report.simulator.port]) {
    expect(await portRefusesConnections(port)).toBe(true);
  }
}

describe('a process that started the local stack', () => {
  it('stops it and then exits on its own (nothing keeps the event loop alive), leaving no process, port or dir', async () => {
    const { report, exit, stderr } = await startChild(['stop']);
    expect(report.redis.pid).not.toBe(report.pid);
    const outcome = await withinMs(exit, 30_000, 'the child exiting after stop()');
    expect(outcome, stderr()).toEqual({ code: 0, signal: null });
    await expectNothingRuns(report);
    expect(existsSync(report.redis.dir)).toBe(false);
    expect(existsSync(report.s3.directory)).toBe(false);
  });

  it('with stopOnSignals, stops the stack on SIGTERM, removes its dirs, and still dies by SIGTERM', async () => {
    const { child, report, exit, stderr } = await startChild(['hold', '--stop-on-signals']);
    expect(processIsGone(report.redis.pid)).toBe(false);
    child.kill('SIGTERM');
    const outcome = await withinMs(exit, 30_000, 'the child exiting on SIGTERM');
    expect(outcome, stderr()).toEqual({ code: null, signal: 'SIGTERM' });
    await expectNothingRuns(report);
    expect(existsSync(report.redis.dir)).toBe(false);
    expect(existsSync(report.s3.directory)).toBe(false);
  });

  it.each(['SIGTERM', 'SIGINT', 'SIGKILL'] as const)(
    'without signal handlers, killed by %s: its redis-server does not outlive it',
    async (signal) => {
      const { child, report, exit } = await startChild(['hold']);
      expect(processIsGone(report.redis.pid)).toBe(false);
      child.kill(signal);
      const outcome = await withinMs(exit, 30_000, `the child exiting on ${signal}`);
      expect(outcome.signal).toBe(signal);
      await expectNothingRuns(report);
      // No JavaScript ran on the way out, so the temp dirs stay: afterEach removes them.
    },
  );
});
