/**
 * The run commands as a user runs them: `node bin/depthq.js …` child processes against a real run on the local stack —
 * exit codes, what they print, and `depthq status --watch` in a pseudo-terminal (util-linux `script`), where it redraws
 * its block in place, next to the same watch on a pipe, where it writes plain lines.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type RunningRenderWorker, startRenderWorker } from '../../src/worker/start.js';
import { prepareRenderRun, type RenderRunFixture, waitForCounters, workerEnvironment } from '../helpers/render-run.js';
import { useLocalStack } from '../helpers/stack.js';

const repoRoot = path.resolve(import.meta.dirname, '../..');
const cli = path.join(repoRoot, 'bin/depthq.js');

const stack = useLocalStack({
  // Long enough that a watch sees the run move; short enough for a quick test.
  simulator: { startDelayMs: { min: 20, max: 50 }, latencyMs: { min: 500, max: 900 }, outputMaxSide: 64 },
});

const fixtures: RenderRunFixture[] = [];
const workers: RunningRenderWorker[] = [];
const folders: string[] = [];
afterAll(async () => {
  for (const worker of workers) await worker.close();
  for (const fixture of fixtures) await fixture.close();
  for (const folder of folders) await rm(folder, { recursive: true, force: true });
});

interface Outcome {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

interface Running {
  /** Resolves when the command has written its first output. */
  readonly started: Promise<void>;
  readonly done: Promise<Outcome>;
}

/** Starts a command (without blocking this process: the worker under test runs in it) and collects its output. */
function start(command: string, args: readonly string[], env: Record<string, string>): Running {
  const child = spawn(command, args, {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let markStarted: () => void = () => undefined;
  const started = new Promise<void>((resolve) => {
    markStarted = resolve;
  });
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString('utf8');
    markStarted();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  const done = new Promise<Outcome>((resolve, reject) => {
    // Ten commands start at once (each a Node process compiling TypeScript) on a 2-core machine that also runs other
    // test files: the contact sheet, which resizes every image, has taken more than 40 s there.
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      markStarted();
      resolve({ code, stdout, stderr });
    });
  });
  return { started, done };
}

const depthq = (args: readonly string[], env: Record<string, string>) =>
  start(process.execPath, [cli, ...args], env).done;

function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

