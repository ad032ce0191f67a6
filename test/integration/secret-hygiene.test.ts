/**
 * Secrets never reach logs, Redis, reports or sidecars. A real run — ingested with `depthq ingest`, rendered by a
 * `depthq worker` process at debug level through a simulator that injects failures, flags, 5xx answers and lost creates
 * — is given a recognisable API token (the only one the simulator accepts), a recognisable S3 secret (s3rver does not
 * check signatures, so any secret works) and a Redis password (set on this file's redis-server). Then every place a
 * secret could land is scanned (test/helpers/secret-scan.ts): the worker's and the commands' output, every Redis key of
 * every type (BullMQ's included), the run report, every sidecar and the outputs' metadata, `depthq config` and
 * `depthq verify --json`. None may hold a secret, in any encoding, nor a presigned URL's signature.
 */

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { HeadObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import type { Redis } from 'ioredis';
import pLimit from 'p-limit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RunLedger } from '../../src/ledger/run-ledger.js';
import { makeControlImages } from '../../src/local/control-images/index.js';
import { closeConnection, connectProducer, createProducerConnection } from '../../src/queue/connections.js';
import { getObjectBytes, presignGetUrl, putBytesObject } from '../../src/storage/s3.js';
import { workerEnvironment } from '../helpers/render-run.js';
import { dumpRedis, findPresignedSignatures, findSecretLeaks } from '../helpers/secret-scan.js';
import { uniqueName, useLocalStack } from '../helpers/stack.js';
import { startWorker, useWorkerProcesses, waitForCondition, waitForExit } from '../helpers/worker-process.js';

/**
 * Shaped like the real thing (Replicate tokens start r8_; AWS secrets hold '/' and '+'), unlike anything else. Drawn
 * at each run, so no token-shaped string is committed (secret scanners would flag it) and no run can pass on a value
 * an earlier one left behind.
 */
const nonce = () => randomBytes(12).toString('hex');
const FAKE_API_TOKEN = `r8_DepthqFake${nonce()}`;
const FAKE_S3_SECRET = `DepthqFakeS3Secret/${nonce()}+Qx`;
const FAKE_REDIS_PASSWORD = `DepthqFakeRedisPassword${nonce()}`;
const SECRETS = [FAKE_API_TOKEN, FAKE_S3_SECRET, FAKE_REDIS_PASSWORD];
const ROWS = 6;

const repoRoot = path.resolve(import.meta.dirname, '../..');
const stack = useLocalStack({
  simulator: {
    apiToken: FAKE_API_TOKEN,
    startDelayMs: { min: 5, max: 30 },
    latencyMs: { min: 20, max: 80 },
    outputMaxSide: 64,
    faults: { failureRate: 0.25, flaggedRate: 0.2, serverErrorRate: 0.05, connectionResetRate: 0.05 },
  },
});
useWorkerProcesses();

let redis: Redis;
let workDirectory: string;
let redisUrl: string;

beforeAll(async () => {
  const running = stack();
  if (running.redis === undefined) throw new Error('the stack has no Redis');
  const open = createProducerConnection(running.redis.url);
  await connectProducer(open);
  await open.config('SET', 'requirepass', FAKE_REDIS_PASSWORD);
  await closeConnection(open).catch(() => undefined);
  const url = new URL(running.redis.url);
  url.password = FAKE_REDIS_PASSWORD;
  redisUrl = url.toString();
  redis = createProducerConnection(redisUrl);
  await connectProducer(redis);
  workDirectory = await mkdtemp(path.join(os.tmpdir(), 'depthq-secret-hygiene-'));
});

afterAll(async () => {
  if (redis !== undefined) await closeConnection(redis);
  if (workDirectory !== undefined) await rm(workDirectory, { recursive: true, force: true });
});

interface Outcome {
  readonly command: string;
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function depthq(args: readonly string[], env: Record<string, string>): Promise<Outcome> {
  const child = spawn(process.execPath, [path.join(repoRoot, 'bin/depthq.js'), ...args], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString('utf8');
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  return new Promise((resolve, reject) => {
    // Generous: a child compiles the TypeScript CLI first, on a 2-core machine shared with other test files.
    const timer = setTimeout(() => child.kill('SIGKILL'), 300_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ command: `depthq ${args.join(' ')}`, code, stdout, stderr });
    });
  });
}

async function setFaults(changes: Record<string, number>): Promise<void> {
  const simulator = stack().simulator;
  if (simulator === undefined) throw new Error('the stack has no simulator');
  const response = await fetch(new URL('/_sim/faults', simulator.baseUrl), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(changes),
  });
  expect(response.status).toBe(200);
}

