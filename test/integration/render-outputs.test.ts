/**
 * What a render leaves behind: S3 objects byte-identical to what the provider served, with the Content-Type of their
 * format; a sidecar and a ledger row recording the seed (the manifest's or the derived one) and the cost (price × image
 * count) — for single-output flux-depth-pro and for flux-depth-dev with two outputs. And the jobs that can never succeed
 * (a control image that is not an image, an input the provider refuses with 422) end `failed` at once, without
 * retries, with their reservation released.
 */
import { createHash } from 'node:crypto';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { Worker } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { sidecarKeyOf } from '../../src/core/keys.js';
import { fluxDepthDev, fluxDepthPro } from '../../src/core/models.js';
import { costOf } from '../../src/core/money.js';
import { buildRenderJob, type RenderJob, renderJobIdOf } from '../../src/core/render-job.js';
import { deriveSeed } from '../../src/core/seed.js';
import { RunLedger } from '../../src/ledger/run-ledger.js';
import { createLogger } from '../../src/logging/logger.js';
import { createRenderProcessor } from '../../src/pipeline/render.js';
import { ReplicateProvider } from '../../src/providers/replicate.js';
import { closeConnection, createWorkerConnection } from '../../src/queue/connections.js';
import {
  defaultRenderQueueSettings,
  enqueueRenderJobs,
  queueKeyPrefixOf,
  RENDER_QUEUE_NAME,
  renderWorkerOptions,
} from '../../src/queue/render-queue.js';
import { getObjectBytes, putBytesObject } from '../../src/storage/s3.js';
import { startRenderWorker } from '../../src/worker/start.js';
import {
  getSimulatorPrediction,
  listSimulatorPredictions,
  predictionSubjectOf,
  prepareRenderRun,
  type RenderRunFixture,
  useRenderRunCleanup,
  waitForCounters,
} from '../helpers/render-run.js';
import { useLocalStack } from '../helpers/stack.js';

const stack = useLocalStack({
  simulator: { startDelayMs: { min: 5, max: 20 }, latencyMs: { min: 20, max: 60 }, outputMaxSide: 128 },
});

const { fixtures, workers } = useRenderRunCleanup();

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** The first bytes each output format starts with. */
const magicOf: Record<string, readonly number[]> = {
  'image/jpeg': [0xff, 0xd8, 0xff],
  'image/png': [0x89, 0x50, 0x4e, 0x47],
  'image/webp': [0x52, 0x49, 0x46, 0x46],
};

interface Expected {
  readonly job: RenderJob;
  readonly seed: number;
  readonly seedSource: 'manifest' | 'derived';
  readonly contentType: string;
  readonly keys: readonly string[];
  readonly costMicros: number;
}

function extraJob(fixture: RenderRunFixture, rowId: string, model: string, input: Record<string, unknown>): RenderJob {
  const [first] = fixture.jobs;
  if (first === undefined) throw new Error('the fixture has no job');
  return buildRenderJob({
    run: fixture.run,
    rowId,
    style: 'day',
    model,
    controlImage: first.controlImage,
    input: { prompt: `${rowId}, day style`, ...input },
    output: { bucket: fixture.bucket, prefix: 'out' },
    metadata: { source: 'test' },
  });
}

