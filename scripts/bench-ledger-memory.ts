/**
 * `npm run bench:ledger-memory [-- --jobs 20000]`: the Redis memory two per-job records take, measured with
 * `MEMORY USAGE` on a throwaway redis-server — the figures docs/queue-and-ledger.md and src/queue/prediction-claims.ts
 * quote:
 *   1. the ledger's `payloads` hash (one RenderJob JSON per job, kept so a job BullMQ removed can be retried), written
 *      through `registerJobs` as ingest writes it;
 *   2. the prediction-owner hash (`RedisPredictionClaims`: one field per prediction, its job id as the value).
 * Prints bytes per job and the total for 100,000 jobs. Measured, not asserted.
 */
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { ledgerKeys } from '../src/core/keys.js';
import { buildRenderJob, renderJobIdOf } from '../src/core/render-job.js';
import { RunLedger } from '../src/ledger/run-ledger.js';
import { startRedisServer } from '../src/local/redis.js';
import { RedisPredictionClaims } from '../src/queue/prediction-claims.js';
import { queueKeyPrefixOf } from '../src/queue/render-queue.js';

const { values } = parseArgs({ options: { jobs: { type: 'string', default: '20000' } } });
const jobs = Number(values.jobs);
if (!Number.isSafeInteger(jobs) || jobs < 1) throw new Error(`--jobs must be a whole number ≥ 1, got ${values.jobs}`);

const PREFIX = 'bench';
const RUN = 'memory-run';

/** A Replicate-like prediction id: 26 lowercase base-32 characters. */
function predictionId(index: number): string {
  return index.toString(32).padStart(26, 'q');
}

async function bytesOf(redis: Redis, key: string): Promise<number> {
  return Number(await redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0'));
}

const server = await startRedisServer();
const redis = new Redis(server.url);
try {
  const ledger = new RunLedger(redis, PREFIX);
  await ledger.createRun(RUN, {
    model: 'black-forest-labs/flux-depth-pro',
    budgetMicros: null,
    manifest: { name: 'bench.csv', sha256: '0'.repeat(64) },
    output: { bucket: 'renders', prefix: 'out/', keyTemplate: '{run}/{id}/{style}.{ext}' },
    defaults: {},
  });
  const built = Array.from({ length: jobs }, (_, index) =>
    buildRenderJob({
      run: RUN,
      rowId: `row-${String(index).padStart(6, '0')}`,
      style: 'evening',
      model: 'black-forest-labs/flux-depth-pro',
      controlImage: { bucket: 'control-images', key: `projects/harbour-view/floor-2/unit-${index}.jpg` },
      input: { prompt: 'a bright open-plan living room at dusk, oak floor, floor-to-ceiling windows, warm light' },
      output: { bucket: 'renders', prefix: 'out/' },
      metadata: { sku: `SKU-${index}` },
    }),
  );
  const ids = built.map((job) => renderJobIdOf(job));
  await ledger.registerJobs(
    RUN,
    built.map((job, index) => ({
      jobId: ids[index] ?? '',
      payload: job,
      row: { rowId: job.rowId, style: job.style, outputKey: job.output.key, seed: Number(job.input.seed) },
    })),
  );
  const claims = new RedisPredictionClaims(redis, queueKeyPrefixOf(PREFIX));
  for (let index = 0; index < jobs; index += 1) await claims.claim(predictionId(index), ids[index] ?? '');

  const payloadBytes = await bytesOf(redis, ledgerKeys(PREFIX, RUN).payloads);
  const claimBytes = await bytesOf(redis, `${queueKeyPrefixOf(PREFIX)}:prediction-owner`);
  const perJob = (bytes: number) => bytes / jobs;
  const per100k = (bytes: number) => `${((perJob(bytes) * 100_000) / 1_000_000).toFixed(1)} MB`;
  const payloadJson = JSON.stringify(built[0]).length;
  process.stdout.write(
    `${jobs} jobs on ${server.url.replace(/:\/\/.*@/, '://')}\n` +
      `payloads hash:         ${perJob(payloadBytes).toFixed(0)} B/job (JSON ${payloadJson} B), ${per100k(payloadBytes)} per 100,000 jobs\n` +
      `prediction-owner hash: ${perJob(claimBytes).toFixed(0)} B/prediction, ${per100k(claimBytes)} per 100,000 predictions\n`,
  );
} finally {
  redis.disconnect();
  await server.stop();
}
