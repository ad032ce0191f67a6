import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidRunIdError } from '../../src/core/errors.js';
import { ledgerKeys } from '../../src/core/keys.js';
import { canReserve, committedOf } from '../../src/core/money.js';
import {
  LedgerDataError,
  type NewRun,
  RESULT_STATUSES,
  type ResultRow,
  type ResultStatus,
  RunLedger,
  RunMetaConflictError,
  RunNotFoundError,
} from '../../src/ledger/run-ledger.js';
import { uniqueName, useLocalStack } from '../helpers/stack.js';

const stack = useLocalStack({ s3: false, simulator: false });

const connections: Redis[] = [];
let redis: Redis;

function connect(): Redis {
  const url = stack().redis?.url;
  if (url === undefined) throw new Error('the local stack started no redis-server');
  const connection = new Redis(url);
  connections.push(connection);
  return connection;
}

beforeAll(() => {
  redis = connect();
});

afterAll(async () => {
  await Promise.all(connections.map((connection) => connection.quit()));
});

const PRICE = 50_000;
const fixedNow = new Date('2025-01-02T03:04:05.000Z');

function newRun(overrides: Partial<NewRun> = {}): NewRun {
  return {
    model: 'black-forest-labs/flux-depth-pro',
    budgetMicros: 10 * PRICE,
    manifest: { name: 'manifest.csv', sha256: 'a'.repeat(64) },
    output: { bucket: 'renders', prefix: 'out/', keyTemplate: '{run}/{style}/{id}.{ext}' },
    defaults: { steps: 50, guidance: 15, output_format: 'jpg' },
    ...overrides,
  };
}

/** A ledger under its own key prefix with one created run. */
async function ledgerWithRun(overrides: Partial<NewRun> = {}): Promise<{ ledger: RunLedger; run: string }> {
  const ledger = new RunLedger(redis, uniqueName('ledger'), { now: () => fixedNow });
  const run = 'run-1';
  await ledger.createRun(run, newRun(overrides));
  return { ledger, run };
}

function row(status: ResultStatus, rowId: string, extra: Partial<ResultRow> = {}): ResultRow {
  return { status, rowId, style: null, ...extra };
}

