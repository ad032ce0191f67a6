/**
 * `npm run bench:ingest [-- --rows 100000]`: how fast manifest ingestion is and how much memory it takes, measured, not
 * asserted. Generates a manifest in a temp dir, starts a throwaway redis-server, and runs in separate child processes
 * (so each peak RSS is its own):
 *   1. the baseline: csv-parse alone reading the same file (no validation, no Redis);
 *   2. the ingest without preflight (validation, spool, enqueue into BullMQ and the ledger);
 *   3. the same ingest again (a no-op: every job exists);
 *   4. the ingest into a new run with V8's old space capped at 96 MB: it finishes only if memory stays flat.
 * Done for the given row count and a tenth of it. Peak RSS mostly shows how lazily V8 collects garbage (the baseline's
 * grows too); the capped run and the peak heap are the figures that show what ingestion really holds.
 */
import { spawn } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'csv-parse';
import { z } from 'zod';
import { ingestManifest } from '../src/ingest/ingest-manifest.js';
import { RunLedger } from '../src/ledger/run-ledger.js';
import { startLocalStack } from '../src/local/stack.js';
import { closeConnection, connectProducer, createProducerConnection } from '../src/queue/connections.js';

const scriptPath = fileURLToPath(import.meta.url);
const BUCKET = 'bench-bucket';
/** The V8 old-space cap of the flat-memory run; the modules alone take ~30 MB of heap. */
const HEAP_CAP_MB = 96;

const measurementSchema = z.object({
  rows: z.number(),
  jobs: z.number(),
  added: z.number(),
  ms: z.number(),
  maxRssKb: z.number(),
  /** The largest heapUsed seen (sampled every 20 ms): live data plus garbage not yet collected. */
  peakHeapBytes: z.number(),
  /** heapUsed after a full GC at the end: what the run still holds (the per-row id maps, mostly). */
  retainedHeapBytes: z.number(),
});
type Measurement = z.output<typeof measurementSchema>;

const rooms = ['kitchen', 'living room', 'bathroom', 'bedroom', 'hallway', 'facade', 'terrace', 'office'];

/** A realistic manifest: ids, keys, prompts with commas and quotes, model inputs, two metadata columns. */
async function writeManifest(file: string, rows: number): Promise<void> {
  const out = createWriteStream(file);
  const write = (text: string): Promise<void> =>
    out.write(text) ? Promise.resolve() : new Promise<void>((resolve) => out.once('drain', () => resolve()));
  await write('id,control_image,prompt,seed,steps,guidance,output_format,room,notes\n');
  for (let index = 0; index < rows; index++) {
    const room = rooms[index % rooms.length] ?? 'room';
    const id = `shot-${String(index).padStart(6, '0')}`;
    await write(
      `${id},controls/${id}.png,"A ${room}, photorealistic, soft ""golden hour"" light, oak and plaster",` +
        `${index},${15 + (index % 36)},${(3 + (index % 7) * 0.5).toFixed(1)},jpg,${room},batch ${Math.floor(index / 1000)}\n`,
    );
  }
  await new Promise<void>((resolve, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolve())));
}

let peakHeapBytes = 0;
function sampleHeap(): void {
  peakHeapBytes = Math.max(peakHeapBytes, process.memoryUsage().heapUsed);
}

/** Prints the child's figures; `retained` is measured while the work's results are still referenced. */
function finish(measurement: Pick<Measurement, 'rows' | 'jobs' | 'added' | 'ms'>): void {
  sampleHeap();
  // The child runs with --expose-gc, so a full collection shows what is really still held.
  const gc: unknown = Reflect.get(globalThis, 'gc');
  if (typeof gc === 'function') gc();
  const figures: Measurement = {
    ...measurement,
    maxRssKb: process.resourceUsage().maxRSS,
    peakHeapBytes,
    retainedHeapBytes: process.memoryUsage().heapUsed,
  };
  process.stdout.write(`${JSON.stringify(figures)}\n`);
}

async function childParse(file: string): Promise<void> {
  const started = performance.now();
  let rows = -1;
  const parser = createReadStream(file).pipe(
    parse({ bom: true, info: true, relax_column_count: true, skip_empty_lines: true }),
  );
  for await (const _ of parser) rows++;
  finish({ rows, jobs: 0, added: 0, ms: performance.now() - started });
}

async function childIngest(file: string, redisUrl: string, prefix: string, run: string): Promise<void> {
  const redis = createProducerConnection(redisUrl);
  await connectProducer(redis);
  try {
    const started = performance.now();
    const outcome = await ingestManifest(
      { manifestPath: file, run, preflight: false },
      { redis, ledger: new RunLedger(redis, prefix), prefix, bucket: BUCKET },
    );
    finish({ rows: outcome.rows, jobs: outcome.jobs.total, added: outcome.added, ms: performance.now() - started });
  } finally {
    await closeConnection(redis);
  }
}

