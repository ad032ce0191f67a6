/**
 * `npm run demo -- --dashboard` as a newcomer runs it: the demo prints its run's dashboard page while the run renders,
 * the page answers, it stays up after the run until Ctrl-C, and Ctrl-C then ends everything with exit code 0.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, processIsGone } from '../helpers/stack.js';

const projectRoot = path.resolve(import.meta.dirname, '../..');
let scratch: string;
let child: ChildProcess | undefined;

beforeAll(async () => {
  scratch = await mkdtemp(path.join(os.tmpdir(), 'depthq-demo-dashboard-'));
});

afterAll(async () => {
  if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await rm(scratch, { recursive: true, force: true });
});

describe('depthq demo --dashboard', () => {
  it('serves the run live, keeps the dashboard up after the run, and stops on Ctrl-C', async () => {
    const demo = spawn(
      process.execPath,
      [
        'bin/depthq.js',
        'demo',
        '--images',
        '1',
        '--workers',
        '1',
        '--dashboard',
        '--dashboard-port',
        '0',
        '--out',
        path.join(scratch, 'out'),
      ],
      { cwd: projectRoot, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env } },
    );
    child = demo;
    let stdout = '';
    let stderr = '';
    demo.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
    });
    demo.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
    });
    const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      demo.once('close', (code, signal) => resolve({ code, signal }));
    });

    expect(await eventually(() => /^Dashboard: http:\/\/127\.0\.0\.1:\d+\/runs\/\S+/m.test(stdout), 120_000)).toBe(
      true,
    );
    const pageUrl = /^Dashboard: (http:\/\/127\.0\.0\.1:\d+\/runs\/\S+)/m.exec(stdout)?.[1] ?? '';
    const run = pageUrl.split('/runs/')[1] ?? '';
    const live = await fetch(pageUrl);
    expect(live.status).toBe(200);
    expect(await live.text()).toContain(`Run ${run}`);

    expect(await eventually(() => stdout.includes('The dashboard stays up at'), 180_000)).toBe(true);
    const after = await (await fetch(pageUrl)).text();
    expect(after).toMatch(/data-count="succeeded">2</);
    const redisPid = Number(/redis-server pid (\d+)/.exec(stdout)?.[1]);

    demo.kill('SIGINT');
    const exit = await closed;
    expect({ exit, stderr }).toMatchObject({ exit: { code: 0, signal: null } });
    expect(stdout).toContain('the workers and the local stack are stopped');
    expect(await eventually(() => processIsGone(redisPid), 30_000)).toBe(true);
    await expect(fetch(pageUrl)).rejects.toThrow();
  }, 300_000);
});
