/**
 * `depthq verify` against real runs on the local stack (redis-server, s3rver, the simulator, a real render worker): a
 * clean run verifies, and each way a run can be broken — an output deleted, an output's bytes changed, a sidecar with
 * another seed, a counter off by one, a paid prediction no row knows — is found and named by its kind and job. The
 * command itself: exit codes 0, 1 and 2 and its JSON.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { ledgerKeys } from '../../src/core/keys.js';
import { fluxDepthPro } from '../../src/core/models.js';
import { type RenderJob, renderJobIdOf } from '../../src/core/render-job.js';
import { openRunContext } from '../../src/runs/run-context.js';
import { type VerifyOptions, type VerifyReport, verifyRun } from '../../src/runs/verify-run.js';
import { getObjectBytes, presignGetUrl, putBytesObject, putJsonObject } from '../../src/storage/s3.js';
import { startRenderWorker } from '../../src/worker/start.js';
import {
  prepareRenderRun,
  type RenderRunFixture,
  useRenderRunCleanup,
  waitForCounters,
  workerEnvironment,
} from '../helpers/render-run.js';
import { eventually, useLocalStack } from '../helpers/stack.js';

const stack = useLocalStack({
  simulator: { startDelayMs: { min: 5, max: 20 }, latencyMs: { min: 10, max: 40 }, outputMaxSide: 64 },
});
const { fixtures, workers } = useRenderRunCleanup();

const repoRoot = path.resolve(import.meta.dirname, '../..');
const price = fluxDepthPro.priceMicrosPerImage;
const JOBS = 4;

/** A run of 2 images × 2 styles, rendered to the end by a real worker (closed after). */
async function renderedRun(): Promise<RenderRunFixture> {
  const fixture = await prepareRenderRun(stack(), { images: 2, styles: ['day', 'night'], budgetMicros: 10 * price });
  fixtures.push(fixture);
  const worker = await startRenderWorker(fixture.config, { concurrency: 4 });
  workers.push(worker);
  const counters = await waitForCounters(fixture.ledger, fixture.run, (c) => c.succeeded === JOBS, 120_000);
  expect(counters).toMatchObject({ total: JOBS, succeeded: JOBS });
  await worker.close();
  return fixture;
}

async function verify(fixture: RenderRunFixture, options: VerifyOptions = {}): Promise<VerifyReport> {
  const context = await openRunContext(fixture.config);
  try {
    return await verifyRun(context, fixture.run, { s3: fixture.s3, ...options });
  } finally {
    await context.close();
  }
}

function firstJob(fixture: RenderRunFixture): { readonly job: RenderJob; readonly jobId: string } {
  const job = fixture.jobs[0];
  if (job === undefined) throw new Error('the run has no jobs');
  return { job, jobId: renderJobIdOf(job) };
}

async function outputKeyOf(fixture: RenderRunFixture, jobId: string): Promise<string> {
  const row = await fixture.ledger.result(fixture.run, jobId);
  if (row?.outputKey === undefined) throw new Error(`job ${jobId} has no output key`);
  return row.outputKey;
}

function kindsOf(report: VerifyReport): string[] {
  return report.problems.map((problem) => problem.kind);
}

