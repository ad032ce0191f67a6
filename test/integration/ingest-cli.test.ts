/**
 * `depthq ingest` and scripts/ingest-manifest.ts as a user runs them: child processes against a local Redis and
 * s3rver, their exit codes and what they print. Spawned asynchronously: s3rver runs in this process and must keep
 * answering the child's preflight.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Redis } from 'ioredis';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RunLedger } from '../../src/ledger/run-ledger.js';
import { closeConnection, connectProducer, createProducerConnection } from '../../src/queue/connections.js';
import { putBytesObject } from '../../src/storage/s3.js';
import { uniqueName, useLocalStack } from '../helpers/stack.js';

const repoRoot = path.resolve(import.meta.dirname, '../..');
const stack = useLocalStack({ simulator: false });
let redis: Redis;
let workDirectory: string;

beforeAll(async () => {
  const running = stack();
  if (running.redis === undefined || running.s3 === undefined) throw new Error('the stack lacks Redis or S3');
  redis = createProducerConnection(running.redis.url);
  await connectProducer(redis);
  workDirectory = await mkdtemp(path.join(os.tmpdir(), 'depthq-ingest-cli-'));
  const png = await sharp({ create: { width: 16, height: 16, channels: 3, background: '#808080' } })
    .png()
    .toBuffer();
  const s3 = running.s3.client();
  for (const key of ['controls/a.png', 'controls/b.png']) {
    await putBytesObject(s3, { bucket: running.s3.bucket, key }, png, 'image/png');
  }
});

afterAll(async () => {
  await closeConnection(redis);
  await rm(workDirectory, { recursive: true, force: true });
});

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function run(command: readonly string[], prefix: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, command, {
      cwd: repoRoot,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '/tmp',
        ...stack().env(),
        DEPTHQ_PREFIX: prefix,
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 45_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const depthq = (args: readonly string[], prefix: string) => run(['bin/depthq.js', 'ingest', ...args], prefix);

async function manifest(text: string): Promise<string> {
  const directory = await mkdtemp(path.join(workDirectory, 'case-'));
  const file = path.join(directory, 'manifest.csv');
  await writeFile(file, text);
  return file;
}

describe('depthq ingest', () => {
  it('lists every problem with file:line:column, exits 2 and enqueues nothing', async () => {
    const prefix = uniqueName('cli').replace(/-/g, '_');
    const file = await manifest('id,control_image,prompt,steps\na,controls/a.png,A,60\nb,controls/missing.png,B,20\n');
    const result = await depthq([file, '--run', 'run-1'], prefix);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('manifest.csv:2:4 (steps): steps must be a whole number from 15 to 50, got 60');
    expect(result.stderr).toContain('manifest.csv:3:2 (control_image): control image s3://');
    expect(result.stderr).toContain('depthq: manifest.csv: 2 problems in 2 rows of 2; nothing was enqueued.');
    expect(result.stderr).not.toMatch(/\n\s+at /);
    expect(await redis.keys(`${prefix}:*`)).toEqual([]);
  });

  it('enqueues a valid manifest with a summary, and nothing on the second run', async () => {
    const prefix = uniqueName('cli').replace(/-/g, '_');
    const file = await manifest('id,control_image,prompt\na,controls/a.png,A\nb,controls/b.png,B\n');
    const first = await depthq([file, '--run', 'run-1', '--budget', '5', '--set', 'steps=20'], prefix);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toContain('manifest.csv → run "run-1" (new run, black-forest-labs/flux-depth-pro)');
    expect(first.stdout).toContain('estimate   $0.10 for 2 images');
    expect(first.stdout).toContain('budget     $5.00');
    expect(first.stdout).toContain('preflight  2 control images checked');
    expect(first.stdout).toContain('Enqueued 2 new jobs.');
    const ledger = new RunLedger(redis, prefix);
    expect((await ledger.counters('run-1')).queued).toBe(2);
    expect((await ledger.getRun('run-1'))?.defaults).toEqual({ steps: 20 });

    const second = await depthq([file, '--run', 'run-1', '--set', 'steps=20'], prefix);
    expect(second.code).toBe(0);
    expect(second.stdout).toContain('jobs       2 (0 new, 2 already in the run)');
    expect(second.stdout).toContain('Enqueued 0 new jobs.');
    expect((await ledger.counters('run-1')).total).toBe(2);
  });

  it('refuses bad flags naming them, with exit code 2', async () => {
    const prefix = uniqueName('cli').replace(/-/g, '_');
    const file = await manifest('id,control_image,prompt\na,controls/a.png,A\n');
    const concurrency = await depthq([file, '--run', 'run-1', '--preflight-concurrency', '0'], prefix);
    expect(concurrency.code).toBe(2);
    expect(concurrency.stderr).toContain('--preflight-concurrency must be a whole number from 1 to 1000, got "0"');
    const budget = await depthq([file, '--run', 'run-1', '--budget', 'lots'], prefix);
    expect(budget.code).toBe(2);
    expect(budget.stderr).toContain('--budget must be a dollar amount with at most six decimals');
    const noRun = await depthq([file], prefix);
    expect(noRun.code).toBe(2);
    expect(noRun.stderr).toContain("required option '--run <id>' not specified");
    const missing = await depthq([path.join(workDirectory, 'nope.csv'), '--run', 'run-1'], prefix);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('nope.csv does not exist');
    expect(await redis.keys(`${prefix}:*`)).toEqual([]);
  });

  it('runs as the standalone script too (a dry run changes nothing)', async () => {
    const prefix = uniqueName('cli').replace(/-/g, '_');
    const file = await manifest('id,control_image,prompt\na,controls/a.png,A\n');
    const result = await run(
      ['--import', 'tsx', 'scripts/ingest-manifest.ts', file, '--run', 'run-1', '--dry-run'],
      prefix,
    );
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('Dry run: nothing was enqueued and the run was not changed; 1 job would be added.');
    expect(await redis.keys(`${prefix}:*`)).toEqual([]);
  });
});
