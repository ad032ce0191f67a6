/**
 * Every transition of the render job (core/render-state.ts, pipeline/steps.ts, pipeline/run-job.ts) against a fake
 * provider, a fake store and an in-memory ledger: no servers, milliseconds each. What each asserts is what the invoice
 * and the ledger will say — how many creates were sent, and where the job's money went.
 */
import { describe, expect, it } from 'vitest';
import { type Checkpoint, emptyCheckpoint, withCurrentPrediction } from '../../src/core/checkpoint.js';
import { fluxDepthDev, fluxDepthPro } from '../../src/core/models.js';
import { reservationOfJob } from '../../src/core/render-job.js';
import { runRenderJob } from '../../src/pipeline/run-job.js';
import { ProviderHttpError, ProviderNetworkError } from '../../src/providers/http-errors.js';
import { NotDurableError } from '../../src/queue/durability.js';
import { LockLostError } from '../../src/queue/fenced-checkpoint.js';
import { expired, FakeQueuedJob, harness, renderJobFor, T0 } from '../helpers/render-fakes.js';

const price = fluxDepthPro.priceMicrosPerImage;
const payload = renderJobFor();
const reservation = reservationOfJob(payload);
const fingerprint = 'a'.repeat(64);
const resetByPeer = () => new ProviderNetworkError('GET', 'https://api.test/v1/predictions/p1', 'ECONNRESET');
const s3Down = () => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:4568'), { code: 'ECONNREFUSED' });

function queued(checkpoint: Checkpoint | unknown = emptyCheckpoint, attemptsMade = 0, maxAttempts = 3) {
  return new FakeQueuedJob({ ...payload, checkpoint }, attemptsMade, maxAttempts);
}

const finishedAt = (id: string, createdMs = T0): Checkpoint => ({
  ...withCurrentPrediction(emptyCheckpoint, id, new Date(createdMs).toISOString()),
  finished: {
    id,
    createdAt: new Date(createdMs).toISOString(),
    startedAt: null,
    completedAt: null,
    outputUrls: [`https://replicate.delivery/fake/${id}/out-0.webp`],
    imageCount: 1,
    predictTimeSeconds: null,
    loggedSeed: null,
  },
});