describe('secret hygiene', () => {
  it('the scanner finds a secret in each form it may take, and a presigned URL by its signature', async () => {
    expect(findSecretLeaks(`{"t":"${FAKE_S3_SECRET}"}`, SECRETS)).toHaveLength(1);
    expect(findSecretLeaks(`?k=${encodeURIComponent(FAKE_S3_SECRET)}`, SECRETS)).toHaveLength(1);
    expect(findSecretLeaks(Buffer.from(`Bearer ${FAKE_API_TOKEN}`).toString('base64'), SECRETS)).toHaveLength(0);
    expect(findSecretLeaks(Buffer.from(FAKE_API_TOKEN).toString('base64'), SECRETS)).toHaveLength(1);
    expect(findSecretLeaks('nothing here', SECRETS)).toEqual([]);
    const s3 = stack().s3?.client();
    if (s3 === undefined) throw new Error('the stack has no S3');
    const url = await presignGetUrl(s3, { bucket: 'b', key: 'k.png' }, 60);
    expect(findPresignedSignatures(`fetching ${url} failed`)).toHaveLength(1);
    expect(findPresignedSignatures(`fetching ${url.slice(0, url.indexOf('?'))}?… failed`)).toEqual([]);
  });

  it('a whole run leaves no secret in logs, Redis, the report, sidecars, config or verify', {
    timeout: 900_000,
  }, async () => {
    const running = stack();
    const s3Server = running.s3;
    if (s3Server === undefined) throw new Error('the stack has no S3');
    const s3 = s3Server.client();
    const prefix = uniqueName('dq').replace(/-/g, '_');
    const run = uniqueName('run');
    const env: Record<string, string> = {
      ...workerEnvironment(running, prefix),
      REDIS_URL: redisUrl,
      AWS_SECRET_ACCESS_KEY: FAKE_S3_SECRET,
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      LOG_LEVEL: 'debug',
    };
    expect(env.REPLICATE_API_TOKEN).toBe(FAKE_API_TOKEN);

    const images = await makeControlImages({ count: ROWS, width: 128, height: 96 });
    const lines = ['id,control_image,prompt'];
    for (const image of images) {
      const key = `controls/${image.name}.png`;
      await putBytesObject(s3, { bucket: s3Server.bucket, key }, image.bytes, image.contentType);
      lines.push(`${image.name},${key},"${image.description}"`);
    }
    const manifest = path.join(workDirectory, 'manifest.csv');
    await writeFile(manifest, `${lines.join('\n')}\n`);

    const outputs: Outcome[] = [];
    const ingest = await depthq(['ingest', manifest, '--run', run, '--budget', '5', '--set', 'steps=15'], env);
    outputs.push(ingest);
    expect(ingest.code, ingest.stderr).toBe(0);
    const worker = await startWorker({ env, logLevel: 'debug', args: ['--concurrency', '4'] }, 120_000);
    const ledger = new RunLedger(redis, prefix);
    await waitForCondition(
      'every job ended',
      async () => {
        const c = await ledger.counters(run);
        return c.total === ROWS && c.succeeded + c.failed + c.flagged === ROWS;
      },
      { timeoutMs: 300_000, workers: [worker] },
    );
    worker.signal('SIGTERM');
    await waitForExit(worker, 120_000);
    // The commands read the provider (verify): without injected faults, their answers are the run's, not the faults'.
    await setFaults({ failureRate: 0, flaggedRate: 0, serverErrorRate: 0, connectionResetRate: 0 });

    // Three at a time: each is a Node process loading the CLI, mostly waiting on the shared cores.
    const limit = pLimit(3);
    const commands = [
      ['status', run, '--json'],
      ['status', run],
      ['report', run, '--format', 'jsonl'],
      ['report', run],
      ['runs'],
      ['config'],
      ['config', '--json'],
      ['verify', run, '--json'],
      ['verify', run],
      ['verify', 'no-such-run'],
    ];
    outputs.push(...(await Promise.all(commands.map((args) => limit(() => depthq(args, env))))));
    for (const outcome of outputs) {
      expect([0, 1, 2], `${outcome.command}: ${outcome.stderr}`).toContain(outcome.code);
    }
    const verifyJson = outputs.find((outcome) => outcome.command === `depthq verify ${run} --json`);
    const report = JSON.parse(verifyJson?.stdout ?? '{}') as { figures?: { rows?: number } };
    expect(report.figures?.rows).toBe(ROWS);
    const unknown = outputs.find((outcome) => outcome.command === 'depthq verify no-such-run');
    // The message names the Redis it read, without its password.
    expect(unknown?.stderr).toContain(':***@127.0.0.1');

    // Every sidecar, and the metadata of every output object.
    const texts: Array<readonly [string, string]> = [];
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: s3Server.bucket, Prefix: run }));
    const keys = (listed.Contents ?? []).flatMap((object) => (object.Key === undefined ? [] : [object.Key]));
    const sidecars = keys.filter((key) => key.endsWith('.json'));
    expect(sidecars.length).toBeGreaterThan(0);
    for (const key of keys) {
      if (key.endsWith('.json')) {
        const bytes = await getObjectBytes(s3, { bucket: s3Server.bucket, key });
        texts.push([`sidecar ${key}`, Buffer.from(bytes).toString('utf8')]);
      } else {
        const head = await s3.send(new HeadObjectCommand({ Bucket: s3Server.bucket, Key: key }));
        texts.push([`metadata of ${key}`, JSON.stringify(head.Metadata ?? {})]);
      }
    }
    const dump = await dumpRedis(redis);
    // BullMQ's keys are in the dump (job hashes, events stream), not only the ledger's.
    expect(dump.text).toContain(`"key":"${prefix}:render:events","type":"stream"`);
    expect(dump.keys).toBeGreaterThan(ROWS);
    texts.push(['redis', dump.text]);
    const logs: Array<readonly [string, string]> = [
      ['worker stdout', worker.stdout()],
      ['worker stderr', worker.stderr()],
      ...outputs.flatMap((outcome) => [
        [`${outcome.command} stdout`, outcome.stdout] as const,
        [`${outcome.command} stderr`, outcome.stderr] as const,
      ]),
    ];
    // The worker logged at debug level, so there was something to scan.
    expect(worker.logLines().length).toBeGreaterThan(ROWS);

    const leaks = [...logs, ...texts].flatMap(([where, text]) => findSecretLeaks(text, SECRETS, where));
    expect(leaks).toEqual([]);
    const signatures = [...logs, ...texts].flatMap(([where, text]) => findPresignedSignatures(text, where));
    expect(signatures).toEqual([]);
  });
});
