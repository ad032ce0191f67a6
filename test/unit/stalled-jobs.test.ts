/**
 * Jobs BullMQ fails without running the processor ("job stalled more than allowable limit"): the `failed` listener ends
 * their row and settles their money by the money rule from their last checkpoint — and leaves alone every failure the
 * processor recorded itself, and every failure BullMQ retries.
 */
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { type Checkpoint, emptyCheckpoint, withCurrentPrediction } from '../../src/core/checkpoint.js';
import { fluxDepthPro } from '../../src/core/models.js';
import { reservationOfJob } from '../../src/core/render-job.js';
import type { ResultRow } from '../../src/ledger/run-ledger.js';
import {
  STALLED_FAILURE,
  type StalledJobLedger,
  settleJobFailedOutsideProcessor,
  settleRecentlyFailedJobs,
} from '../../src/pipeline/stalled-jobs.js';
import { MemoryLedger, renderJobFor, T0 } from '../helpers/render-fakes.js';

const price = fluxDepthPro.priceMicrosPerImage;
const payload = renderJobFor();
const reservation = reservationOfJob(payload);
const stalled = () => new Error(STALLED_FAILURE);

/** The in-memory ledger, with the one row it holds readable by job id. */
class RowLedger extends MemoryLedger implements StalledJobLedger {
  async result(): Promise<ResultRow | undefined> {
    return this.lastRow();
  }
}

async function ledgerWith(status: ResultRow['status'], held = true): Promise<RowLedger> {
  const ledger = new RowLedger();
  if (held) await ledger.reserve('run-1', 'job-1', reservation);
  await ledger.recordResult('run-1', 'job-1', { status, rowId: 'row-1', style: 'day', attempts: 1 });
  return ledger;
}

function failed(checkpoint: Checkpoint | unknown, options: { readonly retried?: boolean } = {}) {
  return { id: 'job-1', data: { ...payload, checkpoint }, finishedOn: options.retried ? undefined : T0 };
}

const deps = (ledger: RowLedger) => ({ ledger, log: pino({ level: 'silent' }), now: () => T0 });

describe('a job BullMQ failed without running the processor', () => {
  it('with a running prediction: possibly billed, the row failed with reason stalled and its prediction id', async () => {
    const ledger = await ledgerWith('running');
    const checkpoint = withCurrentPrediction(emptyCheckpoint, 'p1', new Date(T0).toISOString());
    const outcome = await settleJobFailedOutsideProcessor(deps(ledger), failed(checkpoint), stalled());
    expect(outcome).toEqual({ kind: 'settled', reason: 'stalled', money: 'settled' });
    expect(ledger.money()).toEqual({ budget: null, reserved: 0, spent: 0, possiblyBilled: reservation });
    expect(ledger.lastRow()).toMatchObject({
      status: 'failed',
      reason: 'stalled',
      predictionId: 'p1',
      predictionIds: ['p1'],
      error: expect.stringContaining(STALLED_FAILURE),
      finishedAt: new Date(T0).toISOString(),
    });
  });

  it('with a lost create (no id): possibly billed', async () => {
    const ledger = await ledgerWith('running');
    const creating = { fingerprint: 'a'.repeat(64), sentAt: new Date(T0).toISOString() };
    await settleJobFailedOutsideProcessor(deps(ledger), failed({ ...emptyCheckpoint, creating }), stalled());
    expect(ledger.money()).toMatchObject({ reserved: 0, possiblyBilled: reservation });
  });

  it('with a succeeded prediction not yet stored: spent', async () => {
    const ledger = await ledgerWith('running');
    const createdAt = new Date(T0).toISOString();
    const checkpoint: Checkpoint = {
      ...withCurrentPrediction(emptyCheckpoint, 'p1', createdAt),
      finished: {
        id: 'p1',
        createdAt,
        startedAt: null,
        completedAt: null,
        outputUrls: ['https://replicate.delivery/p1/out-0.webp'],
        imageCount: 1,
        predictTimeSeconds: null,
        loggedSeed: null,
      },
    };
    await settleJobFailedOutsideProcessor(deps(ledger), failed(checkpoint), stalled());
    expect(ledger.money()).toEqual({ budget: null, reserved: 0, spent: price, possiblyBilled: 0 });
  });

  it('before any create: the reservation is released', async () => {
    const ledger = await ledgerWith('running');
    const outcome = await settleJobFailedOutsideProcessor(deps(ledger), failed(emptyCheckpoint), stalled());
    expect(outcome).toMatchObject({ kind: 'settled', money: 'released' });
    expect(ledger.money()).toEqual({ budget: null, reserved: 0, spent: 0, possiblyBilled: 0 });
    expect(ledger.lastRow()).toMatchObject({ status: 'failed', reason: 'stalled' });
  });

  it('with an unreadable checkpoint: possibly billed (anything may have been sent)', async () => {
    const ledger = await ledgerWith('running');
    await settleJobFailedOutsideProcessor(deps(ledger), failed({ creating: 'garbage' }), stalled());
    expect(ledger.money()).toMatchObject({ reserved: 0, possiblyBilled: reservation });
  });

  it('says which BullMQ limit failed it', async () => {
    const ledger = await ledgerWith('queued', false);
    const outcome = await settleJobFailedOutsideProcessor(
      deps(ledger),
      failed(emptyCheckpoint),
      new Error('job started more than allowable limit'),
    );
    expect(outcome).toMatchObject({ kind: 'settled', reason: 'started-limit' });
    expect(ledger.lastRow()).toMatchObject({ status: 'failed', reason: 'started-limit' });
  });
});

