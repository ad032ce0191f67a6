/**
 * What worker telemetry costs Redis: N render jobs through one worker on a throwaway local stack, with every Redis
 * command counted through MONITOR — all of them, those on the telemetry keys, and the publishes (one pipelined round trip
 * each). The claim it checks (docs/metrics.md): publishes follow the clock, not the images, so the cost per image falls
 * as throughput grows.
 *
 *   node --import tsx scripts/bench-telemetry.ts [--jobs 200] [--concurrency 16]
 */
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { loadConfig } from '../src/config/index.js';
import { telemetryKeys } from '../src/core/keys.js';
import { fluxDepthPro } from '../src/core/models.js';
import { buildRenderJob } from '../src/core/render-job.js';
import { RunLedger } from '../src/ledger/run-ledger.js';
import { makeControlImages } from '../src/local/control-images/index.js';
import { startLocalStack } from '../src/local/stack.js';
import { closeConnection, connectProducer, createProducerConnection } from '../src/queue/connections.js';
import { createRenderQueue, defaultRenderQueueSettings, enqueueRenderJobs } from '../src/queue/render-queue.js';
import { putBytesObject } from '../src/storage/s3.js';
import { startRenderWorker } from '../src/worker/start.js';

const { values } = parseArgs({
  options: { jobs: { type: 'string', default: '200' }, concurrency: { type: 'string', default: '16' } },
});
const jobCount = Number(values.jobs);
const concurrency = Number(values.concurrency);
if (!Number.isSafeInteger(jobCount) || jobCount < 1 || !Number.isSafeInteger(concurrency) || concurrency < 1) {
  process.stderr.write('--jobs and --concurrency take whole numbers of at least 1\n');
  process.exit(2);
}

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
// A few hundred ms a prediction, like a fast model: the run lasts long enough for the publish interval to matter.
const stack = await startLocalStack({
  simulator: {
    startDelayMs: { min: 0, max: 0 },
    latencyMs: { min: 200, max: 400 },
    outputMaxSide: 64,
    createsPerMinute: 1_000_000,
    requestsPerMinute: 1_000_000,
  },
  stopOnSignals: true,
});

try {
  const env: Record<string, string> = { ...stack.env(), LOG_LEVEL: 'silent', DEPTHQ_CREATES_PER_MINUTE: '100000' };
  process.env.AWS_ACCESS_KEY_ID = env.AWS_ACCESS_KEY_ID;
  process.env.AWS_SECRET_ACCESS_KEY = env.AWS_SECRET_ACCESS_KEY;
  const config = loadConfig({ ...env, DEPTHQ_POLL_INITIAL_MS: '50', DEPTHQ_POLL_MAX_MS: '200' });
  const s3Server = stack.s3;
  if (s3Server === undefined) throw new Error('no S3 in the stack');
  const bucket = s3Server.bucket;
  const [control] = await makeControlImages({ count: 1, width: 128, height: 96 });
  if (control === undefined) throw new Error('no control image');
  await putBytesObject(s3Server.client(), { bucket, key: 'controls/bench.png' }, control.bytes, control.contentType);

  const redis = createProducerConnection(config.redisUrl);
  await connectProducer(redis);
  const ledger = new RunLedger(redis, config.prefix);
  const run = 'bench-telemetry';
  await ledger.createRun(run, {
    model: fluxDepthPro.id,
    budgetMicros: null,
    manifest: { name: 'bench.csv', sha256: '0'.repeat(64) },
    output: { bucket, prefix: run, keyTemplate: '{run}/{style}/{id}.{ext}' },
    defaults: {},
  });
  const queue = createRenderQueue(redis, config.prefix, defaultRenderQueueSettings);
  const jobs = Array.from({ length: jobCount }, (_, index) =>
    buildRenderJob({
      run,
      rowId: `row-${index}`,
      style: 'bench',
      model: fluxDepthPro.id,
      controlImage: { bucket, key: 'controls/bench.png' },
      input: { prompt: `benchmark facade ${index}`, steps: 15 },
      output: { bucket, prefix: run },
    }),
  );
  await enqueueRenderJobs(queue, ledger, run, jobs);

  const keys = telemetryKeys(config.prefix);
  const counted = { all: 0, telemetry: 0, publishes: 0 };
  const monitorConnection = new Redis(config.redisUrl);
  const monitor = await monitorConnection.monitor();
  monitor.on('monitor', (_time: string, args: string[]) => {
    counted.all += 1;
    if (args[1] === keys.counters || args[1] === keys.workers) counted.telemetry += 1;
    // Every publish sets the heartbeat once.
    if (args[0]?.toLowerCase() === 'hset' && args[1] === keys.workers) counted.publishes += 1;
  });

  const started = performance.now();
  const worker = await startRenderWorker(config, { concurrency, skipStartupChecks: true });
  for (;;) {
    const counters = await ledger.counters(run);
    if (counters.succeeded + counters.failed + counters.flagged >= jobCount) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await worker.close();
  const seconds = (performance.now() - started) / 1000;
  // MONITOR lines arrive after the commands: let the last ones in.
  await new Promise((resolve) => setTimeout(resolve, 500));
  monitor.disconnect();
  monitorConnection.disconnect();
  await queue.close();
  await closeConnection(redis);

  const perImage = (count: number) => (count / jobCount).toFixed(3);
  process.stdout.write(
    [
      `jobs: ${jobCount}, concurrency: ${concurrency}, ${seconds.toFixed(1)} s (${(jobCount / seconds).toFixed(1)} images/s), telemetry every 2 s`,
      `Redis commands (MONITOR, scripts' own commands included): ${counted.all}, ${perImage(counted.all)} per image`,
      `telemetry commands: ${counted.telemetry}, ${perImage(counted.telemetry)} per image (${((100 * counted.telemetry) / counted.all).toFixed(2)}% of all)`,
      `telemetry round trips (publishes): ${counted.publishes}, ${perImage(counted.publishes)} per image`,
      '',
    ].join('\n'),
  );
} finally {
  await stack.stop();
}