describe('the happy path: gate → reserve → create → await → store → record → done', () => {
  it('creates once, stores the output and its sidecar, spends the price and records the row', async () => {
    const { deps, provider, store, ledger } = harness();
    const job = queued();
    const result = await runRenderJob(deps, job);
    expect(result).toMatchObject({ kind: 'succeeded', outcome: { predictionId: 'p1', costMicros: price, seed: 7 } });
    expect(provider.creates).toHaveLength(1);
    expect(store.copies).toEqual([payload.output.key]);
    expect(store.sidecars.get(`${payload.output.key}.json`)).toMatchObject({ prediction: { id: 'p1' }, seed: 7 });
    expect(ledger.money()).toEqual({ budget: null, reserved: 0, spent: price, possiblyBilled: 0 });
    expect(ledger.rows.map((row) => row.status)).toEqual(['running', 'succeeded']);
    expect(ledger.lastRow()).toMatchObject({ predictionId: 'p1', predictionIds: ['p1'], costMicros: price });
    expect(job.checkpoint()).toMatchObject({ recorded: true, predictionIds: ['p1'] });
    // The presigned URL (a credential) is never written down: only its fingerprint.
    expect(JSON.stringify(job.writes)).not.toContain('X-Amz-Signature');
  });

  it('does nothing for a recorded job', async () => {
    const { deps, provider, ledger } = harness();
    const result = await runRenderJob(deps, queued({ ...finishedAt('p9'), stored: [], recorded: true }));
    expect(result).toMatchObject({ kind: 'succeeded', outcome: { predictionId: 'p9' } });
    expect(provider.creates).toHaveLength(0);
    expect(ledger.rows).toEqual([]);
  });

  it('resumes a finished prediction at store, without creating', async () => {
    const { deps, provider, store, ledger } = harness();
    expect(await runRenderJob(deps, queued(finishedAt('p7')))).toMatchObject({ kind: 'succeeded' });
    expect(provider.creates).toHaveLength(0);
    expect(store.copies).toHaveLength(1);
    expect(ledger.money().spent).toBe(price);
  });

  it('adopts the prediction of a create whose answer was lost, listing it once', async () => {
    const { deps, provider, ledger } = harness();
    provider.lost = provider.prediction('p5', { status: 'processing' });
    const sentAt = new Date(T0 - 1000).toISOString();
    const job = queued({ ...emptyCheckpoint, predictionIds: ['p5'], creating: { fingerprint, sentAt } });
    expect(await runRenderJob(deps, job)).toMatchObject({ kind: 'succeeded', outcome: { predictionId: 'p5' } });
    expect(provider.creates).toHaveLength(0);
    expect(ledger.lastRow()?.predictionIds).toEqual(['p5']);
  });

  it("never adopts another job's prediction with the same input: each prediction has one owner", async () => {
    const { deps, provider, claims } = harness();
    provider.lost = provider.prediction('p5', { status: 'processing' });
    await claims.claim('p5', 'job-2');
    const at = new Date(T0 - 1000).toISOString();
    const job = queued({ ...emptyCheckpoint, creating: { fingerprint, sentAt: at, sendsEndedAt: at } });
    expect(await runRenderJob(deps, job)).toMatchObject({ kind: 'succeeded', outcome: { predictionId: 'p1' } });
    expect(provider.creates).toHaveLength(1);
    expect(claims.owners).toEqual(
      new Map([
        ['p5', 'job-2'],
        ['p1', 'job-1'],
      ]),
    );
  });

  it('creates again, orphan suspected, when a lost create whose sends ended is not found', async () => {
    const { deps, provider, ledger } = harness();
    const at = new Date(T0 - 1000).toISOString();
    const job = queued({ ...emptyCheckpoint, creating: { fingerprint, sentAt: at, sendsEndedAt: at } });
    expect(await runRenderJob(deps, job)).toMatchObject({ kind: 'succeeded' });
    expect(provider.creates).toHaveLength(1);
    expect(ledger.lastRow()).toMatchObject({ status: 'succeeded', orphanSuspected: true });
  });

  it('waits, spending no attempt, while a lost create may still be in flight', async () => {
    const { deps, provider } = harness();
    const sentMs = T0 - 1000;
    const job = queued({ ...emptyCheckpoint, creating: { fingerprint, sentAt: new Date(sentMs).toISOString() } });
    const result = await runRenderJob(deps, job);
    expect(result).toEqual({ kind: 'parked', untilMs: sentMs + deps.settings.longestCreateSendMs });
    expect(provider.creates).toHaveLength(0);
  });

  it('a re-send counts from when it left', async () => {
    const { deps, provider, clock } = harness();
    const lastMs = T0 - 1000;
    const creating = {
      fingerprint,
      sentAt: new Date(T0 - 10 * deps.settings.longestCreateSendMs).toISOString(),
      lastSentAt: new Date(lastMs).toISOString(),
    };
    const result = await runRenderJob(deps, queued({ ...emptyCheckpoint, creating }));
    expect(result).toEqual({ kind: 'parked', untilMs: lastMs + deps.settings.longestCreateSendMs });
    clock.now = lastMs + deps.settings.longestCreateSendMs;
    expect(await runRenderJob(deps, queued({ ...emptyCheckpoint, creating }))).toMatchObject({ kind: 'succeeded' });
    expect(provider.creates).toHaveLength(1);
  });
});

describe('gate and reserve', () => {
  it('parks a job of a paused run before it creates anything', async () => {
    const { deps, provider, ledger, clock } = harness();
    ledger.state = 'paused';
    const result = await runRenderJob(deps, queued());
    expect(result).toEqual({ kind: 'parked', untilMs: clock.now + deps.settings.parkDelayMs });
    expect(provider.creates).toHaveLength(0);
    expect(ledger.lastRow()).toMatchObject({ status: 'parked', reason: 'paused' });
  });

  it('parks a job over budget, holding nothing', async () => {
    const { deps, provider, ledger } = harness();
    ledger.budget = reservation - 1;
    expect(await runRenderJob(deps, queued())).toMatchObject({ kind: 'parked' });
    expect(provider.creates).toHaveLength(0);
    expect(ledger.lastRow()).toMatchObject({ status: 'parked', reason: 'budget' });
    expect(ledger.money().reserved).toBe(0);
  });

  it('ends a canceled run: releases a job that never sent a create', async () => {
    const { deps, ledger } = harness();
    ledger.state = 'canceled';
    expect(await runRenderJob(deps, queued())).toMatchObject({ kind: 'ended' });
    expect(ledger.lastRow()).toMatchObject({ status: 'canceled', reason: 'run-canceled' });
    expect(ledger.money()).toMatchObject({ reserved: 0, spent: 0, possiblyBilled: 0 });
  });

  it('ends a canceled run: cancels a started prediction and counts it possibly billed', async () => {
    const { deps, provider, ledger } = harness();
    await ledger.reserve('run-1', 'job-1', reservation);
    provider.prediction('p3', { status: 'processing', startedAt: new Date(T0).toISOString() });
    ledger.state = 'canceled';
    const job = queued(withCurrentPrediction(emptyCheckpoint, 'p3', new Date(T0).toISOString()));
    expect(await runRenderJob(deps, job)).toMatchObject({ kind: 'ended' });
    expect(provider.cancels).toEqual(['p3']);
    expect(ledger.money()).toMatchObject({ reserved: 0, spent: 0, possiblyBilled: reservation });
  });

  it('stores a prediction that succeeded before the cancel reached it', async () => {
    const { deps, provider, ledger } = harness();
    provider.prediction('p4', {
      status: 'succeeded',
      outputUrls: ['https://replicate.delivery/fake/p4/out-0.webp'],
      imageCount: 1,
    });
    ledger.state = 'canceled';
    const job = queued(withCurrentPrediction(emptyCheckpoint, 'p4', new Date(T0).toISOString()));
    expect(await runRenderJob(deps, job)).toMatchObject({ kind: 'succeeded', outcome: { predictionId: 'p4' } });
    expect(ledger.money().spent).toBe(price);
  });
});