describe('runs', () => {
  it('creates a run once, lists it and reads its meta back', async () => {
    const ledger = new RunLedger(redis, uniqueName('ledger'), { now: () => fixedNow });
    expect(await ledger.getRun('alpha')).toBeUndefined();
    const first = await ledger.createRun('alpha', newRun());
    expect(first.created).toBe(true);
    await ledger.createRun('beta', newRun({ budgetMicros: null }));

    const meta = await ledger.getRun('alpha');
    expect(meta).toEqual({ ...newRun(), createdAt: fixedNow.toISOString() });
    expect(await ledger.listRuns()).toEqual(['alpha', 'beta']);
    expect(await ledger.money('alpha')).toEqual({ budget: 10 * PRICE, reserved: 0, spent: 0, possiblyBilled: 0 });
    expect(await ledger.money('beta')).toEqual({ budget: null, reserved: 0, spent: 0, possiblyBilled: 0 });
    expect(await ledger.counters('alpha')).toEqual({
      queued: 0,
      running: 0,
      succeeded: 0,
      failed: 0,
      flagged: 0,
      parked: 0,
      canceled: 0,
      total: 0,
    });
  });

  it('treats creating an existing run with the same meta as a no-op that keeps the first creation time', async () => {
    let now = new Date('2025-01-01T00:00:00.000Z');
    const ledger = new RunLedger(redis, uniqueName('ledger'), { now: () => now });
    await ledger.createRun('alpha', newRun());
    await ledger.reserve('alpha', 'job-1', PRICE);

    now = new Date('2025-06-01T00:00:00.000Z');
    // Same settings, defaults written in another key order.
    const again = await ledger.createRun(
      'alpha',
      newRun({ defaults: { output_format: 'jpg', guidance: 15, steps: 50 } }),
    );
    expect(again.created).toBe(false);
    expect(again.meta.createdAt).toBe('2025-01-01T00:00:00.000Z');
    expect(await ledger.money('alpha')).toMatchObject({ reserved: PRICE });
    expect(await ledger.listRuns()).toEqual(['alpha']);
  });

  it('refuses to create an existing run with different meta, naming each difference', async () => {
    const ledger = new RunLedger(redis, uniqueName('ledger'));
    await ledger.createRun('alpha', newRun());
    const attempt = ledger.createRun(
      'alpha',
      newRun({ model: 'black-forest-labs/flux-depth-dev', budgetMicros: 20 * PRICE, defaults: { steps: 28 } }),
    );
    await expect(attempt).rejects.toThrow(RunMetaConflictError);
    const error = await attempt.catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(RunMetaConflictError);
    if (!(error instanceof RunMetaConflictError)) return;
    expect(error.name).toBe('RunMetaConflictError');
    expect(error.differences.map((difference) => difference.field)).toEqual(['model', 'budgetMicros', 'defaults']);
    expect(error.message).toContain('model is "black-forest-labs/flux-depth-dev"');
    expect(error.message).toContain('budget is $1.00 (the run has $0.50)');
    // The stored run is unchanged.
    expect((await ledger.getRun('alpha'))?.model).toBe('black-forest-labs/flux-depth-pro');
  });

  it('refuses invalid run ids and operations on runs that do not exist', async () => {
    const ledger = new RunLedger(redis, uniqueName('ledger'));
    await expect(ledger.createRun('Bad:Run', newRun())).rejects.toThrow(InvalidRunIdError);
    await expect(ledger.reserve('missing', 'job-1', PRICE)).rejects.toThrow(RunNotFoundError);
    await expect(ledger.settle('missing', 'job-1', { spent: PRICE, possiblyBilled: 0 })).rejects.toThrow(
      RunNotFoundError,
    );
    await expect(ledger.release('missing', 'job-1')).rejects.toThrow(RunNotFoundError);
    await expect(ledger.setBudget('missing', PRICE)).rejects.toThrow(RunNotFoundError);
    await expect(ledger.recordResult('missing', 'job-1', row('queued', 'r1'))).rejects.toThrow(RunNotFoundError);
    await expect(
      ledger.registerJobs('missing', [{ jobId: 'job-1', row: { rowId: 'r1', style: null } }]),
    ).rejects.toThrow(RunNotFoundError);
    await expect(ledger.money('missing')).rejects.toThrow(RunNotFoundError);
    await expect(ledger.counters('missing')).rejects.toThrow(RunNotFoundError);
    // Nothing was written for the unknown run.
    expect(await redis.exists(...Object.values(ledgerKeys(ledger.prefix, 'missing')))).toBe(0);
  });
});