describe('failures it leaves alone', () => {
  it.each(['failed', 'flagged', 'canceled', 'succeeded'] as const)(
    'a job whose row the processor already ended (%s)',
    async (status) => {
      const ledger = await ledgerWith(status);
      const rows = ledger.rows.length;
      const outcome = await settleJobFailedOutsideProcessor(deps(ledger), failed(emptyCheckpoint), stalled());
      expect(outcome).toEqual({ kind: 'skipped', why: 'recorded' });
      expect(ledger.rows).toHaveLength(rows);
      expect(ledger.money()).toMatchObject({ reserved: reservation, possiblyBilled: 0 });
    },
  );

  it('an attempt BullMQ retries (no finishedOn)', async () => {
    const ledger = await ledgerWith('running');
    const outcome = await settleJobFailedOutsideProcessor(
      deps(ledger),
      failed(emptyCheckpoint, { retried: true }),
      new Error('x'),
    );
    expect(outcome).toEqual({ kind: 'skipped', why: 'retried' });
    expect(ledger.money()).toMatchObject({ reserved: reservation });
  });

  it('a job that is not a render job', async () => {
    const ledger = await ledgerWith('running');
    const outcome = await settleJobFailedOutsideProcessor(
      deps(ledger),
      { id: 'job-1', data: { nonsense: true }, finishedOn: T0 },
      stalled(),
    );
    expect(outcome).toEqual({ kind: 'skipped', why: 'not-a-render-job' });
  });
});

describe('the sweep a starting worker makes over the newest failed jobs', () => {
  it('settles a failed job whose row was never ended, once, and reads only as many jobs as asked', async () => {
    const ledger = await ledgerWith('running');
    const checkpoint = withCurrentPrediction(emptyCheckpoint, 'p1', new Date(T0).toISOString());
    const asked: Array<[number, number]> = [];
    const source = {
      async getFailed(start: number, end: number) {
        asked.push([start, end]);
        return [{ ...failed(checkpoint), failedReason: STALLED_FAILURE }, undefined];
      },
    };
    expect(await settleRecentlyFailedJobs(source, deps(ledger), 50)).toBe(1);
    expect(asked).toEqual([[0, 49]]);
    expect(ledger.lastRow()).toMatchObject({ status: 'failed', reason: 'stalled' });
    expect(ledger.money()).toMatchObject({ reserved: 0, possiblyBilled: reservation });
    // A second sweep finds the row ended: nothing more.
    expect(await settleRecentlyFailedJobs(source, deps(ledger), 50)).toBe(0);
    expect(ledger.money()).toMatchObject({ reserved: 0, possiblyBilled: reservation });
  });
});