interface Outcome {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function depthq(args: readonly string[], env: Record<string, string>): Promise<Outcome> {
  const child = spawn(process.execPath, [path.join(repoRoot, 'bin/depthq.js'), ...args], {
    cwd: repoRoot,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/tmp',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      ...env,
    },
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
    // A generous bound on a loaded 2-core machine: a child compiles the TypeScript CLI before it runs.
    const timer = setTimeout(() => child.kill('SIGKILL'), 300_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

// Each case renders a run first; on a loaded 2-core machine that, and a command's start, take far longer than usual.
describe('depthq verify', { timeout: 600_000 }, () => {
  it('verifies a clean run: every output hashed, the ledger recounted, every prediction matched', async () => {
    const fixture = await renderedRun();
    const report = await verify(fixture);
    expect(report.problems).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.figures).toMatchObject({
      rows: JOBS,
      rowsByStatus: { succeeded: JOBS },
      outputsChecked: JOBS,
      sidecarsChecked: JOBS,
      spentMicros: JOBS * price,
      spentRecountedMicros: JOBS * price,
      reservedMicros: 0,
      reservedRecountedMicros: 0,
      ledgerRead: 'atomic',
      provider: { state: 'ran', matched: JOBS, billed: JOBS, unknownUnbilled: 0 },
    });
    expect(report.figures.outputBytesHashed).toBeGreaterThan(0);

    // The scanned read (a run too large for one transaction) finds the same, stable.
    const scanned = await verify(fixture, { atomicRowLimit: 0 });
    expect(scanned.problems).toEqual([]);
    expect(scanned.figures.ledgerRead).toBe('stable');
    // Without the provider the report says the check did not happen.
    const withoutProvider = await verify(fixture, { provider: null });
    expect(withoutProvider.ok).toBe(true);
    expect(withoutProvider.figures.provider.state).toBe('skipped');

    // Seen from later: a run that began before the provider's retention (one hour) is matched only partly, and one
    // whose every job ended before it is not matched at all — and the report says so.
    const meta = await fixture.ledger.getRun(fixture.run);
    const createdMs = Date.parse(meta?.createdAt ?? '');
    const hour = fixture.config.replicate.retentionMs;
    const partly = await verify(fixture, { now: () => createdMs + hour + 30_000 });
    expect(partly.ok).toBe(true);
    expect(partly.figures.provider.state).toBe('partial');
    expect(partly.figures.provider.reason).toContain('before the provider');
    const later = await verify(fixture, { now: () => Date.now() + 2 * hour });
    expect(later.ok).toBe(true);
    expect(later.figures.provider).toMatchObject({ state: 'skipped', listed: 0 });
    expect(later.figures.provider.reason).toContain("more than the provider's retention");
  });

  it('verifies a run while it renders: the workers moving on between reads is not a problem', async () => {
    const fixture = await prepareRenderRun(stack(), { images: 5, styles: ['day', 'night'], budgetMicros: 20 * price });
    fixtures.push(fixture);
    const total = fixture.jobs.length;
    const worker = await startRenderWorker(fixture.config, { concurrency: 2 });
    workers.push(worker);
    const reports: VerifyReport[] = [];
    for (;;) {
      const counters = await fixture.ledger.counters(fixture.run);
      reports.push(await verify(fixture));
      if (counters.succeeded === total) break;
    }
    await worker.close();
    for (const report of reports) expect(report.problems).toEqual([]);
    // The last one saw the whole run: every output, every prediction.
    expect(reports.at(-1)?.figures).toMatchObject({
      outputsChecked: total,
      provider: { matched: total, billed: total },
    });
  });

  it('finds a deleted output', async () => {
    const fixture = await renderedRun();
    const { jobId } = firstJob(fixture);
    const key = await outputKeyOf(fixture, jobId);
    await fixture.s3.send(new DeleteObjectCommand({ Bucket: fixture.bucket, Key: key }));
    const report = await verify(fixture);
    expect(report.ok).toBe(false);
    expect(report.problems).toEqual([expect.objectContaining({ kind: 'output-missing', jobId })]);
    expect(report.figures.outputsChecked).toBe(JOBS - 1);
  });

  it('finds an output whose bytes changed', async () => {
    const fixture = await renderedRun();
    const { jobId } = firstJob(fixture);
    const key = await outputKeyOf(fixture, jobId);
    const bytes = Buffer.from(await getObjectBytes(fixture.s3, { bucket: fixture.bucket, key }));
    // One bit flipped in the middle: same size, another sha256.
    const index = Math.floor(bytes.length / 2);
    bytes[index] = (bytes[index] ?? 0) ^ 1;
    await putBytesObject(fixture.s3, { bucket: fixture.bucket, key }, bytes, 'image/webp');
    const report = await verify(fixture);
    expect(report.problems).toEqual([expect.objectContaining({ kind: 'output-bytes-differ', jobId })]);
    expect(report.problems[0]?.message).toContain(`(${bytes.length} bytes)`);
  });

  it('finds a sidecar with another seed', async () => {
    const fixture = await renderedRun();
    const { jobId } = firstJob(fixture);
    const sidecarRef = { bucket: fixture.bucket, key: `${await outputKeyOf(fixture, jobId)}.json` };
    const sidecar = JSON.parse(Buffer.from(await getObjectBytes(fixture.s3, sidecarRef)).toString('utf8'));
    const seed = Number(sidecar.seed) + 1;
    await putJsonObject(fixture.s3, sidecarRef, { ...sidecar, seed, input: { ...sidecar.input, seed } });
    const report = await verify(fixture);
    expect(report.ok).toBe(false);
    expect(new Set(kindsOf(report))).toEqual(new Set(['sidecar-mismatch']));
    expect(report.problems.every((problem) => problem.jobId === jobId)).toBe(true);
    expect(report.problems.map((problem) => problem.message).join('\n')).toContain(
      `the seed is ${seed} in the sidecar`,
    );
  });

  it('finds a ledger counter off by one', async () => {
    const fixture = await renderedRun();
    await fixture.redis.hincrby(ledgerKeys(fixture.prefix, fixture.run).counters, 'succeeded', 1);
    const report = await verify(fixture);
    expect(report.problems).toEqual([
      expect.objectContaining({
        kind: 'counter-mismatch',
        message: `the succeeded counter is ${JOBS + 1}, but ${JOBS} rows are succeeded`,
      }),
    ]);
  });

  it('finds a paid prediction of the run’s input that no row knows', async () => {
    const fixture = await renderedRun();
    const { job, jobId } = firstJob(fixture);
    // The same input a worker sends for this job (a fresh presigned URL: the signature is not part of the match).
    const env = workerEnvironment(stack(), fixture.prefix);
    const controlImage = await presignGetUrl(fixture.s3, job.controlImage, 600);
    const response = await fetch(`${env.REPLICATE_BASE_URL}/models/${job.model}/predictions`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${env.REPLICATE_API_TOKEN}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ input: { ...job.input, control_image: controlImage } }),
    });
    expect(response.status).toBe(201);
    const orphan = (await response.json()) as { id: string };
    const succeeded = await eventually(async () => {
      const got = await fetch(`${env.REPLICATE_BASE_URL}/predictions/${orphan.id}`, {
        headers: { Authorization: `Bearer ${env.REPLICATE_API_TOKEN}` },
      });
      return ((await got.json()) as { status: string }).status === 'succeeded';
    }, 60_000);
    expect(succeeded).toBe(true);

    const report = await verify(fixture);
    expect(report.problems).toContainEqual(
      expect.objectContaining({ kind: 'orphan-prediction', predictionId: orphan.id, jobId }),
    );
    // The job's input was paid for twice: its own prediction and the orphan.
    expect(report.problems).toContainEqual(expect.objectContaining({ kind: 'job-billed-twice', jobId }));
    expect(new Set(kindsOf(report))).toEqual(new Set(['orphan-prediction', 'job-billed-twice']));
    expect(report.figures.provider).toMatchObject({ state: 'ran', matched: JOBS + 1, billed: JOBS + 1 });
  });