describe('reserve', () => {
  it('reserves up to the budget exactly, then refuses without changing anything', async () => {
    const { ledger, run } = await ledgerWithRun({ budgetMicros: 3 * PRICE });
    for (const job of ['a', 'b', 'c']) {
      expect(await ledger.reserve(run, job, PRICE)).toMatchObject({ ok: true, amount: PRICE, alreadyHeld: false });
    }
    const refused = await ledger.reserve(run, 'd', PRICE);
    expect(refused).toEqual({
      ok: false,
      reason: 'budget',
      state: { budget: 3 * PRICE, reserved: 3 * PRICE, spent: 0, possiblyBilled: 0 },
    });
    expect(canReserve(refused.state, PRICE)).toBe(false);
    expect(await redis.hexists(ledgerKeys(ledger.prefix, run).reservations, 'd')).toBe(0);
  });

  it('counts spent and possibly billed money against the budget, as canReserve does', async () => {
    const { ledger, run } = await ledgerWithRun({ budgetMicros: 3 * PRICE });
    await ledger.settle(run, 'spent-job', { spent: PRICE, possiblyBilled: 0 });
    await ledger.settle(run, 'flagged-job', { spent: 0, possiblyBilled: PRICE });
    const state = await ledger.money(run);
    expect(committedOf(state)).toBe(2 * PRICE);
    expect(canReserve(state, PRICE)).toBe(true);
    expect(canReserve(state, PRICE + 1)).toBe(false);
    expect((await ledger.reserve(run, 'too-much', PRICE + 1)).ok).toBe(false);
    expect((await ledger.reserve(run, 'just-enough', PRICE)).ok).toBe(true);
  });

  it('returns the reservation a job already holds, unchanged, whatever it asks for now', async () => {
    const { ledger, run } = await ledgerWithRun();
    await ledger.reserve(run, 'job-1', PRICE);
    const again = await ledger.reserve(run, 'job-1', 3 * PRICE);
    expect(again).toMatchObject({ ok: true, amount: PRICE, alreadyHeld: true, state: { reserved: PRICE } });
  });

  it('reserves without limit when the run has no budget', async () => {
    const { ledger, run } = await ledgerWithRun({ budgetMicros: null });
    const outcome = await ledger.reserve(run, 'big', 1_000_000 * PRICE);
    expect(outcome).toMatchObject({ ok: true, state: { budget: null, reserved: 1_000_000 * PRICE } });
  });

  it('grants exactly ten of two hundred concurrent reserves on several connections against a budget for ten', async () => {
    const { ledger, run } = await ledgerWithRun({ budgetMicros: 10 * PRICE });
    const ledgers = Array.from({ length: 5 }, () => new RunLedger(connect(), ledger.prefix));
    const outcomes = await Promise.all(
      Array.from({ length: 200 }, (_, index) =>
        (ledgers[index % ledgers.length] ?? ledger).reserve(run, `job-${index}`, PRICE),
      ),
    );
    expect(outcomes.filter((outcome) => outcome.ok)).toHaveLength(10);
    expect(outcomes.filter((outcome) => !outcome.ok && outcome.reason === 'budget')).toHaveLength(190);
    expect(await ledger.money(run)).toEqual({ budget: 10 * PRICE, reserved: 10 * PRICE, spent: 0, possiblyBilled: 0 });
    expect(await redis.hlen(ledgerKeys(ledger.prefix, run).reservations)).toBe(10);
  });

  it('reserves once when the same job reserves concurrently from several connections', async () => {
    const { ledger, run } = await ledgerWithRun({ budgetMicros: 10 * PRICE });
    const ledgers = Array.from({ length: 4 }, () => new RunLedger(connect(), ledger.prefix));
    const outcomes = await Promise.all(
      Array.from({ length: 40 }, (_, index) => (ledgers[index % 4] ?? ledger).reserve(run, 'same-job', PRICE)),
    );
    expect(outcomes.every((outcome) => outcome.ok)).toBe(true);
    expect(outcomes.filter((outcome) => outcome.ok && !outcome.alreadyHeld)).toHaveLength(1);
    expect((await ledger.money(run)).reserved).toBe(PRICE);
  });

  it('refuses amounts that are not whole non-negative micro-dollars before touching Redis', async () => {
    const { ledger, run } = await ledgerWithRun();
    await expect(ledger.reserve(run, 'job', 0.5)).rejects.toThrow(/micro-dollars/);
    await expect(ledger.reserve(run, 'job', -1)).rejects.toThrow(RangeError);
    await expect(ledger.reserve(run, '', PRICE)).rejects.toThrow(RangeError);
    expect((await ledger.money(run)).reserved).toBe(0);
  });
});

