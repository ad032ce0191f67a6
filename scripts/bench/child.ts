/**
 * The benchmarks' child processes (started by scripts/bench/processes.ts), one role each, so that each one's CPU time
 * and peak RSS are its own and not the stack's (Redis, s3rver and the simulator run in the parent):
 *
 *   bare-worker <redisUrl> <prefix> <concurrency>  a BullMQ Worker on the render queue whose processor does nothing
 *   depthq-worker <concurrency>                    depthq's render worker, configured from the environment
 *   parse <file>                                   csv-parse alone reading a manifest
 *   ingest <file> <redisUrl> <prefix> <run>        depthq's ingest of that manifest (no preflight)
 *
 * A worker prints `{"ready":true}` once it can take jobs, and its figures when `stop` arrives on stdin; the CPU time is
 * counted from ready to stop, so start-up (module loading, connecting) is left out.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { Worker } from 'bullmq';
import { parse } from 'csv-parse';
import { Redis } from 'ioredis';
import { loadConfig } from '../../src/config/index.js';
import { ingestManifest } from '../../src/ingest/ingest-manifest.js';
import { RunLedger } from '../../src/ledger/run-ledger.js';
import { closeConnection, connectProducer, createProducerConnection } from '../../src/queue/connections.js';
import { RENDER_QUEUE_NAME } from '../../src/queue/render-queue.js';
import { startRenderWorker } from '../../src/worker/start.js';
import type { WorkerFigures } from './processes.js';

/** What an ingest or parse child reports. */
export interface IngestFigures {
  readonly rows: number;
  readonly jobs: number;
  readonly added: number;
  readonly ms: number;
  /** The process's CPU time (user + system) over the same span as `ms`. */
  readonly cpuMs: number;
  readonly maxRssKb: number;
  /** The largest heapUsed seen (sampled every 20 ms). */
  readonly peakHeapBytes: number;
  /** heapUsed after a full GC at the end: what the run still holds. */
  readonly retainedHeapBytes: number;
}

const BENCH_BUCKET = 'bench-bucket';

function print(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

function cpuMsSince(start: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000;
}

function stopRequested(): Promise<void> {
  const lines = createInterface({ input: process.stdin });
  return new Promise((resolve) => {
    lines.on('line', (line) => {
      if (line.trim() === 'stop') {
        lines.close();
        resolve();
      }
    });
    lines.once('close', () => resolve());
  });
}

interface RunningWorker {
  readonly worker: Worker;
  close(): Promise<void>;
}

async function runWorker(start: () => Promise<RunningWorker>): Promise<void> {
  const running = await start();
  let completed = 0;
  let failed = 0;
  running.worker.on('completed', () => {
    completed++;
  });
  running.worker.on('failed', () => {
    failed++;
  });
  const gc: unknown = Reflect.get(globalThis, 'gc');
  if (typeof gc === 'function') gc();
  const readyRssKb = Math.round(process.memoryUsage().rss / 1024);
  const cpuStart = process.cpuUsage();
  print({ ready: true });
  await stopRequested();
  const figures: WorkerFigures = {
    cpuMs: cpuMsSince(cpuStart),
    maxRssKb: process.resourceUsage().maxRSS,
    readyRssKb,
    completed,
    failed,
  };
  print(figures);
  await running.close();
  // Measured and closed: whatever handle a library still holds open (keep-alive sockets) must not keep it alive.
  process.exit(0);
}

async function bareWorker(redisUrl: string, prefix: string, concurrency: number): Promise<void> {
  await runWorker(async () => {
    const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
    const worker = new Worker(RENDER_QUEUE_NAME, async () => undefined, { connection, prefix, concurrency });
    await worker.waitUntilReady();
    return {
      worker,
      async close() {
        await worker.close();
        connection.disconnect();
      },
    };
  });
}

async function depthqWorker(concurrency: number): Promise<void> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) if (value !== undefined) env[name] = value;
  await runWorker(async () => {
    const running = await startRenderWorker(loadConfig(env), { concurrency, skipStartupChecks: true });
    return { worker: running.worker as unknown as Worker, close: () => running.close() };
  });
}

let peakHeapBytes = 0;
function sampleHeap(): void {
  peakHeapBytes = Math.max(peakHeapBytes, process.memoryUsage().heapUsed);
}

function finishIngest(measurement: Pick<IngestFigures, 'rows' | 'jobs' | 'added' | 'ms' | 'cpuMs'>): void {
  sampleHeap();
  const gc: unknown = Reflect.get(globalThis, 'gc');
  if (typeof gc === 'function') gc();
  const figures: IngestFigures = {
    ...measurement,
    maxRssKb: process.resourceUsage().maxRSS,
    peakHeapBytes,
    retainedHeapBytes: process.memoryUsage().heapUsed,
  };
  print(figures);
}

async function parseOnly(file: string): Promise<void> {
  const started = performance.now();
  const cpuStart = process.cpuUsage();
  let rows = -1;
  const parser = createReadStream(file).pipe(
    parse({ bom: true, info: true, relax_column_count: true, skip_empty_lines: true }),
  );
  for await (const _ of parser) rows++;
  finishIngest({ rows, jobs: 0, added: 0, ms: performance.now() - started, cpuMs: cpuMsSince(cpuStart) });
}

async function ingest(file: string, redisUrl: string, prefix: string, run: string): Promise<void> {
  const redis = createProducerConnection(redisUrl);
  await connectProducer(redis);
  try {
    const started = performance.now();
    const cpuStart = process.cpuUsage();
    const outcome = await ingestManifest(
      { manifestPath: file, run, preflight: false },
      { redis, ledger: new RunLedger(redis, prefix), prefix, bucket: BENCH_BUCKET },
    );
    finishIngest({
      rows: outcome.rows,
      jobs: outcome.jobs.total,
      added: outcome.added,
      ms: performance.now() - started,
      cpuMs: cpuMsSince(cpuStart),
    });
  } finally {
    await closeConnection(redis);
  }
}

async function main(argv: readonly string[]): Promise<void> {
  const [role, ...args] = argv;
  if (role === 'bare-worker' && args.length === 3) {
    const [redisUrl = '', prefix = '', concurrency = ''] = args;
    return bareWorker(redisUrl, prefix, Number(concurrency));
  }
  if (role === 'depthq-worker' && args.length === 1) return depthqWorker(Number(args[0]));
  if (role === 'parse' || role === 'ingest') {
    setInterval(sampleHeap, 20).unref();
    const [file = '', redisUrl = '', prefix = '', run = ''] = args;
    if (role === 'parse' && file !== '') return parseOnly(file);
    if (role === 'ingest' && file && redisUrl && prefix && run) return ingest(file, redisUrl, prefix, run);
  }
  throw new Error(`unknown bench child: ${argv.join(' ')}`);
}

await main(process.argv.slice(2));
