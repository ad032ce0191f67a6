/**
 * What depthq's orchestration costs per image: N render jobs through the queue and one worker (reserve, fenced
 * checkpoints, create, await, streamed store, sidecar, ledger) against a baseline measured in the same run on the same
 * stack — the same predictions made and stored directly (create → await → copy to S3), with the same concurrency.
 * The simulator answers at once (no model latency), so what is left is orchestration: the ratio is its overhead.
 *
 *   npm run bench:render -- [--jobs 300] [--concurrency 16]
 */
import { parseArgs } from 'node:util';
import pLimit from 'p-limit';
import { loadConfig } from '../src/config/index.js';
import { fluxDepthPro } from '../src/core/models.js';
import { buildRenderJob, type RenderJob } from '../src/core/render-job.js';
import { RunLedger } from '../src/ledger/run-ledger.js';
import { makeControlImages } from '../src/local/control-images/index.js';
import { startLocalStack } from '../src/local/stack.js';
import { providerForConfig } from '../src/providers/provider-for-config.js';
import { closeConnection, connectProducer, createProducerConnection } from '../src/queue/connections.js';
import { createRenderQueue, defaultRenderQueueSettings, enqueueRenderJobs } from '../src/queue/render-queue.js';
import { copyUrlToObject, presignGetUrl, putBytesObject } from '../src/storage/s3.js';
import { startRenderWorker } from '../src/worker/start.js';

const { values } = parseArgs({
  options: { jobs: { type: 'string', default: '300' }, concurrency: { type: 'string', default: '16' } },
});
const jobCount = Number(values.jobs);
const concurrency = Number(values.concurrency);
if (!Number.isSafeInteger(jobCount) || jobCount < 1 || !Number.isSafeInteger(concurrency) || concurrency < 1) {
  process.stderr.write('--jobs and --concurrency take whole numbers of at least 1\n');
  process.exit(2);
}

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const stack = await startLocalStack({
  simulator: {
    startDelayMs: { min: 0, max: 0 },
    latencyMs: { min: 0, max: 0 },
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
  const config = loadConfig(env);
  const s3Server = stack.s3;
  if (s3Server === undefined) throw new Error('no S3 in the stack');
  const s3 = s3Server.client();
  const bucket = s3Server.bucket;
  const [control] = await makeControlImages({ count: 1, width: 128, height: 96 });
  if (control === undefined) throw new Error('no control image');
  await putBytesObject(s3, { bucket, key: 'controls/bench.png' }, control.bytes, control.contentType);

  const jobsFor = (run: string): RenderJob[] =>
    Array.from({ length: jobCount }, (_, index) =>
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

  // Baseline: the same predictions, created, awaited and copied to S3 directly, `concurrency` at a time.
  const provider = providerForConfig(config, {
    apiToken: env.REPLICATE_API_TOKEN ?? '',
    poll: { initialMs: 20, maxMs: 100 },
  });
  const limit = pLimit(concurrency);
  const renderDirectly = (jobs: readonly RenderJob[]) =>
    Promise.all(
      jobs.map((job) =>
        limit(async () => {
          const url = await presignGetUrl(s3, job.controlImage, 900);
          const { prediction } = await provider.create({
            model: fluxDepthPro.id,
            input: { ...job.input, control_image: url },
            waitSeconds: 60,
          });
          const done = await provider.awaitTerminal(prediction);
          const [outputUrl] = done.outputUrls;
          if (outputUrl === undefined) throw new Error(`prediction ${done.id} ended ${done.status}`);
          await copyUrlToObject(s3, { url: outputUrl, target: job.output, imageType: 'jpeg' });
        }),
      ),
    );
  // Warm-up (JIT, connections, the simulator's renderer), so neither side pays it in its measurement.
  await renderDirectly(jobsFor('bench-warmup').slice(0, Math.min(jobCount, 2 * concurrency)));
  const baselineStart = performance.now();
  await renderDirectly(jobsFor('bench-baseline'));
  const baselineSeconds = (performance.now() - baselineStart) / 1000;

  // depthq: the same number of jobs through the queue, one worker process-equivalent at the same concurrency.
  const redis = createProducerConnection(config.redisUrl);
  await connectProducer(redis);
  const ledger = new RunLedger(redis, config.prefix);
  const run = 'bench-depthq';
  await ledger.createRun(run, {
    model: fluxDepthPro.id,
    budgetMicros: null,
    manifest: { name: 'bench.csv', sha256: '0'.repeat(64) },
    output: { bucket, prefix: run, keyTemplate: '{run}/{style}/{id}.{ext}' },
    defaults: {},
  });
  const queue = createRenderQueue(redis, config.prefix, defaultRenderQueueSettings);
  await enqueueRenderJobs(queue, ledger, run, jobsFor(run));
  const worker = await startRenderWorker(
    loadConfig({ ...env, DEPTHQ_POLL_INITIAL_MS: '20', DEPTHQ_POLL_MAX_MS: '100' }),
    {
      concurrency,
      skipStartupChecks: true,
    },
  );
  const depthqStart = performance.now();
  for (;;) {
    const counters = await ledger.counters(run);
    if (counters.succeeded + counters.failed + counters.flagged >= jobCount) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const depthqSeconds = (performance.now() - depthqStart) / 1000;
  await worker.close();
  const counters = await ledger.counters(run);
  await queue.close();
  await closeConnection(redis);

  const perJobMs = (seconds: number) => ((seconds * 1000) / jobCount).toFixed(1);
  process.stdout.write(
    [
      `jobs: ${jobCount}, concurrency: ${concurrency}, simulator latency 0, 64 px outputs (${counters.succeeded} succeeded)`,
      `baseline (direct create → await → copy to S3): ${baselineSeconds.toFixed(2)} s, ${(jobCount / baselineSeconds).toFixed(1)} images/s, ${perJobMs(baselineSeconds)} ms/image`,
      `depthq (queue, ledger, fenced checkpoints, sidecar): ${depthqSeconds.toFixed(2)} s, ${(jobCount / depthqSeconds).toFixed(1)} images/s, ${perJobMs(depthqSeconds)} ms/image`,
      `ratio depthq / baseline time: ${(depthqSeconds / baselineSeconds).toFixed(2)}×`,
      '',
    ].join('\n'),
  );
} finally {
  await stack.stop();
}
