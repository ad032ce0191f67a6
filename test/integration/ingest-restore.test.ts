/**
 * An enqueue that died between the ledger's `queued` rows and `addBulk` leaves rows whose jobs BullMQ never got. The
 * next enqueue (or re-ingest) compares against the queue as well as the ledger and adds them under the same ids, so
 * they render; a job whose row ended is never added again. Real redis-server, s3rver and simulator.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ingestKeys } from '../../src/core/keys.js';
import { fluxDepthPro } from '../../src/core/models.js';
import { renderJobIdOf } from '../../src/core/render-job.js';
import { ingestManifest } from '../../src/ingest/ingest-manifest.js';
import type { RunCounters } from '../../src/ledger/run-ledger.js';
import { makeControlImages } from '../../src/local/control-images/index.js';
import { enqueueRenderJobs } from '../../src/queue/render-queue.js';
import { putBytesObject } from '../../src/storage/s3.js';
import { startRenderWorker } from '../../src/worker/start.js';
import { prepareRenderRun, useRenderRunCleanup, waitForCounters } from '../helpers/render-run.js';
import { uniqueName, useLocalStack } from '../helpers/stack.js';

const stack = useLocalStack({
  simulator: { startDelayMs: { min: 5, max: 20 }, latencyMs: { min: 10, max: 30 }, outputMaxSide: 64 },
});
const { fixtures, workers } = useRenderRunCleanup();
const directories: string[] = [];
afterAll(async () => {
  for (const directory of directories) await rm(directory, { recursive: true, force: true });
});

const price = fluxDepthPro.priceMicrosPerImage;
const exactly = (expected: Partial<RunCounters>) => (counters: RunCounters) =>
  Object.entries(expected).every(([name, value]) => counters[name as keyof RunCounters] === value);

describe('an enqueue that died between the ledger rows and addBulk', () => {
  it('enqueueRenderJobs again adds the jobs the queue lost, and they render', async () => {
    const fixture = await prepareRenderRun(stack(), { images: 3, styles: ['day'], budgetMicros: 10 * price });
    fixtures.push(fixture);
    const { queue, ledger, run } = fixture;
    const simulator = stack().simulator;
    if (simulator === undefined) throw new Error('no simulator');
    // The crash: the rows are in the ledger, the jobs never reached BullMQ.
    for (const job of fixture.jobs) await (await queue.getJob(renderJobIdOf(job)))?.remove();
    expect(await queue.getJobCounts('waiting')).toMatchObject({ waiting: 0 });
    expect(await ledger.counters(run)).toMatchObject({ queued: 3, total: 3 });

    // Before the fix this added nothing (the rows existed) and the three jobs stayed `queued` for ever.
    expect(await enqueueRenderJobs(queue, ledger, run, fixture.jobs)).toEqual({ added: 0, restored: 3, existing: 0 });
    expect(await queue.getJobCounts('waiting')).toMatchObject({ waiting: 3 });
    expect(await enqueueRenderJobs(queue, ledger, run, fixture.jobs)).toEqual({ added: 0, restored: 0, existing: 3 });

    workers.push(await startRenderWorker(fixture.config, { concurrency: 4 }));
    expect(await waitForCounters(ledger, run, exactly({ succeeded: 3 }))).toMatchObject({ succeeded: 3, total: 3 });
    expect(await ledger.money(run)).toEqual({ budget: 10 * price, reserved: 0, spent: 3 * price, possiblyBilled: 0 });
    expect(simulator.stats().inputsBilledMoreThanOnce).toBe(0);

    // BullMQ drops finished jobs after their retention: enqueueing the same jobs again must not render them again.
    for (const job of fixture.jobs) await (await queue.getJob(renderJobIdOf(job)))?.remove();
    expect(await enqueueRenderJobs(queue, ledger, run, fixture.jobs)).toEqual({ added: 0, restored: 0, existing: 3 });
    expect(await queue.getJobCounts('waiting', 'active', 'delayed')).toEqual({ waiting: 0, active: 0, delayed: 0 });
  });

  it('a re-ingest enqueues the rows whose jobs are missing (never an ended one), and they render', async () => {
    // A run with no jobs: the fixture gives a prefix, a worker config and the stack's clients.
    const fixture = await prepareRenderRun(stack(), { images: 0, styles: [] });
    fixtures.push(fixture);
    const { queue, ledger, redis, prefix, bucket, s3 } = fixture;
    const simulator = stack().simulator;
    if (simulator === undefined) throw new Error('no simulator');
    const images = await makeControlImages({ count: 3, width: 256, height: 192 });
    for (const image of images) {
      await putBytesObject(s3, { bucket, key: `ingest/${image.name}.png` }, image.bytes, image.contentType);
    }
    const directory = await mkdtemp(path.join(os.tmpdir(), 'depthq-ingest-restore-'));
    directories.push(directory);
    const manifestPath = path.join(directory, 'shots.csv');
    await writeFile(
      manifestPath,
      `id,control_image,prompt,steps\n${images.map((image) => `${image.name},ingest/${image.name}.png,"${image.description.replaceAll('"', '')}",15`).join('\n')}\n`,
    );
    const run = uniqueName('run');
    const environment = { redis, ledger, prefix, bucket, s3 };
    const first = await ingestManifest({ manifestPath, run, preflight: false, budgetMicros: 10 * price }, environment);
    expect(first.added).toBe(3);

    // The crash between the ledger rows and addBulk (so before the sources were recorded): rows, no jobs, no sources.
    // One of the three was canceled meanwhile: an ended row, never enqueued again.
    const jobIds = (await queue.getJobs(['waiting'])).map((job) => job.id ?? '').sort();
    expect(jobIds).toHaveLength(3);
    for (const jobId of jobIds) await (await queue.getJob(jobId))?.remove();
    await redis.del(ingestKeys(prefix, run).sources);
    const [canceled = '', ...restored] = jobIds;
    const canceledRow = await ledger.result(run, canceled);
    if (canceledRow === undefined) throw new Error('no row');
    await ledger.recordResult(run, canceled, { ...canceledRow, status: 'canceled', reason: 'canceled' });

    // Before the fix: `added: 0, jobs.existing: 3`, and the two jobs stayed `queued` for ever.
    const again = await ingestManifest({ manifestPath, run, preflight: false }, environment);
    expect(again).toMatchObject({ added: 2, jobs: { total: 3, new: 2, existing: 1 } });
    expect((await queue.getJobs(['waiting'])).map((job) => job.id).sort()).toEqual(restored);

    workers.push(await startRenderWorker(fixture.config, { concurrency: 4 }));
    const counters = await waitForCounters(ledger, run, exactly({ succeeded: 2 }));
    expect(counters).toMatchObject({ succeeded: 2, canceled: 1, queued: 0, total: 3 });
    expect(await ledger.money(run)).toEqual({ budget: 10 * price, reserved: 0, spent: 2 * price, possiblyBilled: 0 });
    expect(simulator.stats().inputsBilledMoreThanOnce).toBe(0);
    // A third ingest finds everything in place.
    expect(await ingestManifest({ manifestPath, run, preflight: false }, environment)).toMatchObject({
      added: 0,
      jobs: { total: 3, new: 0, existing: 3 },
    });
  });
});
