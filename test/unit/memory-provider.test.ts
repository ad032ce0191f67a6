/**
 * The pipeline on a provider that has only the required part of `ImageModelProvider` (no listing, no reconciliation):
 * a job succeeds; a create whose answer was lost is waited out, then created anew and marked `orphanSuspected`.
 */
import { describe, expect, it } from 'vitest';
import { type Checkpoint, emptyCheckpoint } from '../../src/core/checkpoint.js';
import { fluxDepthPro } from '../../src/core/models.js';
import { runRenderJob } from '../../src/pipeline/run-job.js';
import { MemoryProvider } from '../helpers/memory-provider.js';
import { FakeQueuedJob, harness, renderJobFor, T0 } from '../helpers/render-fakes.js';

function onMemory() {
  const fakes = harness();
  const provider = new MemoryProvider(fakes.clock);
  return { ...fakes, provider, deps: { ...fakes.deps, provider } };
}

const queued = (checkpoint: Checkpoint = emptyCheckpoint) => new FakeQueuedJob({ ...renderJobFor(), checkpoint });

describe('the pipeline on a provider without listing', () => {
  it('has no reconciliation to offer', () => {
    const { provider } = onMemory();
    expect('findByFingerprint' in provider).toBe(false);
    expect('listCreatedBetween' in provider).toBe(false);
  });

  it('runs a job to the end: one create, the output stored, the price spent', async () => {
    const { deps, provider, store, ledger } = onMemory();
    const result = await runRenderJob(deps, queued());
    expect(result).toMatchObject({ kind: 'succeeded', outcome: { predictionId: 'm1' } });
    expect(provider.creates).toHaveLength(1);
    expect(store.copies).toHaveLength(1);
    expect(ledger.lastRow()).toMatchObject({ status: 'succeeded', predictionIds: ['m1'] });
    expect(ledger.lastRow()).not.toHaveProperty('orphanSuspected');
    expect(ledger.money()).toMatchObject({ reserved: 0, spent: fluxDepthPro.priceMicrosPerImage, possiblyBilled: 0 });
  });

  it('waits out a lost create while it may be in flight, then creates anew, orphan suspected', async () => {
    const { deps, provider, ledger, clock } = onMemory();
    const sentMs = T0 - 1000;
    const creating = { fingerprint: 'a'.repeat(64), sentAt: new Date(sentMs).toISOString() };
    const inFlightUntil = sentMs + deps.settings.longestCreateSendMs;
    const first = queued({ ...emptyCheckpoint, creating });
    expect(await runRenderJob(deps, first)).toEqual({ kind: 'parked', untilMs: inFlightUntil });
    expect(provider.creates).toHaveLength(0);
    expect(first.checkpoint()).toMatchObject({ orphanSuspected: false });

    clock.now = inFlightUntil;
    const later = queued({ ...emptyCheckpoint, creating });
    expect(await runRenderJob(deps, later)).toMatchObject({ kind: 'succeeded' });
    expect(provider.creates).toHaveLength(1);
    expect(later.checkpoint()).toMatchObject({ orphanSuspected: true });
    expect(ledger.lastRow()).toMatchObject({ status: 'succeeded', orphanSuspected: true });
  });
});