describe('settle and release', () => {
  it('moves a reservation into spent and possibly billed, once', async () => {
    let now = new Date('2025-01-01T00:00:00.000Z');
    const ledger = new RunLedger(redis, uniqueName('ledger'), { now: () => now });
    const run = 'run-1';
    await ledger.createRun(run, newRun());
    await ledger.reserve(run, 'job-1', 2 * PRICE);

    const first = await ledger.settle(run, 'job-1', { spent: PRICE, possiblyBilled: 30_000 });
    expect(first).toEqual({
      alreadySettled: false,
      settlement: {
        spent: PRICE,
        possiblyBilled: 30_000,
        releasedReservation: 2 * PRICE,
        settledAt: now.toISOString(),
      },
      state: { budget: 10 * PRICE, reserved: 0, spent: PRICE, possiblyBilled: 30_000 },
    });

    now = new Date('2025-01-01T01:00:00.000Z');
    const second = await ledger.settle(run, 'job-1', { spent: 9 * PRICE, possiblyBilled: 9 });
    expect(second.alreadySettled).toBe(true);
    expect(second.settlement).toEqual(first.settlement);
    expect(second.state).toEqual(first.state);
    expect(await ledger.settlement(run, 'job-1')).toEqual(first.settlement);
  });

  it('counts a settlement without a reservation once, even when settled concurrently', async () => {
    const { ledger, run } = await ledgerWithRun();
    await ledger.reserve(run, 'other', PRICE);
    const ledgers = Array.from({ length: 4 }, () => new RunLedger(connect(), ledger.prefix));
    const outcomes = await Promise.all(
      Array.from({ length: 20 }, (_, index) =>
        (ledgers[index % 4] ?? ledger).settle(run, 'adopted', { spent: PRICE, possiblyBilled: 0 }),
      ),
    );
    expect(outcomes.filter((outcome) => !outcome.alreadySettled)).toHaveLength(1);
    expect(outcomes[0]?.settlement.releasedReservation).toBe(0);
    expect(await ledger.money(run)).toEqual({ budget: 10 * PRICE, reserved: PRICE, spent: PRICE, possiblyBilled: 0 });
  });

  it('refuses to reserve again for a settled job until its settlement is cleared for a retry', async () => {
    const { ledger, run } = await ledgerWithRun();
    await ledger.reserve(run, 'job-1', PRICE);
    await ledger.settle(run, 'job-1', { spent: 0, possiblyBilled: PRICE });
    const refused = await ledger.reserve(run, 'job-1', PRICE);
    expect(refused).toMatchObject({ ok: false, reason: 'settled', settlement: { possiblyBilled: PRICE } });
    expect((await ledger.money(run)).reserved).toBe(0);

    expect(await ledger.clearSettlement(run, 'job-1')).toBe(true);
    expect(await ledger.clearSettlement(run, 'job-1')).toBe(false);
    expect(await ledger.reserve(run, 'job-1', PRICE)).toMatchObject({ ok: true, alreadyHeld: false });
    // The first life's money stays counted.
    expect(await ledger.money(run)).toMatchObject({ reserved: PRICE, possiblyBilled: PRICE });
  });

  it('reopens a settlement into the reservation for a retry that resumes the same prediction, once', async () => {
    const { ledger, run } = await ledgerWithRun();
    await ledger.reserve(run, 'job-1', PRICE);
    await ledger.settle(run, 'job-1', { spent: PRICE, possiblyBilled: 0 });
    await ledger.reserve(run, 'job-2', PRICE);
    await ledger.settle(run, 'job-2', { spent: 0, possiblyBilled: PRICE });
    const committed = await ledger.money(run);

    expect(await ledger.reopenSettlement(run, 'job-1')).toMatchObject({ spent: PRICE, possiblyBilled: 0 });
    expect(await ledger.reopenSettlement(run, 'job-2')).toMatchObject({ spent: 0, possiblyBilled: PRICE });
    expect(await ledger.reopenSettlement(run, 'job-2')).toBeUndefined();
    expect(await ledger.settlement(run, 'job-1')).toBeUndefined();
    // Nothing handed back in between: what was spent or possibly billed is reserved again, in the same total.
    const reopened = await ledger.money(run);
    expect(reopened).toEqual({ budget: committed.budget, reserved: 2 * PRICE, spent: 0, possiblyBilled: 0 });
    expect(await ledger.reserve(run, 'job-1', PRICE)).toMatchObject({ ok: true, alreadyHeld: true });

    await ledger.settle(run, 'job-1', { spent: PRICE, possiblyBilled: 0 });
    await ledger.settle(run, 'job-2', { spent: PRICE, possiblyBilled: 0 });
    expect(await ledger.money(run)).toEqual({
      budget: committed.budget,
      reserved: 0,
      spent: 2 * PRICE,
      possiblyBilled: 0,
    });
    await expect(ledger.reopenSettlement('no-such-run', 'job-1')).rejects.toThrow(/no-such-run/);
  });

  it('releases a reservation without spending, and releasing nothing changes nothing', async () => {
    const { ledger, run } = await ledgerWithRun();
    await ledger.reserve(run, 'job-1', PRICE);
    await ledger.reserve(run, 'job-2', PRICE);
    expect(await ledger.release(run, 'job-1')).toEqual({
      released: PRICE,
      state: { budget: 10 * PRICE, reserved: PRICE, spent: 0, possiblyBilled: 0 },
    });
    expect(await ledger.release(run, 'job-1')).toMatchObject({ released: null, state: { reserved: PRICE } });
    // Released, not settled: the job may reserve again.
    expect(await ledger.reserve(run, 'job-1', PRICE)).toMatchObject({ ok: true, alreadyHeld: false });
    // A zero reservation releases cleanly too (HINCRBY refuses "-0").
    await ledger.reserve(run, 'free', 0);
    expect(await ledger.release(run, 'free')).toMatchObject({ released: 0, state: { reserved: 2 * PRICE } });
  });
});