describe('render outputs', () => {
  it('stores what the provider served, byte for byte, and records every seed and cost', async () => {
    const fixture = await prepareRenderRun(stack(), { images: 2, styles: ['day'] });
    fixtures.push(fixture);
    const { ledger, run, s3, bucket } = fixture;
    const simulator = stack().simulator;
    if (simulator === undefined) throw new Error('no simulator');

    const pngJob = extraJob(fixture, 'png-row', fluxDepthPro.id, { steps: 15, seed: 424_242, output_format: 'png' });
    const devJob = extraJob(fixture, 'dev-row', fluxDepthDev.id, { seed: 777, num_outputs: 2, output_format: 'webp' });
    const notAnImage = { bucket, key: 'controls/not-an-image.png' };
    await putBytesObject(s3, notAnImage, Buffer.from('this is a text file, not a png\n'.repeat(4)), 'image/png');
    const brokenJob = { ...extraJob(fixture, 'broken-row', fluxDepthPro.id, { steps: 15 }), controlImage: notAnImage };
    await enqueueRenderJobs(fixture.queue, ledger, run, [pngJob, devJob, brokenJob]);

    const expected: Expected[] = [
      ...fixture.jobs.map((job) => ({
        job,
        seed: deriveSeed({ run: job.run, rowId: job.rowId, style: job.style, reseed: 0 }),
        seedSource: 'derived' as const,
        contentType: 'image/jpeg',
        keys: [job.output.key],
        costMicros: fluxDepthPro.priceMicrosPerImage,
      })),
      {
        job: pngJob,
        seed: 424_242,
        seedSource: 'manifest',
        contentType: 'image/png',
        keys: [pngJob.output.key],
        costMicros: fluxDepthPro.priceMicrosPerImage,
      },
      {
        job: devJob,
        seed: 777,
        seedSource: 'manifest',
        contentType: 'image/webp',
        keys: [1, 2].map((n) => devJob.output.key.replace(/\.webp$/, `_${n}.webp`)),
        costMicros: costOf(fluxDepthDev.priceMicrosPerImage, 2),
      },
    ];
    expect(devJob.output.key).toMatch(/\/dev-row\.webp$/);
    expect(costOf(fluxDepthDev.priceMicrosPerImage, 2)).toBe(50_000);

    const before = simulator.stats();
    const worker = await startRenderWorker(fixture.config, { concurrency: 4 });
    workers.push(worker);
    const counters = await waitForCounters(ledger, run, (c) => c.succeeded + c.failed === 5);
    expect(counters).toMatchObject({ total: 5, succeeded: 4, failed: 1, queued: 0, running: 0, flagged: 0 });

    for (const { job, seed, seedSource, contentType, keys, costMicros } of expected) {
      const jobId = renderJobIdOf(job);
      const row = await ledger.result(run, jobId);
      expect(row).toMatchObject({ status: 'succeeded', seed, costMicros, outputKey: keys[0], attempts: 1 });
      const predictionId = row?.predictionId ?? '';
      const prediction = await getSimulatorPrediction(stack(), predictionId);
      expect(prediction).toMatchObject({ status: 'succeeded', input: { seed } });
      const urls = Array.isArray(prediction.output) ? prediction.output : [prediction.output];
      expect(urls).toHaveLength(keys.length);

      for (const [index, key] of keys.entries()) {
        // What the provider serves, fetched independently of the pipeline while it is still retained.
        const served = await fetch(String(urls[index]));
        expect(served.status).toBe(200);
        expect(served.headers.get('content-type')).toBe(contentType);
        const servedBytes = new Uint8Array(await served.arrayBuffer());
        const storedBytes = await getObjectBytes(s3, { bucket, key });
        expect(sha256(storedBytes)).toBe(sha256(servedBytes));
        expect(Buffer.from(storedBytes).equals(Buffer.from(servedBytes))).toBe(true);
        expect(Array.from(storedBytes.subarray(0, magicOf[contentType]?.length ?? 0))).toEqual(magicOf[contentType]);

        const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
        expect(head.ContentType).toBe(contentType);
        expect(head.Metadata).toMatchObject({ seed: String(seed), 'prediction-id': predictionId, 'depthq-run': run });

        const sidecar = JSON.parse(
          Buffer.from(await getObjectBytes(s3, { bucket, key: sidecarKeyOf(key) })).toString('utf8'),
        ) as Record<string, unknown>;
        expect(sidecar).toMatchObject({
          model: job.model,
          seed,
          seedSource,
          loggedSeed: seed,
          input: { seed, control_image: `s3://${job.controlImage.bucket}/${job.controlImage.key}` },
          prediction: { id: predictionId, imageCount: keys.length },
          output: { bucket, key, sha256: sha256(servedBytes), size: servedBytes.length, contentType },
          cost: {
            micros: costMicros,
            usd: (costMicros / 1_000_000).toFixed(6),
            priceMicrosPerImage: job.priceMicrosPerImage,
            imageCount: keys.length,
          },
        });
        if (keys.length > 1) {
          expect(sidecar.outputs).toEqual(
            keys.map((outputKey) => expect.objectContaining({ bucket, key: outputKey, contentType })),
          );
        }
      }
    }
    // Two outputs are stored as `_1` and `_2`, never under the job's own key.
    await expect(s3.send(new HeadObjectCommand({ Bucket: bucket, Key: devJob.output.key }))).rejects.toMatchObject({
      name: 'NotFound',
    });

    // The job whose control image is not an image: failed at once, before paying, its reservation released.
    const brokenId = renderJobIdOf(brokenJob);
    const brokenRow = await ledger.result(run, brokenId);
    expect(brokenRow).toMatchObject({ status: 'failed', reason: 'fatal', attempts: 1 });
    expect(brokenRow?.error).toContain('is not a jpeg, png, gif or webp image');
    expect(brokenRow?.predictionIds).toBeUndefined();
    expect(await ledger.settlement(run, brokenId)).toBeUndefined();
    const brokenBullJob = await fixture.queue.getJob(brokenId);
    expect(await brokenBullJob?.getState()).toBe('failed');
    expect(brokenBullJob?.attemptsMade).toBe(1);

    // Money: price × images of each succeeded job, nothing held, nothing for the broken job.
    const spent = expected.reduce((sum, { costMicros }) => sum + costMicros, 0);
    expect(spent).toBe(200_000);
    expect(await ledger.money(run)).toEqual({ budget: null, reserved: 0, spent, possiblyBilled: 0 });
    const stats = simulator.stats();
    expect(stats.billedImages - before.billedImages).toBe(5);
    expect(stats.creates - before.creates).toBe(4);
    const subjects = (await listSimulatorPredictions(stack())).map((p) => predictionSubjectOf(p.input));
    expect(subjects).not.toContain(predictionSubjectOf(brokenJob.input));
  });

  it('a create the provider refuses with 422 fails the job at once, without retries, and releases its reservation', async () => {
    const fixture = await prepareRenderRun(stack(), { images: 1, styles: ['day'] });
    fixtures.push(fixture);
    const simulator = stack().simulator;
    if (simulator === undefined) throw new Error('no simulator');
    const [job] = fixture.jobs;
    if (job === undefined) throw new Error('no job');
    const before = simulator.stats();

    const worker = await startRefusedInputWorker(fixture);
    try {
      const counters = await waitForCounters(fixture.ledger, fixture.run, (c) => c.failed === 1);
      expect(counters).toMatchObject({ total: 1, failed: 1, succeeded: 0, running: 0, queued: 0 });
    } finally {
      await worker.close();
    }

    const jobId = renderJobIdOf(job);
    const row = await fixture.ledger.result(fixture.run, jobId);
    expect(row).toMatchObject({ status: 'failed', reason: 'fatal', attempts: 1 });
    expect(row?.error).toContain('422');
    expect(row?.error).toContain('input.steps');
    const bullJob = await fixture.queue.getJob(jobId);
    expect(await bullJob?.getState()).toBe('failed');
    expect(bullJob?.attemptsMade).toBe(1);
    const stats = simulator.stats();
    // One create request, refused, and no second one: neither the provider nor BullMQ retried it.
    expect(stats.createRequests - before.createRequests).toBe(1);
    expect(stats.validationErrors - before.validationErrors).toBe(1);
    expect(stats.creates - before.creates).toBe(0);
    expect(await fixture.ledger.money(fixture.run)).toEqual({ budget: null, reserved: 0, spent: 0, possiblyBilled: 0 });
    expect(await fixture.ledger.settlement(fixture.run, jobId)).toBeUndefined();
  });
});

