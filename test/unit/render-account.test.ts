/**
 * Account-level refusals (401/403 token, 402 credit, 404 model or API gone) pause the run instead of failing its jobs
 * one by one: the job parks (reason `account`, no attempt spent), the run is paused with the cause in the ledger, the
 * first job to meet it logs it once, and its money follows the money rule — a refused create created nothing, so its
 * reservation is released; a prediction that may run keeps its reservation and is resumed, never paid twice.
 */
import { Writable } from 'node:stream';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { type Checkpoint, emptyCheckpoint, withCurrentPrediction } from '../../src/core/checkpoint.js';
import { fluxDepthPro } from '../../src/core/models.js';
import { reservationOfJob } from '../../src/core/render-job.js';
import { runRenderJob } from '../../src/pipeline/run-job.js';
import { ProviderHttpError } from '../../src/providers/http-errors.js';
import { FakeQueuedJob, harness, renderJobFor, T0 } from '../helpers/render-fakes.js';

const price = fluxDepthPro.priceMicrosPerImage;
const payload = renderJobFor();
const reservation = reservationOfJob(payload);

function queued(checkpoint: Checkpoint = emptyCheckpoint, attemptsMade = 0, maxAttempts = 3) {
  return new FakeQueuedJob({ ...payload, checkpoint }, attemptsMade, maxAttempts);
}

const refused = (status: number, detail: string, method = 'POST') =>
  new ProviderHttpError(method, 'https://api.test/v1/models/x/y/predictions', status, { detail, status }, null);

/** A logger whose lines the test reads. */
function capturedLog(): { readonly log: pino.Logger; readonly lines: () => Array<Record<string, unknown>> } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  const log = pino({ level: 'info' }, stream);
  return {
    log,
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

describe('an account the provider refuses pauses the run', () => {
  it('402 on a create: parks the job, pauses the run with the cause, releases the money (nothing was created)', async () => {
    const { deps, provider, ledger, clock } = harness();
    provider.createFailures = [refused(402, 'You have insufficient credit to run this model.')];
    const job = queued();
    const result = await runRenderJob(deps, job);
    expect(result).toEqual({ kind: 'parked', untilMs: clock.now + deps.settings.parkDelayMs });
    expect(provider.creates).toHaveLength(1);
    expect(ledger.state).toBe('paused');
    expect(ledger.pause).toMatchObject({ reason: 'account', message: expect.stringContaining('add credit') });
    expect(ledger.lastRow()).toMatchObject({
      status: 'parked',
      reason: 'account',
      error: expect.stringContaining('HTTP 402'),
    });
    expect(job.checkpoint()).not.toHaveProperty('creating');
    expect(ledger.money()).toEqual({ budget: null, reserved: 0, spent: 0, possiblyBilled: 0 });
    expect(ledger.settlements.size).toBe(0);
  });

  it.each([
    [401, 'REPLICATE_API_TOKEN'],
    [403, 'REPLICATE_API_TOKEN'],
    [404, "the run's model still exists"],
  ])('%d on a create parks the job for the account and says what to fix', async (status, fix) => {
    const { deps, provider, ledger } = harness();
    provider.createFailures = [refused(status, 'refused')];
    expect(await runRenderJob(deps, queued(emptyCheckpoint, 2, 3))).toMatchObject({ kind: 'parked' });
    // Even on the last attempt: nothing ends, nothing is spent, no attempt is used.
    expect(ledger.lastRow()).toMatchObject({ status: 'parked', reason: 'account' });
    expect(ledger.pause?.message).toContain(fix);
    expect(ledger.money()).toMatchObject({ reserved: 0, spent: 0, possiblyBilled: 0 });
  });

  it('401 while a prediction runs: the reservation stays held, and after the resume the prediction is stored', async () => {
    const { deps, provider, ledger } = harness();
    await ledger.reserve('run-1', 'job-1', reservation);
    provider.prediction('p1', { status: 'processing', startedAt: new Date(T0).toISOString() });
    const checkpoint = withCurrentPrediction(emptyCheckpoint, 'p1', new Date(T0).toISOString());
    provider.awaitFailures = [refused(401, 'You did not pass a valid authentication token', 'GET')];
    const job = queued(checkpoint);
    expect(await runRenderJob(deps, job)).toMatchObject({ kind: 'parked' });
    // Not retried inside the job: one refused poll was enough.
    expect(provider.awaitFailures).toHaveLength(0);
    expect(ledger.lastRow()).toMatchObject({ status: 'parked', reason: 'account', predictionIds: ['p1'] });
    expect(ledger.money()).toEqual({ budget: null, reserved: reservation, spent: 0, possiblyBilled: 0 });
    expect(job.checkpoint()).toMatchObject({ predictionId: 'p1' });

    // The token is fixed and the run resumed: the job's next start awaits the same prediction and pays nothing more.
    ledger.state = 'active';
    const resumed = new FakeQueuedJob(job.data, 0, 3);
    expect(await runRenderJob(deps, resumed)).toMatchObject({ kind: 'succeeded', outcome: { predictionId: 'p1' } });
    expect(provider.creates).toHaveLength(0);
    expect(ledger.money()).toEqual({ budget: null, reserved: 0, spent: price, possiblyBilled: 0 });
  });

  it('401 while looking for a lost create: the create may have run, so the reservation stays held', async () => {
    const { deps, provider, ledger } = harness();
    await ledger.reserve('run-1', 'job-1', reservation);
    provider.findByFingerprint = async () => {
      throw refused(401, 'Unauthenticated', 'GET');
    };
    const creating = { fingerprint: 'a'.repeat(64), sentAt: new Date(T0 - 1000).toISOString() };
    const job = queued({ ...emptyCheckpoint, creating });
    expect(await runRenderJob(deps, job)).toMatchObject({ kind: 'parked' });
    expect(provider.creates).toHaveLength(0);
    expect(job.checkpoint()).toMatchObject({ creating });
    expect(ledger.money()).toMatchObject({ reserved: reservation, possiblyBilled: 0 });
  });

  it('logs the pause once: the first job to meet the problem, not every job after it', async () => {
    const { deps, provider } = harness();
    const { log, lines } = capturedLog();
    const logged = { ...deps, log };
    provider.createFailures = [refused(402, 'no credit'), refused(402, 'no credit'), refused(402, 'no credit')];
    for (let index = 0; index < 3; index += 1) {
      expect(await runRenderJob(logged, queued())).toMatchObject({ kind: 'parked' });
    }
    const errors = lines().filter((line) => line.level === 50);
    expect(errors).toHaveLength(1);
    expect(errors[0]?.msg).toMatch(/^run run-1 paused: Replicate refused for lack of credit \(HTTP 402\)/);
    expect(errors[0]?.msg).toContain('depthq resume run-1');
  });

  it('a canceled run stays canceled: the job ends by the cancel, its refused create released', async () => {
    const { deps, provider, ledger } = harness();
    provider.createFailures = [refused(402, 'no credit')];
    // Canceled after this job passed its gate: the refusal comes back to a run that is canceled by then.
    ledger.pauseFor = async () => {
      ledger.state = 'canceled';
      return { previous: 'canceled', current: 'canceled', newCause: false };
    };
    expect(await runRenderJob(deps, queued())).toMatchObject({ kind: 'ended' });
    expect(ledger.lastRow()).toMatchObject({ status: 'canceled', reason: 'run-canceled' });
    expect(ledger.money()).toMatchObject({ reserved: 0, spent: 0, possiblyBilled: 0 });
  });
});