describe('setBudget', () => {
  it('raises, lowers below what is committed, and removes the budget', async () => {
    const { ledger, run } = await ledgerWithRun({ budgetMicros: 2 * PRICE });
    await ledger.reserve(run, 'a', PRICE);
    await ledger.reserve(run, 'b', PRICE);
    expect((await ledger.reserve(run, 'c', PRICE)).ok).toBe(false);

    expect(await ledger.setBudget(run, 3 * PRICE)).toEqual({
      budget: 3 * PRICE,
      reserved: 2 * PRICE,
      spent: 0,
      possiblyBilled: 0,
    });
    expect((await ledger.reserve(run, 'c', PRICE)).ok).toBe(true);

    expect((await ledger.setBudget(run, PRICE)).budget).toBe(PRICE);
    expect((await ledger.reserve(run, 'd', 0)).ok).toBe(false);
    // Lowering never takes back what is held.
    expect(await ledger.money(run)).toMatchObject({ reserved: 3 * PRICE });

    expect((await ledger.setBudget(run, null)).budget).toBeNull();
    expect((await ledger.reserve(run, 'd', 100 * PRICE)).ok).toBe(true);
    // The run's meta keeps the budget it was created with.
    expect((await ledger.getRun(run))?.budgetMicros).toBe(2 * PRICE);
  });
});

