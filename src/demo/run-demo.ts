/**
 * `depthq demo`: the whole product on one machine with no accounts. It starts the embedded stack (redis-server,
 * s3rver, the Replicate simulator), draws its own control images and puts them in the local S3, enqueues images ×
 * styles as one budgeted run, renders it with worker *processes* (as a deployment would), then prints the ledger's
 * result rows and spend and copies outputs, sidecars and controls into a local folder with a contact sheet.
 *
 * Shutdown order is the point of the nested `finally` blocks: workers stop before the stack they depend on (a worker
 * closing against a vanished Redis would wait on it), and the stack stops whatever happened — an error, a failed
 * worker, or Ctrl-C (the caller turns signals into `signal`, see cli/demo.ts).
 */
import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { loadConfig } from '../config/index.js';
import { DepthqError } from '../core/errors.js';
import { defaultOutputKeyTemplate, sidecarKeyOf } from '../core/keys.js';
import { formatUsd, type Micros, usdToMicros } from '../core/money.js';
import type { RunningDashboard } from '../dashboard/server.js';
import { type ResultRow, RunLedger } from '../ledger/run-ledger.js';
import { makeControlImages } from '../local/control-images/index.js';
import { type LocalStack, startLocalStack } from '../local/stack.js';
import { closeConnection, connectProducer, createProducerConnection } from '../queue/connections.js';
import { createRenderQueue, defaultRenderQueueSettings, enqueueRenderJobs } from '../queue/render-queue.js';
import { type ContactSheetCell, renderContactSheet } from '../runs/contact-sheet.js';
import {
  checkOutputDirectory,
  createStagingDirectory,
  replaceOutputDirectory,
  writeRelativeFile,
} from '../runs/output-directory.js';
import { createProgressReporter, type ProgressSnapshot, type ProgressStream } from '../runs/progress.js';
import { getObjectBytes, putBytesObject } from '../storage/s3.js';
import {
  CONTROL_PREFIX,
  controlKeyOf,
  DEMO_BUDGET_USD,
  DEMO_MODEL,
  DEMO_STYLES,
  type DemoImage,
  demoRunId,
  OUTPUT_PREFIX,
  type PlannedJob,
  planDemoJobs,
} from './demo-plan.js';
import { formatSummaryTable, type SummaryRow } from './summary-table.js';
import { startWorkerProcesses, type WorkerExit, type WorkerFleet } from './worker-processes.js';

export const DEMO_DEFAULT_IMAGES = 8;
export const DEMO_MAX_IMAGES = 20;
export const DEMO_DEFAULT_WORKERS = 2;
export const DEMO_MAX_WORKERS = 8;
export const DEMO_DEFAULT_OUT = 'demo-output';

/** Jobs in flight per worker: with 2 workers and 16 jobs, two waves, so the progress bar has something to show. */
const WORKER_CONCURRENCY = 4;
/** The demo is meant to finish in well under two minutes; past this something is wrong and it says so. */
const RUN_TIMEOUT_MS = 150_000;
const POLL_INTERVAL_MS = 250;
/** Time a worker gets to close after SIGTERM before it is killed (its own shutdown deadline is set shorter). */
const WORKER_STOP_GRACE_MS = 15_000;
const WORKER_SHUTDOWN_TIMEOUT_MS = 10_000;
const KEY_PREFIX = 'depthq';

/**
 * Latencies shaped like Replicate's (a wait in the queue, then the render) but a few seconds instead of tens, and
 * 1024-pixel outputs as FLUX makes them.
 */
const DEMO_SIMULATOR = {
  startDelayMs: { min: 200, max: 800 },
  latencyMs: { min: 1_500, max: 3_500 },
  outputMaxSide: 1024,
} as const;