describe('a cancel that fails', () => {
  it('is retried, not swallowed: a prediction that succeeded meanwhile is stored and spent', async () => {
    const { deps, provider, store, ledger } = harness();
    provider.prediction('p5', {
      status: 'succeeded',
      outputUrls: ['https://replicate.delivery/fake/p5/out-0.webp'],
      imageCount: 1,
    });
    provider.cancelFailures = [resetByPeer()];
    ledger.state = 'canceled';
    const job = queued(withCurrentPrediction(emptyCheckpoint, 'p5', new Date(T0).toISOString()));
    expect(await runRenderJob(deps, job)).toMatchObject({ kind: 'succeeded', outcome: { predictionId: 'p5' } });
    expect(provider.cancels).toEqual(['p5', 'p5']);
    expect(store.copies).toEqual([payload.output.key]);
    expect(ledger.money()).toMatchObject({ reserved: 0, spent: price, possiblyBilled: 0 });
  });

  it('is retried until the cancel answers, then ends the job possibly billed', async () => {
    const { deps, provider, ledger } = harness();
    await ledger.reserve('run-1', 'job-1', reservation);
    provider.prediction('p6', { status: 'processing', startedAt: new Date(T0).toISOString() });
    provider.cancelFailures = [resetByPeer(), resetByPeer()];
    ledger.state = 'canceled';
    const job = queued(withCurrentPrediction(emptyCheckpoint, 'p6', new Date(T0).toISOString()));
    expect(await runRenderJob(deps, job)).toMatchObject({ kind: 'ended' });
    expect(provider.cancels).toEqual(['p6', 'p6', 'p6']);
    expect(ledger.money()).toMatchObject({ reserved: 0, spent: 0, possiblyBilled: reservation });
  });
});

describe('how a prediction ends', () => {
  it("ends flux-depth-dev's NSFW refusal flagged after one create, possibly billed", async () => {
    const { deps, provider, ledger } = harness();
    provider.endAs = () => ({
      status: 'failed',
      outputUrls: [],
      error: 'NSFW content detected. Try running it again, or try a different prompt.',
    });
    const dev = renderJobFor(fluxDepthDev.id);
    const result = await runRenderJob(deps, new FakeQueuedJob({ ...dev, checkpoint: emptyCheckpoint }));
    expect(result).toMatchObject({ kind: 'ended' });
    expect(provider.creates).toHaveLength(1);
    expect(ledger.lastRow()).toMatchObject({ status: 'flagged', reason: 'flagged', predictionIds: ['p1'] });
    expect(ledger.money()).toMatchObject({ reserved: 0, spent: 0, possiblyBilled: reservationOfJob(dev) });
  });

  it('forgets a failed prediction and fails the attempt; the last attempt releases the reservation', async () => {
    const { deps, provider, ledger } = harness();
    provider.endAs = () => ({ status: 'failed', outputUrls: [], error: 'CUDA out of memory' });
    const notLast = await runRenderJob(deps, queued());
    expect(notLast).toMatchObject({ kind: 'retry' });
    expect(ledger.rows.map((row) => row.status)).toEqual(['running']);
    const last = queued(emptyCheckpoint, 2, 3);
    expect(await runRenderJob(deps, last)).toMatchObject({ kind: 'retry' });
    expect(ledger.lastRow()).toMatchObject({ status: 'failed', reason: 'attempts-exhausted' });
    expect(ledger.money()).toMatchObject({ reserved: 0, spent: 0, possiblyBilled: 0 });
    expect(last.checkpoint()).not.toHaveProperty('predictionId');
    expect(last.checkpoint().predictionIds).toEqual(['p2']);
  });

  it('ends a succeeded prediction without output as output-expired, spent', async () => {
    const { deps, provider, ledger } = harness();
    provider.endAs = () => ({ outputUrls: [], dataRemoved: true });
    expect(await runRenderJob(deps, queued())).toMatchObject({ kind: 'ended' });
    expect(ledger.lastRow()).toMatchObject({ status: 'failed', reason: 'output-expired' });
    expect(ledger.money()).toMatchObject({ reserved: 0, spent: price, possiblyBilled: 0 });
  });
});

