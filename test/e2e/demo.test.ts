/**
 * `depthq demo` as a user runs it: the CLI as a child process, on its own embedded stack. Checks what the user is
 * promised — exit 0, a table of seeds, costs and keys, the right total spend, the files on disk (byte-for-byte what the
 * sidecars describe), a contact sheet whose links all resolve, nothing left running, a second run that works — and
 * that Ctrl-C and a bad --out leave nothing behind and destroy nothing.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, processIsGone } from '../helpers/stack.js';

const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const STYLES = ['scandinavian-daylight', 'night-warm-lights'];
const PRICE = '$0.05';

interface DemoRun {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

const children: ChildProcess[] = [];
/** Every pid a demo announced, killed in afterAll if a failed test left one behind. */
const announcedPids = new Set<number>();
let scratch: string;

beforeAll(async () => {
  scratch = await mkdtemp(path.join(os.tmpdir(), 'depthq-demo-test-'));
});

afterAll(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const pid of announcedPids) if (!processIsGone(pid)) process.kill(pid, 'SIGKILL');
  await rm(scratch, { recursive: true, force: true });
});

function startDemo(args: readonly string[]): { child: ChildProcess; done: Promise<DemoRun>; stdout: () => string } {
  const child = spawn(process.execPath, ['bin/depthq.js', 'demo', ...args], {
    cwd: projectRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
  });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString('utf8');
    for (const pid of pidsIn(stdout)) announcedPids.add(pid);
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  const done = new Promise<DemoRun>((resolve) => {
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, done, stdout: () => stdout };
}

function runDemoCli(args: readonly string[]): Promise<DemoRun> {
  return startDemo(args).done;
}

function workerPidsIn(stdout: string): number[] {
  const line = /^Worker pids: ([\d ]+)/m.exec(stdout)?.[1] ?? '';
  return line
    .trim()
    .split(/\s+/)
    .filter((part) => part !== '')
    .map(Number);
}

function redisPidIn(stdout: string): number | undefined {
  const pid = /redis-server pid (\d+)/.exec(stdout)?.[1];
  return pid === undefined ? undefined : Number(pid);
}

function pidsIn(stdout: string): number[] {
  const redis = redisPidIn(stdout);
  return [...workerPidsIn(stdout), ...(redis === undefined ? [] : [redis])];
}

interface TableRow {
  readonly row: string;
  readonly style: string;
  readonly status: string;
  readonly seed: number;
  readonly cost: string;
  readonly outputKey: string;
}

function tableRowsIn(stdout: string): TableRow[] {
  const rows: TableRow[] = [];
  for (const line of stdout.split('\n')) {
    const match =
      /^(\S+)\s+(\S+)\s+(succeeded|failed|flagged|parked|queued|running|canceled|missing)\S*\s+(\d+)\s+(\S+)\s+(\S+)$/.exec(
        line,
      );
    if (match === null) continue;
    const [, row = '', style = '', status = '', seed = '', cost = '', outputKey = ''] = match;
    rows.push({ row, style, status, seed: Number(seed), cost, outputKey });
  }
  return rows;
}

function describeRun(run: DemoRun): string {
  return `exit ${run.code ?? run.signal}\n--- stdout\n${run.stdout}\n--- stderr\n${run.stderr}`;
}

/** Every local file a run promises, checked against the table it printed. Returns the run id. */
async function expectCompleteOutput(run: DemoRun, outDir: string, images: number): Promise<string> {
  expect(run.code, describeRun(run)).toBe(0);
  const runId = /^Run (demo-[\w-]+):/m.exec(run.stdout)?.[1];
  expect(runId).toBeDefined();

  const rows = tableRowsIn(run.stdout);
  expect(rows).toHaveLength(images * STYLES.length);
  const rowIds = [...new Set(rows.map((row) => row.row))];
  expect(rowIds).toHaveLength(images);
  for (const rowId of rowIds) {
    expect(
      rows
        .filter((row) => row.row === rowId)
        .map((row) => row.style)
        .sort(),
    ).toEqual([...STYLES].sort());
  }
  const cents = rows.length * 5;
  expect(run.stdout).toContain(
    `Total spend: $${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, '0')} for ${rows.length} of ${rows.length} images`,
  );

  for (const row of rows) {
    expect(row).toMatchObject({ status: 'succeeded', cost: PRICE });
    expect(row.outputKey).toBe(`renders/${runId}/${row.style}/${row.row}.jpg`);
    const image = await readFile(path.join(outDir, row.style, `${row.row}.jpg`));
    expect(Array.from(image.subarray(0, 3))).toEqual([0xff, 0xd8, 0xff]);
    const sidecar = JSON.parse(await readFile(path.join(outDir, row.style, `${row.row}.jpg.json`), 'utf8')) as {
      seed: number;
      model: string;
      output: { key: string; sha256: string; size: number; contentType: string };
      cost: { micros: number };
      input: { control_image: string; seed: number };
    };
    expect(sidecar).toMatchObject({
      seed: row.seed,
      model: 'black-forest-labs/flux-depth-pro',
      output: {
        key: row.outputKey,
        sha256: createHash('sha256').update(image).digest('hex'),
        size: image.length,
        contentType: 'image/jpeg',
      },
      cost: { micros: 50_000 },
      input: { seed: row.seed },
    });
    const control = await readFile(path.join(outDir, 'controls', `${row.row}.png`));
    expect(control.subarray(1, 4).toString('latin1')).toBe('PNG');
  }

  const html = await readFile(path.join(outDir, 'index.html'), 'utf8');
  const links = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((match) => decodeURIComponent(match[1] ?? ''));
  for (const link of links) {
    expect(link).not.toMatch(/^(\/|[a-z]+:)/);
    expect(existsSync(path.join(outDir, link)), `index.html links ${link}`).toBe(true);
  }
  for (const row of rows) {
    expect(links).toContain(`${row.style}/${row.row}.jpg`);
    expect(links).toContain(`controls/${row.row}.png`);
    expect(html).toContain(`seed ${row.seed}`);
  }
  // Staged output is swapped in, never left beside it.
  const siblings = await readdir(path.dirname(outDir));
  expect(siblings.filter((name) => name.startsWith(`${path.basename(outDir)}.partial-`))).toEqual([]);
  return runId ?? '';
}

async function expectNothingLeftRunning(run: DemoRun): Promise<void> {
  const workers = workerPidsIn(run.stdout);
  const redis = redisPidIn(run.stdout);
  expect(workers.length).toBeGreaterThan(0);
  expect(redis).toBeDefined();
  for (const pid of [...workers, ...(redis === undefined ? [] : [redis])]) {
    expect(await eventually(() => processIsGone(pid), 5_000), `pid ${pid} is still running`).toBe(true);
  }
}

describe('depthq demo', () => {
  it('describes its options and refuses bad ones with exit code 2 before starting anything', async () => {
    const help = await runDemoCli(['--help']);
    expect(help.code).toBe(0);
    for (const option of ['--out <dir>', '--images <n>', '--workers <n>']) expect(help.stdout).toContain(option);

    for (const [args, message] of [
      [['--images', '0'], '--images must be a whole number from 1 to 20, got "0"'],
      [['--images', 'lots'], '--images must be a whole number'],
      [['--workers', '0'], '--workers must be a whole number from 1 to 8, got "0"'],
    ] as const) {
      const run = await runDemoCli(args);
      expect(run.code, describeRun(run)).toBe(2);
      expect(run.stderr).toContain(message);
      expect(run.stdout).not.toContain('Local stack');
    }
  });

  it('refuses to replace a folder it did not write, and leaves it as it was', async () => {
    const foreign = await mkdtemp(path.join(scratch, 'someone-elses-'));
    await writeFile(path.join(foreign, 'keep.txt'), 'mine');
    const run = await runDemoCli(['--images', '1', '--out', foreign]);
    expect(run.code, describeRun(run)).toBe(2);
    expect(run.stderr).toContain('already holds files that the demo did not write');
    expect(run.stdout).not.toContain('Local stack');
    expect(await readdir(foreign)).toEqual(['keep.txt']);
    expect(await readFile(path.join(foreign, 'keep.txt'), 'utf8')).toBe('mine');
  });

  it('renders, reports, copies and cleans up — and runs again, replacing its output', async () => {
    const outDir = path.join(scratch, 'out');
    const first = await runDemoCli(['--images', '2', '--out', outDir]);
    const firstRun = await expectCompleteOutput(first, outDir, 2);
    expect(first.stdout).toMatch(/^Workers stopped: pid \d+ exited 0, pid \d+ exited 0$/m);
    expect(workerPidsIn(first.stdout)).toHaveLength(2);
    await expectNothingLeftRunning(first);

    const stale = path.join(outDir, 'from-the-first-run.txt');
    await writeFile(stale, 'stale');
    const second = await runDemoCli(['--images', '2', '--out', outDir]);
    const secondRun = await expectCompleteOutput(second, outDir, 2);
    expect(secondRun).not.toBe(firstRun);
    expect(existsSync(stale)).toBe(false);
    await expectNothingLeftRunning(second);
  }, 150_000);

  it('stops workers and stack on Ctrl-C mid-render, dies by SIGINT, and leaves the output folder untouched', async () => {
    const outDir = path.join(scratch, 'interrupted');
    const demo = startDemo(['--images', '4', '--out', outDir]);
    // Interrupted with renders in flight, the harder case: workers must close with jobs running.
    const rendering = await eventually(() => /^progress: .* [1-9]\d* running/m.test(demo.stdout()), 60_000);
    expect(rendering, demo.stdout()).toBe(true);
    demo.child.kill('SIGINT');
    const run = await demo.done;
    expect(run.signal, describeRun(run)).toBe('SIGINT');
    expect(run.stderr).toContain('stopping the workers and the local stack');
    await expectNothingLeftRunning(run);
    expect(existsSync(outDir)).toBe(false);
    const siblings = await readdir(scratch);
    expect(siblings.filter((name) => name.startsWith('interrupted.partial-'))).toEqual([]);
  }, 90_000);
});