  it('as a command: exit 0 and JSON for a clean run, 1 with a line per problem, 2 for an unknown run', async () => {
    const fixture = await renderedRun();
    const env = workerEnvironment(stack(), fixture.prefix);
    const clean = await depthq(['verify', fixture.run, '--json'], env);
    expect(clean.stderr).toBe('');
    expect(clean.code).toBe(0);
    const report = JSON.parse(clean.stdout) as VerifyReport;
    expect(report).toMatchObject({ run: fixture.run, ok: true, problems: [] });
    expect(report.figures.outputsChecked).toBe(JOBS);

    const { jobId } = firstJob(fixture);
    await fixture.s3.send(new DeleteObjectCommand({ Bucket: fixture.bucket, Key: await outputKeyOf(fixture, jobId) }));
    const broken = await depthq(['verify', fixture.run], env);
    expect(broken.code).toBe(1);
    expect(broken.stdout).toContain(`run ${fixture.run}: 1 problems`);
    expect(broken.stdout).toMatch(new RegExp(`^output-missing ${jobId.replace(/[.~]/g, '\\$&')}: s3://`, 'm'));

    const unknown = await depthq(['verify', 'no-such-run'], env);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('there is no run "no-such-run"');
    expect(unknown.stderr).not.toContain('    at ');
  });
});
