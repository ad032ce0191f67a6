/**
 * Ingest: how fast a manifest becomes jobs in the queue, and how much memory that takes, against csv-parse alone
 * reading the same file — each in its own child process (scripts/bench/child.ts), so each peak RSS is its own,
 * interleaved in the same run (csv-parse, ingest, csv-parse, ingest again) so the machine's load falls on both alike:
 *   - csv-parse alone: the floor (no validation, no Redis);
 *   - the ingest without preflight: read, validate, spool, estimate, then enqueue into BullMQ and the ledger;
 *   - the same ingest again: a no-op (every job exists), which still reads, validates and compares every row;
 *   - with `capHeap`, the ingest into a new run with V8's old space capped: it finishes only if memory stays flat.
 * The manifest is realistic: ids, keys, prompts with commas and quotes, model inputs, two metadata columns.
 */
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { startLocalStack } from '../../src/local/stack.js';
import { closeConnection, connectProducer, createProducerConnection } from '../../src/queue/connections.js';
import { formatNumber, machineNote, redisCpuMs, runOnceChild } from './processes.js';
import type { BenchSection } from './table.js';

/** The V8 old-space cap of the flat-memory run; the modules alone take ~30 MB of heap. */
const HEAP_CAP_MB = 96;

const figuresSchema = z.object({
  rows: z.number(),
  jobs: z.number(),
  added: z.number(),
  ms: z.number(),
  cpuMs: z.number(),
  maxRssKb: z.number(),
  peakHeapBytes: z.number(),
  retainedHeapBytes: z.number(),
});
type Figures = z.output<typeof figuresSchema>;

const rooms = ['kitchen', 'living room', 'bathroom', 'bedroom', 'hallway', 'facade', 'terrace', 'office'];

export async function writeBenchManifest(file: string, rows: number): Promise<void> {
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

interface Measured {
  readonly name: string;
  readonly figures: Figures;
  /** redis-server's CPU time during the child's run (0 for csv-parse, which uses no Redis). */
  readonly redisCpuMs: number;
}

const rowsPerSecond = (figures: Figures) => figures.rows / (figures.ms / 1000);
const mb = (kb: number) => `${formatNumber(kb / 1024)} MB`;

function row(measured: Measured, baseline: Measured | undefined): string[] {
  const { figures } = measured;
  return [
    measured.name,
    `${formatNumber(figures.ms / 1000, 2)} s`,
    formatNumber(rowsPerSecond(figures)),
    baseline === undefined ? '' : `${formatNumber(rowsPerSecond(figures) / rowsPerSecond(baseline.figures), 3)}×`,
    formatNumber((figures.cpuMs * 1000) / figures.rows, 1),
    mb(figures.maxRssKb),
    mb(figures.peakHeapBytes / 1024),
    mb(figures.retainedHeapBytes / 1024),
    measured.redisCpuMs === 0 ? '' : formatNumber((measured.redisCpuMs * 1000) / figures.rows, 0),
  ];
}

export interface IngestBenchOptions {
  readonly quick: boolean;
  /** @defaultValue 10,000 quick, 100,000 otherwise */
  readonly rows?: number;
  /** Also ingest into a new run with V8's old space capped at 96 MB. @defaultValue false */
  readonly capHeap?: boolean;
}

export async function runIngestSection(options: IngestBenchOptions): Promise<BenchSection> {
  const rows = options.rows ?? (options.quick ? 10_000 : 100_000);
  const directory = await mkdtemp(path.join(os.tmpdir(), 'depthq-bench-ingest-'));
  const stack = await startLocalStack({ s3: false, simulator: false });
  const redisUrl = stack.redis?.url;
  const redis = createProducerConnection(redisUrl ?? '');
  try {
    if (redisUrl === undefined) throw new Error('the local stack has no Redis');
    await connectProducer(redis);
    const file = path.join(directory, `manifest-${rows}.csv`);
    await writeBenchManifest(file, rows);
    const size = (await stat(file)).size;
    const measure = async (name: string, args: string[], nodeOptions: string[] = []): Promise<Measured> => {
      const before = await redisCpuMs(redis);
      const figures = figuresSchema.parse(await runOnceChild(args, nodeOptions));
      return { name, figures, redisCpuMs: args[0] === 'parse' ? 0 : (await redisCpuMs(redis)) - before };
    };
    const prefix = 'benchingest';
    const baseline = await measure('csv-parse alone', ['parse', file]);
    const first = await measure('ingest (validate, spool, enqueue)', ['ingest', file, redisUrl, prefix, 'bench-run']);
    const baselineAgain = await measure('csv-parse alone, again', ['parse', file]);
    const again = await measure('ingest again (nothing new)', ['ingest', file, redisUrl, prefix, 'bench-run']);
    const measured = [baseline, first, baselineAgain, again];
    if (options.capHeap === true) {
      measured.push(
        await measure(
          `ingest, new run, old space ≤ ${HEAP_CAP_MB} MB`,
          ['ingest', file, redisUrl, `${prefix}capped`, 'bench-run'],
          [`--max-old-space-size=${HEAP_CAP_MB}`],
        ),
      );
    }
    if (first.figures.added !== rows || again.figures.added !== 0) {
      throw new Error(`expected ${rows} jobs added then 0, got ${first.figures.added} then ${again.figures.added}`);
    }
    // Each ingest is compared with the csv-parse run next to it.
    const baselineOf = (entry: Measured): Measured | undefined =>
      entry === baseline || entry === baselineAgain ? undefined : entry === first ? baseline : baselineAgain;
    const ratio = rowsPerSecond(first.figures) / rowsPerSecond(baseline.figures);
    return {
      title: `Ingest (${formatNumber(rows)} rows, no preflight)`,
      header: [
        'pass',
        'time',
        'rows/s',
        '÷ csv-parse',
        'CPU µs/row',
        'peak RSS',
        'peak heap',
        'heap kept',
        'Redis CPU µs/row',
      ],
      rows: measured.map((entry) => row(entry, baselineOf(entry))),
      notes: [
        `A ${formatNumber(size / 1024 / 1024, 1)} MB manifest of ${formatNumber(rows)} rows (ids, keys, prompts with ` +
          'commas and quotes, seed, steps, guidance, output format, two metadata columns), each pass in its own ' +
          'process, csv-parse and ingest interleaved on one redis-server.',
        'time: from the start of the read to the last job in the queue (the process’s start-up is not in it). ' +
          'peak RSS: the process’s maxRSS; peak heap: the largest heapUsed sampled every 20 ms; heap kept: heapUsed ' +
          'after a full GC at the end. CPU µs/row: the process’s own CPU time (user + system) over the pass, per row: ' +
          'unlike the wall-clock figures, it barely moves with the load other programs put on the machine. Redis CPU µs/row: redis-server’s CPU time during the pass, per row — work ' +
          'that runs beside the ingest process, on the machine’s other core when it has one free.',
        `Targets: ≥ 20,000 rows/s for ${formatNumber(rows)} rows (measured: ` +
          `${formatNumber(rowsPerSecond(first.figures))} rows/s, ${formatNumber(ratio, 3)}× csv-parse) with peak ` +
          `RSS < 300 MB (measured: ${mb(first.figures.maxRssKb)}).`,
        machineNote(),
      ],
    };
  } finally {
    await closeConnection(redis).catch(() => undefined);
    await stack.stop();
    await rm(directory, { recursive: true, force: true });
  }
}