/**
 * A render worker wired like `startRenderWorker`, except that its provider's HTTP transport sends every create with
 * `steps: 51`, past the model's maximum: what a rule tightened on Replicate's side after the job was validated looks
 * like. The simulator refuses it with a real 422, which is the path under test.
 */
async function startRefusedInputWorker(fixture: RenderRunFixture): Promise<{ close(): Promise<void> }> {
  const { config } = fixture;
  const refusingFetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    if (init?.method === 'POST' && url.pathname.endsWith('/predictions') && typeof init.body === 'string') {
      const body = JSON.parse(init.body) as { input?: Record<string, unknown> };
      return fetch(input, { ...init, body: JSON.stringify({ ...body, input: { ...body.input, steps: 51 } }) });
    }
    return fetch(input, init);
  };
  const connection = createWorkerConnection(config.redisUrl, { name: 'refused-input-worker' });
  const s3 = stack().s3?.client();
  if (s3 === undefined) throw new Error('no s3');
  const processor = createRenderProcessor({
    provider: new ReplicateProvider({
      apiToken: config.replicate.apiToken ?? '',
      baseUrl: config.replicate.baseUrl,
      transport: { fetch: refusingFetch },
      poll: { initialMs: 100, maxMs: 400 },
    }),
    s3,
    ledger: new RunLedger(connection, config.prefix),
    redis: connection,
    queueKeyPrefix: queueKeyPrefixOf(config.prefix),
    rateLimit: (ms) => fixture.queue.rateLimit(ms),
    logger: createLogger({ logLevel: 'silent' }),
    settings: { createWaitSeconds: 2 },
  });
  const worker = new Worker(RENDER_QUEUE_NAME, processor, {
    connection,
    prefix: config.prefix,
    ...renderWorkerOptions({ ...defaultRenderQueueSettings, workerConcurrency: 2, backoffBaseMs: 100 }),
  });
  await worker.waitUntilReady();
  return {
    async close() {
      await worker.close();
      await closeConnection(connection);
      s3.destroy();
    },
  };
}
