/**
 * Render jobs end to end on real parts: redis-server, s3rver and the simulator, with an in-process worker.
 */
import { createHash } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { sidecarKeyOf } from '../../src/core/keys.js';
import { fluxDepthPro } from '../../src/core/models.js';
import { costOf } from '../../src/core/money.js';
import { deriveSeed } from '../../src/core/seed.js';
import { getObjectBytes } from '../../src/storage/s3.js';
import { startRenderWorker } from '../../src/worker/start.js';
import { prepareRenderRun, type RenderRunFixture, waitForCounters } from '../helpers/render-run.js';
import { useLocalStack } from '../helpers/stack.js';

const stack = useLocalStack({
  simulator: { startDelayMs: { min: 10, max: 30 }, latencyMs: { min: 50, max: 150 }, outputMaxSide: 256 },
});

const fixtures: RenderRunFixture[] = [];
afterAll(async () => {
  for (const fixture of fixtures) await fixture.close();
});

describe('render pipeline', () => {
  it('renders every job once, stores output and sidecar, records seed and cost', async () => {
    const fixture = await prepareRenderRun(stack(), { images: 3, styles: ['day', 'night'] });
    fixtures.push(fixture);
    const before = stack().simulator?.stats();
    const worker = await startRenderWorker(fixture.config, { concurrency: 4 });
    try {
      const counters = await waitForCounters(fixture.ledger, fixture.run, (c) => c.succeeded === 6);
      expect(counters).toMatchObject({ total: 6, succeeded: 6, failed: 0, queued: 0, running: 0 });
    } finally {
      await worker.close();
    }
    const stats = stack().simulator?.stats();
    expect((stats?.creates ?? 0) - (before?.creates ?? 0)).toBe(6);
    expect(stats?.inputsBilledMoreThanOnce).toBe(0);

    const money = await fixture.ledger.money(fixture.run);
    expect(money).toMatchObject({ spent: 6 * fluxDepthPro.priceMicrosPerImage, reserved: 0, possiblyBilled: 0 });

    for (const job of fixture.jobs) {
      const expectedSeed = deriveSeed({ run: job.run, rowId: job.rowId, style: job.style, reseed: 0 });
      expect(job.input.seed).toBe(expectedSeed);
      const bytes = await getObjectBytes(fixture.s3, job.output);
      const sidecar = JSON.parse(
        Buffer.from(
          await getObjectBytes(fixture.s3, { bucket: job.output.bucket, key: sidecarKeyOf(job.output.key) }),
        ).toString('utf8'),
      ) as Record<string, unknown>;
      expect(Array.from(bytes.subarray(0, 3))).toEqual([0xff, 0xd8, 0xff]);
      expect(sidecar).toMatchObject({
        model: fluxDepthPro.id,
        seed: expectedSeed,
        seedSource: 'derived',
        loggedSeed: expectedSeed,
        output: { key: job.output.key, sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length },
        cost: { micros: costOf(fluxDepthPro.priceMicrosPerImage, 1), usd: '0.050000', imageCount: 1 },
        input: { control_image: `s3://${job.controlImage.bucket}/${job.controlImage.key}`, steps: 15 },
        metadata: { source: 'test' },
      });
      expect(JSON.stringify(sidecar)).not.toContain('X-Amz-Signature');
    }
  });
});