describe('creates', () => {
  it('a 422 ends the job, clears the create mark and releases the money: nothing was created', async () => {
    const { deps, provider, ledger } = harness();
    provider.createFailures = [new ProviderHttpError('POST', 'https://api.test/v1', 422, { detail: 'bad' }, null)];
    const job = queued();
    expect(await runRenderJob(deps, job)).toMatchObject({ kind: 'ended' });
    expect(job.checkpoint()).not.toHaveProperty('creating');
    expect(ledger.lastRow()).toMatchObject({ status: 'failed', reason: 'fatal' });
    expect(ledger.money()).toMatchObject({ reserved: 0, possiblyBilled: 0 });
  });

  it('a 429 on a create makes the queue wait and spends no attempt', async () => {
    const { deps, provider } = harness();
    provider.createFailures = [new ProviderHttpError('POST', 'https://api.test/v1', 429, {}, '7')];
    expect(await runRenderJob(deps, queued())).toMatchObject({ kind: 'throttled', retryAfterMs: 7000 });
  });

  it('a create with no answer on the last attempt is possibly billed, never released', async () => {
    const { deps, provider, ledger } = harness();
    provider.createFailures = [new ProviderNetworkError('POST', 'https://api.test/v1', 'ETIMEDOUT')];
    const job = queued(emptyCheckpoint, 2, 3);
    expect(await runRenderJob(deps, job)).toMatchObject({ kind: 'retry' });
    // The mark stays, with when its sends ended: the next attempt looks for it at once, and waits for nothing.
    expect(job.checkpoint()).toMatchObject({
      creating: { fingerprint: expect.any(String), sendsEndedAt: expect.any(String) },
    });
    expect(ledger.money()).toMatchObject({ reserved: 0, possiblyBilled: reservation });
  });

  it('sends nothing while the create mark cannot be confirmed durable, and leaves no mark behind', async () => {
    const { deps, provider, ledger } = harness();
    const notDurable = new NotDurableError('no replica acknowledged the write within 2000 ms');
    const job = queued();
    const result = await runRenderJob({ ...deps, confirmDurable: () => Promise.reject(notDurable) }, job);
    expect(result).toEqual({ kind: 'retry', error: notDurable });
    expect(provider.creates).toHaveLength(0);
    expect(job.checkpoint()).not.toHaveProperty('creating');
    // Nothing was sent: the next attempt creates at once, and the last one would release the money.
    expect(await runRenderJob({ ...deps, confirmDurable: async () => 'replica' }, job)).toMatchObject({
      kind: 'succeeded',
    });
    expect(provider.creates).toHaveLength(1);
    expect(ledger.money().spent).toBe(price);
  });

  it('stops without side effects when the fence refuses the create mark', async () => {
    const { deps, provider } = harness();
    const job = queued();
    job.lockLost = true;
    await expect(runRenderJob(deps, job)).rejects.toBeInstanceOf(LockLostError);
    expect(provider.creates).toHaveLength(0);
  });
});