export interface DemoOptions {
  /** The folder outputs are copied to; replaced as a whole (see runs/output-directory.ts). */
  readonly outDir: string;
  readonly images: number;
  readonly workers: number;
  /**
   * Serve `depthq dashboard` (read-only) on this port of 127.0.0.1 (0: a free one) while the run renders, and keep it
   * and the local stack up after the run until the stop signal (Ctrl-C), so the run can be looked at.
   */
  readonly dashboardPort?: number;
}

export interface DemoIo {
  /** The summary and the progress (a terminal gets a redrawn progress line). */
  readonly stdout: ProgressStream;
  /**
   * The environment worker processes inherit (PATH, HOME …). Every depthq, Redis, Replicate, S3 and AWS variable in it
   * is dropped: the demo's workers use the embedded stack, never the user's real accounts.
   */
  readonly baseEnv: Readonly<Record<string, string | undefined>>;
  /** Aborted on the first Ctrl-C/SIGTERM: the demo stops the workers, then the stack, and throws DemoInterruptedError. */
  readonly signal?: AbortSignal;
  /** Aborted on a second Ctrl-C: workers are killed instead of waited for. */
  readonly forceSignal?: AbortSignal;
  readonly now?: () => number;
}

export interface DemoRow {
  readonly planned: PlannedJob;
  readonly row: ResultRow | undefined;
}

export interface DemoResult {
  readonly run: string;
  readonly rows: readonly DemoRow[];
  readonly spentMicros: Micros;
  readonly elapsedMs: number;
  /** Absolute. */
  readonly outDir: string;
  readonly workerExits: readonly WorkerExit[];
  /** The run's dashboard page, when the demo served one. */
  readonly dashboardUrl?: string;
}

/** The demo could not complete: a worker died, the run stalled. Reported as one message, exit code 1. */
export class DemoError extends DepthqError {
  override readonly name: string = 'DemoError';
}

export class DemoInterruptedError extends DepthqError {
  override readonly name: string = 'DemoInterruptedError';
}

const FOREIGN_VARIABLE = /^(DEPTHQ_|REPLICATE_|S3_|AWS_|REDIS_)/;

/** The workers' environment: the user's minus anything that could point them elsewhere, plus the stack's. */
export function demoWorkerEnvironment(
  baseEnv: Readonly<Record<string, string | undefined>>,
  stack: LocalStack,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(baseEnv)) {
    if (value !== undefined && !FOREIGN_VARIABLE.test(name) && name !== 'LOG_LEVEL') env[name] = value;
  }
  return {
    ...env,
    ...stack.env(),
    DEPTHQ_PREFIX: KEY_PREFIX,
    DEPTHQ_SHUTDOWN_TIMEOUT_MS: String(WORKER_SHUTDOWN_TIMEOUT_MS),
    // Warnings and errors only: the demo's own output is the progress line, and a worker's log tail is shown if it dies.
    LOG_LEVEL: 'warn',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  };
}

function throwIfInterrupted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new DemoInterruptedError('interrupted');
}