function runChild(args: readonly string[], nodeOptions: readonly string[] = []): Promise<Measurement> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [...nodeOptions, '--expose-gc', '--import', 'tsx', scriptPath, '--child', ...args],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
        env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
      },
    );
    let output = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      output += chunk;
    });
    child.once('error', reject);
    child.once('close', (code) => {
      if (code !== 0) reject(new Error(`bench child ${args[0] ?? ''} exited with ${code}`));
      else resolve(measurementSchema.parse(JSON.parse(output.trim().split('\n').at(-1) ?? '')));
    });
  });
}

function rowsFlag(argv: readonly string[]): number {
  const index = argv.indexOf('--rows');
  const value = index === -1 ? '100000' : (argv[index + 1] ?? '');
  if (!/^\d+$/.test(value) || Number(value) < 10) throw new Error(`--rows takes a whole number ≥ 10, got "${value}"`);
  return Number(value);
}

const mb = (kb: number) => `${(kb / 1024).toFixed(0)} MB`;
const mbOfBytes = (bytes: number) => mb(bytes / 1024);
const perSecond = (m: Measurement) => Math.round(m.rows / (m.ms / 1000)).toLocaleString('en-US');
const seconds = (m: Measurement) => `${(m.ms / 1000).toFixed(2)} s`;

async function measure(directory: string, redisUrl: string, rows: number): Promise<string> {
  const file = path.join(directory, `manifest-${rows}.csv`);
  await writeManifest(file, rows);
  const size = (await stat(file)).size;
  const prefix = `bench${rows}`;
  const baseline = await runChild(['parse', file]);
  const first = await runChild(['ingest', file, redisUrl, prefix, `bench-${rows}`]);
  const again = await runChild(['ingest', file, redisUrl, prefix, `bench-${rows}`]);
  // The same ingest into a fresh run with V8's old space capped: it can only finish if what it holds stays small.
  const capped = await runChild(
    ['ingest', file, redisUrl, `${prefix}capped`, `bench-${rows}`],
    [`--max-old-space-size=${HEAP_CAP_MB}`],
  );
  if (first.added !== rows || again.added !== 0) {
    throw new Error(`expected ${rows} jobs added then 0, got ${first.added} then ${again.added}`);
  }
  const line = (name: string, m: Measurement) =>
    `  ${name.padEnd(30)} ${seconds(m).padStart(9)} ${perSecond(m).padStart(8)} ${mb(m.maxRssKb).padStart(9)} ` +
    `${mbOfBytes(m.peakHeapBytes).padStart(10)} ${mbOfBytes(m.retainedHeapBytes).padStart(10)}`;
  return [
    `manifest: ${rows.toLocaleString('en-US')} rows, ${(size / 1024 / 1024).toFixed(1)} MB, no preflight`,
    `  ${''.padEnd(30)} ${'time'.padStart(9)} ${'rows/s'.padStart(8)} ${'peak RSS'.padStart(9)} ${'peak heap'.padStart(10)} ${'heap kept'.padStart(10)}`,
    line('baseline: csv-parse only', baseline),
    line('ingest (validate + enqueue)', first),
    line('ingest again (nothing new)', again),
    line(`ingest, old space ≤ ${HEAP_CAP_MB} MB`, capped),
    `  ingest rows/s ÷ csv-parse rows/s: ${(first.ms ? baseline.ms / first.ms : 0).toFixed(3)}; ` +
      `peak RSS ingest − baseline: ${mb(first.maxRssKb - baseline.maxRssKb)}`,
  ].join('\n');
}

async function main(argv: readonly string[]): Promise<void> {
  const childIndex = argv.indexOf('--child');
  if (childIndex !== -1) {
    setInterval(sampleHeap, 20).unref();
    const [kind, file, redisUrl, prefix, run] = argv.slice(childIndex + 1);
    if (kind === 'parse' && file !== undefined) return childParse(file);
    if (kind === 'ingest' && file && redisUrl && prefix && run) return childIngest(file, redisUrl, prefix, run);
    throw new Error(`unknown bench child ${argv.slice(childIndex + 1).join(' ')}`);
  }
  const rows = rowsFlag(argv);
  const directory = await mkdtemp(path.join(os.tmpdir(), 'depthq-bench-ingest-'));
  const stack = await startLocalStack({ s3: false, simulator: false });
  try {
    const redis = stack.redis;
    if (redis === undefined) throw new Error('the local stack has no Redis');
    process.stdout.write(`depthq ingest benchmark — node ${process.version}, ${os.cpus().length} CPUs\n`);
    for (const size of [Math.max(10, Math.round(rows / 10)), rows]) {
      process.stdout.write(`${await measure(directory, redis.url, size)}\n`);
    }
  } finally {
    await stack.stop();
    await rm(directory, { recursive: true, force: true });
  }
}

await main(process.argv.slice(2));