describe('run commands on the command line', () => {
  it('lists the run commands, watches a run in a terminal and on a pipe, reports, and refuses mistakes with exit code 2', async () => {
    const fixture = await prepareRenderRun(stack(), { images: 4, styles: ['day', 'night'], budgetMicros: 1_000_000 });
    fixtures.push(fixture);
    const env = workerEnvironment(stack(), fixture.prefix);
    const runId = fixture.run;

    // Both watches start before any worker: they see the run from 0/8 to its end.
    const watchCommand = `${shellQuote(process.execPath)} ${shellQuote(cli)} status ${runId} --watch --interval 0.2`;
    const terminal = start('script', ['-q', '-e', '-c', `stty cols 120 rows 20; ${watchCommand}`, '/dev/null'], env);
    const piped = start(process.execPath, [cli, 'status', runId, '--watch', '--interval', '0.2'], env);
    // The run moves only once both watches have drawn their first status.
    await Promise.all([terminal.started, piped.started]);
    const worker = await startRenderWorker(fixture.config, { concurrency: 2 });
    workers.push(worker);
    expect(await waitForCounters(fixture.ledger, runId, (c) => c.succeeded === 8, 30_000)).toMatchObject({
      succeeded: 8,
    });
    const [tty, pipe] = await Promise.all([terminal.done, piped.done]);

    // The terminal: cursor hidden, the 4-line block redrawn in place (cursor up 3, clear to the end), cursor shown.
    expect(tty.code).toBe(0);
    const screen = tty.stdout;
    expect(screen.startsWith('\x1b[?25l')).toBe(true);
    expect(screen.trimEnd().endsWith('\x1b[?25h')).toBe(true);
    const redraws = screen.split('\x1b[3A\x1b[J').length - 1;
    expect(redraws).toBeGreaterThan(2);
    const finalBlock = (screen.split('\x1b[J').at(-1) ?? '').replace('\x1b[?25h', '').trim();
    const lines = finalBlock.split(/\r?\n/);
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(/^\[#{30}\] 8\/8 ended \(100%\) · run /);
    expect(lines[1]).toBe('waiting 0 · running 0 · succeeded 8 · failed 0 · flagged 0 · parked 0 · canceled 0');
    expect(lines[2]).toContain('spent $0.40');
    expect(lines[3]).toContain('run ended');
    console.log(`depthq status --watch in a pseudo-terminal, final screen:\n${finalBlock}`);

    // The pipe: plain lines, one per change, no escape codes, the last one at the end of the run.
    expect(pipe.code).toBe(0);
    expect(pipe.stdout).not.toContain('\x1b');
    const logLines = pipe.stdout.trimEnd().split('\n');
    expect(logLines.length).toBeGreaterThan(2);
    for (const line of logLines) expect(line).toMatch(/^status: active \d\/8 ended · waiting \d/);
    expect(logLines.at(-1)).toContain('8/8 ended');

    const folder = await mkdtemp(path.join(tmpdir(), 'depthq-cli-'));
    folders.push(folder);
    const reportPath = path.join(folder, 'report.csv');
    const sheetDir = path.join(folder, 'sheet');
    const [help, status, runs, report, unknown, badBudget, flaggedAlone, budget, sheet] = await Promise.all([
      depthq(['--help'], env),
      depthq(['status', runId, '--json'], env),
      depthq(['runs'], env),
      depthq(['report', runId, '--out', reportPath], env),
      depthq(['status', 'no-such-run'], env),
      depthq(['budget', runId, 'ten dollars'], env),
      depthq(['retry', runId, '--flagged'], env),
      depthq(['budget', runId, '2.50'], env),
      depthq(['sheet', runId, '--out', sheetDir], env),
    ]);
    expect(help.code).toBe(0);
    for (const command of ['runs', 'status', 'report', 'retry', 'cancel', 'pause', 'resume', 'budget', 'sheet']) {
      expect(help.stdout).toMatch(new RegExp(`^  ${command}\\b`, 'm'));
    }
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({
      run: runId,
      ended: true,
      counts: { succeeded: 8, total: 8 },
      money: { spentUsd: '0.400000' },
    });
    expect(runs.code).toBe(0);
    // The budget command of the same batch may or may not have run before this listing.
    expect(runs.stdout).toMatch(
      new RegExp(
        `^${runId}\\s+\\S+ \\S+\\s+black-forest-labs/flux-depth-pro\\s+active\\s+8\\s+8\\s+0\\s+\\$0\\.40/\\$(1\\.00|2\\.50)$`,
        'm',
      ),
    );
    expect(report.code).toBe(0);
    expect(report.stderr).toContain(`wrote 8 rows to ${reportPath}`);
    expect((await readFile(reportPath, 'utf8')).trimEnd().split('\n')).toHaveLength(9);
    expect(existsSync(`${reportPath}.partial-${process.pid}`)).toBe(false);
    for (const mistake of [unknown, badBudget, flaggedAlone]) {
      expect(mistake.code).toBe(2);
      expect(mistake.stderr).not.toMatch(/\n\s+at /);
    }
    expect(unknown.stderr).toContain('there is no run "no-such-run"');
    expect(unknown.stderr).toContain('`depthq runs` lists the runs there');
    expect(badBudget.stderr).toContain('<usd> must be a dollar amount with at most six decimals');
    expect(badBudget.stderr).toContain('got "ten dollars"');
    expect(flaggedAlone.stderr).toContain('--flagged needs --reseed');

    expect(budget.code).toBe(0);
    expect(budget.stdout).toContain('budget $1.00 → $2.50');
    expect(sheet.code).toBe(0);
    expect(sheet.stdout).toContain('contact sheet of 4 control images and 8 outputs');
    expect(existsSync(path.join(sheetDir, 'index.html'))).toBe(true);
    expect(existsSync(path.join(sheetDir, 'grid.png'))).toBe(true);
    // One after the other: the second reads what the first wrote.
    const cancel = await depthq(['cancel', runId], env);
    expect(cancel.code).toBe(0);
    expect(cancel.stdout).toContain(`run ${runId} canceled: 0 jobs removed`);
    const pauseCanceled = await depthq(['pause', runId], env);
    expect(pauseCanceled.code).toBe(2);
    expect(pauseCanceled.stderr).toContain('was canceled, which is final');
  }, 240_000);
});