describe('post-create failures are retried inside the job', () => {
  it('retries an upload that fails while S3 is down, then stores: one create', async () => {
    const { deps, provider, store, ledger } = harness();
    store.copyFailures = [s3Down(), s3Down(), s3Down()];
    expect(await runRenderJob(deps, queued())).toMatchObject({ kind: 'succeeded' });
    expect(provider.creates).toHaveLength(1);
    expect(ledger.money().spent).toBe(price);
  });

  it('retries a lost poll of a running prediction', async () => {
    const { deps, provider } = harness();
    provider.awaitFailures = [resetByPeer(), resetByPeer()];
    expect(await runRenderJob(deps, queued())).toMatchObject({ kind: 'succeeded' });
    expect(provider.creates).toHaveLength(1);
  });

  it('takes a 404 for an output younger than the retention as a blip', async () => {
    const { deps, store } = harness();
    store.copyFailures = [expired()];
    expect(await runRenderJob(deps, queued(finishedAt('p1')))).toMatchObject({ kind: 'succeeded' });
  });

  it('ends a 404 past the retention as output-expired, spent', async () => {
    const { deps, store, ledger, clock } = harness();
    store.copyFailures = [expired()];
    clock.now = T0 + deps.settings.providerRetentionMs + 1;
    expect(await runRenderJob(deps, queued(finishedAt('p1', T0)))).toMatchObject({ kind: 'ended' });
    expect(ledger.lastRow()).toMatchObject({ status: 'failed', reason: 'output-expired' });
    expect(ledger.money()).toMatchObject({ spent: price, possiblyBilled: 0 });
  });

  it('fails the attempt past the post-create window; the last one spends a succeeded prediction', async () => {
    const { deps, store, ledger } = harness({ postCreateRetryMs: 0 });
    store.down = s3Down();
    const job = queued(emptyCheckpoint, 1, 2);
    expect(await runRenderJob(deps, job)).toMatchObject({ kind: 'retry' });
    expect(ledger.lastRow()).toMatchObject({ status: 'failed', reason: 'attempts-exhausted', predictionIds: ['p1'] });
    expect(ledger.money()).toMatchObject({ reserved: 0, spent: price, possiblyBilled: 0 });
    expect(job.checkpoint()).toHaveProperty('finished');
  });

  it('fails the attempt at the retention deadline; the last one counts a running prediction possibly billed', async () => {
    const { deps, provider, ledger, clock } = harness();
    provider.awaitFailures = [resetByPeer()];
    const createdMs = T0 - deps.settings.providerRetentionMs + deps.settings.retentionMarginMs;
    provider.prediction('p1', { status: 'processing', createdAt: new Date(createdMs).toISOString() });
    const job = queued(withCurrentPrediction(emptyCheckpoint, 'p1', new Date(createdMs).toISOString()), 2, 3);
    expect(clock.now).toBe(T0);
    expect(await runRenderJob(deps, job)).toMatchObject({ kind: 'retry' });
    expect(ledger.money()).toMatchObject({ reserved: 0, spent: 0, possiblyBilled: reservation });
  });

  it('makes its last try at the deadline when the backoff would overshoot it', async () => {
    const { deps, store, clock, provider } = harness({ retryBaseMs: 60_000, retryCapMs: 60_000, postCreateRetryMs: 5 });
    store.copyFailures = [s3Down()];
    const started = Date.now();
    expect(await runRenderJob({ ...deps, now: () => clock.now + (Date.now() - started) }, queued())).toMatchObject({
      kind: 'succeeded',
    });
    expect(provider.creates).toHaveLength(1);
  });

  it('does not retry in the job before a prediction exists: the attempt fails at once', async () => {
    const { deps, provider } = harness();
    provider.createFailures = [new ProviderHttpError('POST', 'https://api.test/v1', 503, {}, null)];
    const job = queued();
    expect(await runRenderJob(deps, job)).toMatchObject({ kind: 'retry' });
    expect(provider.creates).toHaveLength(1);
  });

  it('returns the job to waiting when the worker closes during a retry', async () => {
    const { deps, store, ledger } = harness({ retryBaseMs: 60_000, retryCapMs: 60_000 });
    store.down = s3Down();
    const job = queued();
    const result = runRenderJob(deps, job);
    setTimeout(() => job.controller.abort(), 5);
    expect(await result).toEqual({ kind: 'closing' });
    expect(ledger.lastRow()).toMatchObject({ status: 'queued' });
  });
});

describe('what cannot be read', () => {
  it('ends a job whose checkpoint is unreadable, its money possibly billed', async () => {
    const { deps, provider, ledger } = harness();
    await ledger.reserve('run-1', 'job-1', reservation);
    const result = await runRenderJob(deps, queued({ predictionIds: 'not a list' }));
    expect(result).toMatchObject({ kind: 'ended' });
    expect(provider.creates).toHaveLength(0);
    expect(ledger.lastRow()).toMatchObject({ status: 'failed', reason: 'corrupt-checkpoint' });
    expect(ledger.money()).toMatchObject({ reserved: 0, possiblyBilled: reservation });
  });

  it('ends a job whose payload is not a render job, recording nothing', async () => {
    const { deps, ledger } = harness();
    const result = await runRenderJob(deps, new FakeQueuedJob({ run: 'run-1' }));
    expect(result).toMatchObject({ kind: 'ended', message: expect.stringMatching(/not a render job/) });
    expect(ledger.rows).toEqual([]);
  });
});