function delay(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** Polls the ledger until every job has ended, drawing progress; fails on a dead worker, a stall or an interruption. */
async function waitForRun(args: {
  readonly ledger: RunLedger;
  readonly run: string;
  readonly fleet: WorkerFleet;
  readonly io: DemoIo;
  readonly startedAt: number;
  readonly now: () => number;
}): Promise<void> {
  const { ledger, run, fleet, io, now } = args;
  const progress = createProgressReporter(io.stdout);
  let workerDied: (WorkerExit & { readonly output: string }) | undefined;
  void fleet.unexpectedExit.then((exit) => {
    workerDied = exit;
  });
  const deadline = now() + RUN_TIMEOUT_MS;
  let snapshot: ProgressSnapshot | undefined;
  try {
    while (true) {
      const [counters, money] = await Promise.all([ledger.counters(run), ledger.money(run)]);
      snapshot = {
        total: counters.total,
        succeeded: counters.succeeded,
        failed: counters.failed + counters.flagged,
        running: counters.running,
        parked: counters.parked,
        spentMicros: money.spent,
        elapsedMs: now() - args.startedAt,
      };
      const ended = counters.succeeded + counters.failed + counters.flagged + counters.canceled;
      if (ended >= counters.total) return;
      progress.update(snapshot);
      throwIfInterrupted(io.signal);
      if (workerDied !== undefined) {
        const how = workerDied.signal === null ? `exit code ${workerDied.code}` : `signal ${workerDied.signal}`;
        throw new DemoError(
          `worker pid ${workerDied.pid} ended on its own (${how}) with ${ended}/${counters.total} jobs done; its output ends with:\n${workerDied.output.trim()}`,
        );
      }
      if (now() > deadline) {
        throw new DemoError(
          `the run did not finish within ${seconds(RUN_TIMEOUT_MS)}: ${ended}/${counters.total} jobs ended, ` +
            `${counters.running} running, ${counters.queued} queued, ${counters.parked} parked`,
        );
      }
      await delay(POLL_INTERVAL_MS, io.signal);
    }
  } finally {
    if (snapshot !== undefined) progress.finish(snapshot);
  }
}

async function uploadControls(
  s3: S3Client,
  bucket: string,
  run: string,
  images: ReadonlyArray<DemoImage & { readonly bytes: Uint8Array }>,
): Promise<void> {
  await Promise.all(
    images.map((image) =>
      putBytesObject(s3, { bucket, key: controlKeyOf(run, image) }, image.bytes, image.contentType),
    ),
  );
}

async function collectRows(ledger: RunLedger, run: string, plan: readonly PlannedJob[]): Promise<DemoRow[]> {
  const byJobId = new Map<string, ResultRow>();
  for await (const { jobId, row } of ledger.results(run)) byJobId.set(jobId, row);
  return plan.map((planned) => ({ planned, row: byJobId.get(planned.jobId) }));
}

function summaryRowOf({ planned, row }: DemoRow): SummaryRow {
  return {
    rowId: planned.image.name,
    style: planned.style.id,
    status: row?.status ?? 'missing',
    ...(row?.reason === undefined ? {} : { reason: row.reason }),
    ...(row?.seed === undefined ? { seed: Number(planned.job.input.seed) } : { seed: row.seed }),
    ...(row?.costMicros === undefined ? {} : { costMicros: row.costMicros }),
    ...(row?.outputKey === undefined ? {} : { outputKey: row.outputKey }),
  };
}

/** Where a job's output goes in the local folder: `<style>/<file name of its key>`. */
function localOutputPathOf(planned: PlannedJob, outputKey: string): string {
  return `${planned.style.id}/${path.posix.basename(outputKey)}`;
}

function localControlPathOf(image: DemoImage): string {
  return `controls/${path.posix.basename(controlKeyOf('run', image))}`;
}

/** Copies controls, outputs and sidecars into `staging` and writes the contact sheet there. */
async function exportOutputs(args: {
  readonly staging: string;
  readonly s3: S3Client;
  readonly bucket: string;
  readonly run: string;
  readonly images: ReadonlyArray<DemoImage & { readonly bytes: Uint8Array }>;
  readonly rows: readonly DemoRow[];
  readonly spentMicros: Micros;
  readonly elapsedMs: number;
}): Promise<void> {
  const { staging, s3 } = args;
  for (const image of args.images) await writeRelativeFile(staging, localControlPathOf(image), image.bytes);
  const cells = new Map<string, ContactSheetCell>();
  await Promise.all(
    args.rows.map(async ({ planned, row }) => {
      const base = {
        status: row?.status ?? 'missing',
        ...(row?.reason === undefined ? {} : { reason: row.reason }),
        ...(row?.error === undefined ? {} : { error: row.error }),
        seed: row?.seed ?? Number(planned.job.input.seed),
        ...(row?.costMicros === undefined ? {} : { costMicros: row.costMicros }),
      };
      if (row?.status !== 'succeeded' || row.outputKey === undefined) {
        cells.set(planned.jobId, base);
        return;
      }
      const imagePath = localOutputPathOf(planned, row.outputKey);
      const sidecarPath = `${imagePath}.json`;
      const [image, sidecar] = await Promise.all([
        getObjectBytes(s3, { bucket: args.bucket, key: row.outputKey }),
        getObjectBytes(s3, { bucket: args.bucket, key: sidecarKeyOf(row.outputKey) }),
      ]);
      await writeRelativeFile(staging, imagePath, image);
      await writeRelativeFile(staging, sidecarPath, sidecar);
      cells.set(planned.jobId, { ...base, imagePath, sidecarPath });
    }),
  );
  const html = renderContactSheet({
    run: args.run,
    model: DEMO_MODEL.id,
    totalSpentMicros: args.spentMicros,
    elapsedMs: args.elapsedMs,
    columns: DEMO_STYLES.map((style) => style.label),
    rows: args.images.map((image) => ({
      name: image.name,
      description: image.description,
      controlPath: localControlPathOf(image),
      cells: DEMO_STYLES.map((style) => {
        const planned = args.rows.find((row) => row.planned.image.name === image.name && row.planned.style === style);
        return planned === undefined ? undefined : cells.get(planned.planned.jobId);
      }),
    })),
  });
  await writeRelativeFile(staging, 'index.html', html);
}

/** Resolves when the stop signal is aborted (at once without a signal: nobody could stop the wait). */
function stopRequested(signal: AbortSignal | undefined): Promise<void> {
  if (signal === undefined || signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}

function describeExit(exit: WorkerExit): string {
  return `pid ${exit.pid} ${exit.signal === null ? `exited ${exit.code}` : `killed by ${exit.signal}`}`;
}

export async function runDemo(options: DemoOptions, io: DemoIo): Promise<DemoResult> {
  const now = io.now ?? Date.now;
  const startedAt = now();
  const say = (line: string) => io.stdout.write(`${line}\n`);
  const outDir = path.resolve(options.outDir);
  // Before anything starts: a folder the demo may not replace is the user's to fix (exit code 2).
  await checkOutputDirectory(outDir);
  throwIfInterrupted(io.signal);

  say('Starting the local stack: redis-server, s3rver (local S3) and the Replicate simulator …');
  const stack = await startLocalStack({ simulator: DEMO_SIMULATOR });
  let staging: string | undefined;
  let dashboard: RunningDashboard | undefined;
  let dashboardUrl: string | undefined;
  try {
    const { redis, s3: s3Server, simulator } = stack;
    if (redis === undefined || s3Server === undefined || simulator === undefined) {
      throw new DemoError('the local stack started without one of its parts');
    }
    say(
      `Local stack: redis-server pid ${redis.pid} on 127.0.0.1:${redis.port}, ` +
        `S3 ${s3Server.endpoint} (bucket ${s3Server.bucket}), simulator ${simulator.url}`,
    );
    throwIfInterrupted(io.signal);
    const workerEnv = demoWorkerEnvironment(io.baseEnv, stack);
    const config = loadConfig(workerEnv);
    const run = demoRunId(new Date(startedAt));
    const bucket = s3Server.bucket;
    const s3 = s3Server.client();

    const images = await makeControlImages({ count: options.images });
    await uploadControls(s3, bucket, run, images);
    const plan = planDemoJobs({ run, bucket, images });
    const budget = usdToMicros(DEMO_BUDGET_USD);
    say(
      `Drew ${images.length} control image${images.length === 1 ? '' : 's'} and put them in s3://${bucket}/${CONTROL_PREFIX}/${run}/`,
    );
    throwIfInterrupted(io.signal);

    let rows: DemoRow[];
    let spentMicros: Micros;
    let workerExits: readonly WorkerExit[] = [];
    const producer = createProducerConnection(config.redisUrl, { name: 'depthq-demo' });
    try {
      await connectProducer(producer);
      const ledger = new RunLedger(producer, config.prefix);
      await ledger.createRun(run, {
        model: DEMO_MODEL.id,
        budgetMicros: budget,
        manifest: {
          name: 'depthq demo (generated)',
          sha256: createHash('sha256')
            .update(JSON.stringify(plan.map((planned) => planned.job)))
            .digest('hex'),
        },
        output: { bucket, prefix: OUTPUT_PREFIX, keyTemplate: defaultOutputKeyTemplate },
        defaults: {},
      });
      const queue = createRenderQueue(producer, config.prefix, defaultRenderQueueSettings);
      try {
        await enqueueRenderJobs(
          queue,
          ledger,
          run,
          plan.map((planned) => planned.job),
        );
        say(
          `Run ${run}: ${images.length} images × ${DEMO_STYLES.length} styles = ${plan.length} render jobs on ` +
            `${DEMO_MODEL.id} at ${formatUsd(DEMO_MODEL.priceMicrosPerImage)} an image, budget ${formatUsd(budget)}`,
        );
        throwIfInterrupted(io.signal);
        if (options.dashboardPort !== undefined) {
          // Loaded only when asked for: bull-board and Hono are not part of a plain demo's start.
          const { startDashboardServer } = await import('../dashboard/server.js');
          dashboard = await startDashboardServer({ config, port: options.dashboardPort, s3 });
          dashboardUrl = `${dashboard.url}/runs/${run}`;
          say(`Dashboard: ${dashboardUrl} (live while the run renders; bull-board at ${dashboard.url}/queues)`);
        }
        const fleet = await startWorkerProcesses({
          count: options.workers,
          env: workerEnv,
          concurrency: WORKER_CONCURRENCY,
        });
        const onForce = () => fleet.kill();
        io.forceSignal?.addEventListener('abort', onForce, { once: true });
        try {
          say(
            `Worker pids: ${fleet.workers.map((worker) => worker.pid).join(' ')} (concurrency ${WORKER_CONCURRENCY} each)`,
          );
          await waitForRun({ ledger, run, fleet, io, startedAt, now });
        } finally {
          workerExits = await fleet.stop(io.forceSignal?.aborted ? 0 : WORKER_STOP_GRACE_MS);
          io.forceSignal?.removeEventListener('abort', onForce);
          say(`Workers stopped: ${workerExits.map(describeExit).join(', ')}`);
        }
      } finally {
        await queue.close();
      }
      rows = await collectRows(ledger, run, plan);
      spentMicros = (await ledger.money(run)).spent;
    } finally {
      await closeConnection(producer);
    }

    say('');
    say(formatSummaryTable(rows.map(summaryRowOf)));
    say('');
    const succeeded = rows.filter(({ row }) => row?.status === 'succeeded').length;
    for (const { planned, row } of rows) {
      if (row?.status !== 'succeeded' && row?.error !== undefined) say(`${planned.jobId}: ${row.error}`);
    }
    say(
      `Total spend: ${formatUsd(spentMicros)} for ${succeeded} of ${rows.length} images (budget ${formatUsd(budget)})`,
    );

    staging = await createStagingDirectory(outDir);
    await exportOutputs({
      staging,
      s3,
      bucket,
      run,
      images,
      rows,
      spentMicros,
      elapsedMs: now() - startedAt,
    });
    await replaceOutputDirectory(staging, outDir);
    staging = undefined;
    const elapsedMs = now() - startedAt;
    if (dashboardUrl !== undefined) {
      say(`Outputs are in ${outDir}. The dashboard stays up at ${dashboardUrl} until Ctrl-C.`);
      await stopRequested(io.signal);
    }
    return {
      run,
      rows,
      spentMicros,
      elapsedMs,
      outDir,
      workerExits,
      ...(dashboardUrl === undefined ? {} : { dashboardUrl }),
    };
  } finally {
    if (staging !== undefined) await rm(staging, { recursive: true, force: true });
    // Before the stack: its live pages read the Redis the stack is about to stop.
    await dashboard?.close();
    await stack.stop();
  }
}
