/**
 * `npm run bench:dashboard [-- --jobs 100000]`: what one refresh of a run page costs — one `readRunDetail` (the counters,
 * then an HSCAN of every result row: status, failures by reason, completions per 10 s, latest outputs) and the markup
 * of its live region — on a throwaway redis-server holding a run of `--jobs` finished rows (90% succeeded over an hour,
 * 10% failed). The figures docs/dashboard.md quotes; measured, not asserted.
 */
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { ledgerKeys } from '../src/core/keys.js';
import { runFragment } from '../src/dashboard/pages/run-page.js';
import { readRunDetail } from '../src/dashboard/run-data.js';
import { RunLedger } from '../src/ledger/run-ledger.js';
import { startRedisServer } from '../src/local/redis.js';

const { values } = parseArgs({
  options: { jobs: { type: 'string', default: '100000' }, rounds: { type: 'string', default: '3' } },
});
const jobs = Number(values.jobs);
const rounds = Number(values.rounds);
if (!Number.isSafeInteger(jobs) || jobs < 1) throw new Error(`--jobs must be a whole number ≥ 1, got ${values.jobs}`);
if (!Number.isSafeInteger(rounds) || rounds < 1) throw new Error(`--rounds must be ≥ 1, got ${values.rounds}`);

const PREFIX = 'bench';
const RUN = 'dashboard-run';
const HOUR_MS = 3_600_000;

const server = await startRedisServer();
const redis = new Redis(server.url);
try {
  const ledger = new RunLedger(redis, PREFIX);
  const { meta } = await ledger.createRun(RUN, {
    model: 'black-forest-labs/flux-depth-pro',
    budgetMicros: null,
    manifest: { name: 'bench.csv', sha256: '0'.repeat(64) },
    output: { bucket: 'renders', prefix: 'out/', keyTemplate: '{run}/{style}/{id}.{ext}' },
    defaults: {},
  });
  const keys = ledgerKeys(PREFIX, RUN);
  const startMs = Date.now() - HOUR_MS;
  let succeeded = 0;
  for (let first = 0; first < jobs; first += 1000) {
    const fields: string[] = [];
    for (let index = first; index < Math.min(jobs, first + 1000); index += 1) {
      const ok = index % 10 !== 0;
      if (ok) succeeded += 1;
      const finishedAt = new Date(startMs + Math.floor((index / jobs) * HOUR_MS)).toISOString();
      const rowId = `row-${String(index).padStart(6, '0')}`;
      fields.push(
        `${RUN}.${rowId}.evening`,
        JSON.stringify({
          status: ok ? 'succeeded' : 'failed',
          rowId,
          style: 'evening',
          outputKey: `out/${RUN}/evening/${rowId}.jpg`,
          seed: 1_000_000 + index,
          predictionId: index.toString(32).padStart(26, 'q'),
          predictionIds: [index.toString(32).padStart(26, 'q')],
          costMicros: ok ? 50_000 : 0,
          attempts: 1,
          ...(ok ? {} : { reason: 'fatal', error: `control image s3://in/${rowId}.png does not exist` }),
          startedAt: new Date(Date.parse(finishedAt) - 8000).toISOString(),
          finishedAt,
          metadata: { sku: `SKU-${index}` },
          prompt: 'a bright open-plan living room at dusk, oak floor, floor-to-ceiling windows, warm light',
        }),
      );
    }
    await redis.hset(keys.results, ...fields);
  }
  await redis.hset(keys.counters, 'total', jobs, 'succeeded', succeeded, 'failed', jobs - succeeded);

  const timings: Array<{ readMs: number; renderMs: number; bytes: number }> = [];
  for (let round = 0; round < rounds; round += 1) {
    const started = performance.now();
    const detail = await readRunDetail(ledger, RUN, meta);
    const read = performance.now();
    const markup = runFragment(detail).text;
    timings.push({ readMs: read - started, renderMs: performance.now() - read, bytes: Buffer.byteLength(markup) });
  }
  const best = timings.reduce((a, b) => (a.readMs <= b.readMs ? a : b));
  process.stdout.write(
    `${jobs} rows on redis-server ${server.url.replace(/:\/\/.*@/, '://')} (best of ${rounds})\n` +
      `readRunDetail (counters + HSCAN of every row): ${best.readMs.toFixed(0)} ms (${((best.readMs / jobs) * 1000).toFixed(1)} µs/row)\n` +
      `live region markup: ${best.renderMs.toFixed(1)} ms, ${(best.bytes / 1024).toFixed(1)} KiB\n` +
      `=> with the default costFactor 5, a page of this run refreshes every ${Math.max(1, (5 * best.readMs) / 1000).toFixed(1)} s\n`,
  );
} finally {
  redis.disconnect();
  await server.stop();
}