describe('results and counters', () => {
  it('moves the status counter with each row and never counts a repeated status twice', async () => {
    const { ledger, run } = await ledgerWithRun();
    expect(await ledger.recordResult(run, 'job-1', row('queued', 'r1'))).toEqual({ previousStatus: null });
    expect(await ledger.recordResult(run, 'job-1', row('running', 'r1', { attempts: 1 }))).toEqual({
      previousStatus: 'queued',
    });
    expect(await ledger.recordResult(run, 'job-1', row('running', 'r1', { attempts: 2 }))).toEqual({
      previousStatus: 'running',
    });
    const done = row('succeeded', 'r1', {
      outputKey: 'out/run-1/r1.jpg',
      seed: 42,
      predictionId: 'p-1',
      costMicros: PRICE,
      attempts: 2,
      startedAt: '2025-01-01T00:00:00.000Z',
      finishedAt: '2025-01-01T00:00:09.000Z',
      metadata: { client: 'acme' },
    });
    await ledger.recordResult(run, 'job-1', done);
    await ledger.recordResult(run, 'job-2', row('failed', 'r2', { error: 'HTTP 422', reason: 'invalid-input' }));

    expect(await ledger.result(run, 'job-1')).toEqual(done);
    expect(await ledger.result(run, 'nope')).toBeUndefined();
    expect(await ledger.counters(run)).toMatchObject({ queued: 0, running: 0, succeeded: 1, failed: 1, total: 2 });
  });

  it('keeps counters equal to the rows under many concurrent transitions from several connections', async () => {
    const { ledger, run } = await ledgerWithRun();
    const ledgers = Array.from({ length: 4 }, () => new RunLedger(connect(), ledger.prefix));
    const jobs = Array.from({ length: 50 }, (_, index) => `job-${index}`);
    // Each job's transitions race one another: the final status of each is whichever landed last.
    await Promise.all(
      jobs.flatMap((jobId, jobIndex) =>
        RESULT_STATUSES.map((status, statusIndex) =>
          (ledgers[(jobIndex + statusIndex) % 4] ?? ledger).recordResult(run, jobId, row(status, jobId)),
        ),
      ),
    );
    const tally = Object.fromEntries([...RESULT_STATUSES, 'total'].map((name) => [name, 0]));
    for await (const { row: stored } of ledger.results(run)) {
      tally[stored.status] = (tally[stored.status] ?? 0) + 1;
      tally.total = (tally.total ?? 0) + 1;
    }
    expect(tally.total).toBe(50);
    expect(await ledger.counters(run)).toEqual(tally);
  });

  it('refuses a row that does not match the schema', async () => {
    const { ledger, run } = await ledgerWithRun();
    const invalid = { status: 'exploded', rowId: 'r1', style: null } as unknown as ResultRow;
    await expect(ledger.recordResult(run, 'job-1', invalid)).rejects.toThrow();
    await expect(ledger.recordResult(run, 'job-1', row('succeeded', 'r1', { costMicros: 1.5 }))).rejects.toThrow();
    expect((await ledger.counters(run)).total).toBe(0);
  });

  it('registers queued rows idempotently, counting only the new ones and leaving existing rows untouched', async () => {
    const { ledger, run } = await ledgerWithRun();
    await ledger.recordResult(run, 'job-0', row('succeeded', 'r0', { costMicros: PRICE }));
    const jobs = Array.from({ length: 2_500 }, (_, index) => ({
      jobId: `job-${index}`,
      row: { rowId: `r${index}`, style: index % 2 === 0 ? 'modern' : null, seed: index },
    }));
    expect(await ledger.registerJobs(run, jobs)).toBe(2_499);
    expect(await ledger.registerJobs(run, jobs)).toBe(0);
    expect(await ledger.counters(run)).toMatchObject({ queued: 2_499, succeeded: 1, total: 2_500 });
    expect(await ledger.result(run, 'job-0')).toMatchObject({ status: 'succeeded', costMicros: PRICE });
    expect(await ledger.result(run, 'job-7')).toEqual({ status: 'queued', rowId: 'r7', style: null, seed: 7 });
  });

  it('iterates 100k rows with HSCAN, each exactly once', async () => {
    const { ledger, run } = await ledgerWithRun();
    const count = 100_000;
    const jobs = Array.from({ length: count }, (_, index) => ({
      jobId: `bulk.row-${index}.style`,
      row: { rowId: `row-${index}`, style: 'style' },
    }));
    expect(await ledger.registerJobs(run, jobs)).toBe(count);
    const seen = new Set<string>();
    let rows = 0;
    for await (const { jobId, row: stored } of ledger.results(run, { batchSize: 2_000 })) {
      rows += 1;
      seen.add(jobId);
      expect(stored.status).toBe('queued');
    }
    expect(rows).toBe(count);
    expect(seen.size).toBe(count);
    expect((await ledger.counters(run)).queued).toBe(count);
  }, 120_000);

  it('says which row is corrupt instead of returning it', async () => {
    const { ledger, run } = await ledgerWithRun();
    await redis.hset(ledgerKeys(ledger.prefix, run).results, 'broken', '{"status":"queued"');
    await expect(ledger.result(run, 'broken')).rejects.toThrow(LedgerDataError);
    await expect(ledger.result(run, 'broken')).rejects.toThrow(/"broken"/);
  });
});
