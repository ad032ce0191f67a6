/**
 * The pure comparisons behind `depthq verify` (src/runs/verify/): the ledger recounted from fake rows, settlements and
 * reservations; a sidecar against its row; the provider's predictions against what the rows know. No servers.
 */
import { describe, expect, it } from 'vitest';
import { inputFingerprint } from '../../src/core/fingerprint.js';
import type { ResultRow } from '../../src/ledger/run-ledger.js';
import type { Prediction } from '../../src/providers/provider.js';
import {
  countedTwiceProblems,
  counterProblems,
  moneyProblems,
  parseLedger,
  predictionOwners,
  recountLedger,
} from '../../src/runs/verify/ledger-checks.js';
import type { RawLedger } from '../../src/runs/verify/ledger-snapshot.js';
import {
  compareProviderPredictions,
  isBilled,
  type RunInputs,
  unlistedOfRun,
} from '../../src/runs/verify/provider-checks.js';
import { compareOutputBytes, compareSidecar } from '../../src/runs/verify/sidecar-checks.js';

const PRICE = 50_000;
const AT = '2026-12-02T10:00:00.000Z';

function row(status: ResultRow['status'], extra: Partial<ResultRow> = {}): ResultRow {
  return { status, rowId: 'r', style: null, ...extra };
}

function settlement(spent: number, possiblyBilled = 0): string {
  return JSON.stringify({ spent, possiblyBilled, releasedReservation: PRICE, settledAt: AT });
}

/** Three succeeded jobs, one failed whose prediction may have run, one still running with its money held. */
function healthyLedger(): RawLedger {
  const rows = new Map<string, string>([
    ['a', JSON.stringify(row('succeeded', { costMicros: PRICE, predictionIds: ['p1'], predictionId: 'p1' }))],
    ['b', JSON.stringify(row('succeeded', { costMicros: PRICE, predictionIds: ['p2'], predictionId: 'p2' }))],
    ['c', JSON.stringify(row('succeeded', { costMicros: PRICE, predictionIds: ['p0', 'p3'], predictionId: 'p3' }))],
    ['d', JSON.stringify(row('failed', { predictionIds: ['p4'], predictionId: 'p4' }))],
    ['e', JSON.stringify(row('running'))],
  ]);
  return {
    rows,
    counters: { succeeded: '3', failed: '1', running: '1', total: '5' },
    money: { reserved: String(PRICE), spent: String(3 * PRICE), possiblyBilled: String(PRICE) },
    reservations: { e: String(PRICE) },
    settlements: { a: settlement(PRICE), b: settlement(PRICE), c: settlement(PRICE), d: settlement(0, PRICE) },
    read: 'atomic',
  };
}

function ledgerProblems(raw: RawLedger) {
  const ledger = parseLedger(raw);
  const recount = recountLedger(ledger);
  return [...ledger.problems, ...counterProblems(ledger, recount), ...moneyProblems(ledger, recount)];
}

describe('the ledger recount', () => {
  it('finds nothing wrong with a consistent ledger, and recounts it', () => {
    const ledger = parseLedger(healthyLedger());
    const recount = recountLedger(ledger);
    expect(recount).toMatchObject({
      rowsByStatus: { succeeded: 3, failed: 1, running: 1, queued: 0 },
      spentRecountedMicros: 3 * PRICE,
      reservedRecountedMicros: PRICE,
      possiblyBilledSettledMicros: PRICE,
    });
    expect(ledgerProblems(healthyLedger())).toEqual([]);
  });

  it('names a counter off by one, and a counter no status names', () => {
    const raw = healthyLedger();
    const problems = ledgerProblems({ ...raw, counters: { ...raw.counters, succeeded: '4', bogus: '1' } });
    expect(problems.map((problem) => problem.message)).toEqual([
      'the succeeded counter is 4, but 3 rows are succeeded',
      'the ledger has a counter "bogus" no status names',
    ]);
    expect(problems.every((problem) => problem.kind === 'counter-mismatch')).toBe(true);
  });

  it('counts a failed job’s settled spending into spent (an output that expired), and finds spent off', () => {
    const raw = healthyLedger();
    const expired = { ...raw, settlements: { ...raw.settlements, d: settlement(PRICE) } };
    expect(
      ledgerProblems({ ...expired, money: { ...raw.money, spent: String(4 * PRICE), possiblyBilled: '0' } }),
    ).toEqual([]);
    const off = ledgerProblems({ ...raw, money: { ...raw.money, spent: String(3 * PRICE + 1) } });
    expect(off).toEqual([expect.objectContaining({ kind: 'spent-mismatch' })]);
    expect(off[0]?.message).toContain('150001 micros');
  });

  it('finds reserved that is not the sum of the reservations, and possibly billed below its settlements', () => {
    const raw = healthyLedger();
    expect(ledgerProblems({ ...raw, reservations: {} }).map((problem) => problem.kind)).toEqual(['reserved-mismatch']);
    expect(ledgerProblems({ ...raw, money: { ...raw.money, possiblyBilled: '0' } }).map((p) => p.kind)).toEqual([
      'possibly-billed-mismatch',
    ]);
  });

  it('finds a succeeded row whose settlement is missing or spent another amount', () => {
    const raw = healthyLedger();
    const { a: _a, ...withoutA } = raw.settlements;
    // Spent is then recounted from the rows alone, so only the settlement is named.
    expect(ledgerProblems({ ...raw, settlements: withoutA })).toEqual([
      expect.objectContaining({ kind: 'settlement-mismatch', jobId: 'a' }),
    ]);
    expect(ledgerProblems({ ...raw, settlements: { ...raw.settlements, b: settlement(2 * PRICE) } })).toEqual([
      expect.objectContaining({ kind: 'settlement-mismatch', jobId: 'b' }),
    ]);
  });

  it('reports a row that does not parse, and leaves it out of the sums', () => {
    const raw = healthyLedger();
    const rows = new Map(raw.rows);
    rows.set('f', '{"status":"exploded"}');
    const problems = ledgerProblems({ ...raw, rows });
    expect(problems).toContainEqual(expect.objectContaining({ kind: 'ledger-unreadable', jobId: 'f' }));
    // The total counter counts 5 rows, and 5 rows parse: the unreadable one is named once, not twice.
    expect(problems).toHaveLength(1);
  });

  it('finds a prediction id listed by two jobs', () => {
    const rows = parseLedger(healthyLedger()).rows;
    expect(countedTwiceProblems(predictionOwners(rows))).toEqual([]);
    const both = new Map(rows);
    both.set('e', row('running', { predictionIds: ['p1'] }));
    expect(countedTwiceProblems(predictionOwners(both))).toEqual([
      {
        kind: 'prediction-counted-twice',
        predictionId: 'p1',
        jobId: 'a',
        message: 'prediction p1 is listed by 2 jobs: a, e',
      },
    ]);
  });
});

describe('a sidecar against its row', () => {
  const sha = 'a'.repeat(64);
  const jobRow = row('succeeded', {
    seed: 7,
    predictionId: 'p1',
    costMicros: PRICE,
    outputKey: 'o/a.webp',
    prompt: 'x',
  });
  const input = { prompt: 'x', seed: 7, control_image: 's3://b/c.png' };
  function sidecar(extra: Record<string, unknown> = {}): string {
    return JSON.stringify({
      depthq: { jobId: 'a', run: 'run-1' },
      seed: 7,
      input,
      prediction: { id: 'p1' },
      cost: { micros: PRICE },
      output: { bucket: 'b', key: 'o/a.webp', sha256: sha, size: 10 },
      ...extra,
    });
  }

  it('agrees with a sidecar that describes the job, and lists its outputs', () => {
    const comparison = compareSidecar('a', 'run-1', jobRow, sidecar(), input);
    expect(comparison.problems).toEqual([]);
    expect(comparison.outputs).toEqual([{ bucket: 'b', key: 'o/a.webp', sha256: sha, size: 10 }]);
  });

  it('names each difference: seed, input, prediction id', () => {
    const other = compareSidecar('a', 'run-1', jobRow, sidecar({ seed: 8, prediction: { id: 'p9' } }), input);
    expect(other.problems.map((problem) => problem.message)).toEqual([
      'the seed is 8 in the sidecar, 7 in the ledger',
      'the prediction id is "p9" in the sidecar, "p1" in the ledger',
    ]);
    const prompt = compareSidecar('a', 'run-1', jobRow, sidecar({ input: { ...input, prompt: 'y' } }), input);
    expect(prompt.problems).toEqual([expect.objectContaining({ kind: 'sidecar-mismatch', jobId: 'a' })]);
    expect(prompt.problems[0]?.message).toMatch(/^the input is /);
  });

  it('calls a sidecar that is not JSON, or lacks the fields compared, unreadable', () => {
    expect(compareSidecar('a', 'run-1', jobRow, '{', input).problems[0]?.kind).toBe('sidecar-unreadable');
    expect(compareSidecar('a', 'run-1', jobRow, '{"seed":7}', input).problems[0]?.kind).toBe('sidecar-unreadable');
  });

  it('compares the bytes found with the bytes described', () => {
    const described = { bucket: 'b', key: 'k', sha256: sha, size: 10 };
    expect(compareOutputBytes('a', described, { sha256: sha, size: 10 })).toEqual([]);
    expect(compareOutputBytes('a', described, { sha256: 'b'.repeat(64), size: 10 })).toEqual([
      expect.objectContaining({ kind: 'output-bytes-differ', jobId: 'a' }),
    ]);
  });
});

describe('the provider’s predictions against the rows', () => {
  const inputA = { prompt: 'a', seed: 1, control_image: 'http://s3/b/a.png?X-Amz-Signature=one' };
  const inputB = { prompt: 'b', seed: 2, control_image: 'http://s3/b/b.png?X-Amz-Signature=one' };

  function prediction(id: string, input: Record<string, unknown>, extra: Partial<Prediction> = {}): Prediction {
    return {
      id,
      status: 'succeeded',
      createdAt: AT,
      startedAt: AT,
      completedAt: AT,
      outputUrls: [],
      predictTimeSeconds: 1,
      loggedSeed: null,
      error: null,
      // Another signature than the job's: the match ignores it.
      input: { ...input, control_image: String(input.control_image).replace('one', 'two') },
      dataRemoved: false,
      ...extra,
    };
  }

  function inputs(extra: Partial<RunInputs> = {}): RunInputs {
    const rows = new Map<string, ResultRow>([
      ['job-a', row('succeeded', { predictionId: 'p1', predictionIds: ['p1'] })],
      ['job-b', row('running')],
    ]);
    return {
      jobsByFingerprint: new Map([
        [inputFingerprint(inputA), ['job-a']],
        [inputFingerprint(inputB), ['job-b']],
      ]),
      owners: predictionOwners(rows),
      inFlight: new Set(),
      rows,
      liveJobs: new Set(['job-b']),
      claims: new Map(),
      ...extra,
    };
  }

  it('matches the known predictions and ignores other inputs', () => {
    const comparison = compareProviderPredictions(inputs(), [
      prediction('p1', inputA),
      prediction('x1', { prompt: 'someone else', seed: 9 }),
    ]);
    expect(comparison).toMatchObject({ problems: [], matched: 1, billed: 1, unknownUnbilled: 0 });
  });

  it('names a billed prediction of a job’s input that no row knows, and the job billed twice', () => {
    const comparison = compareProviderPredictions(inputs(), [prediction('p1', inputA), prediction('p9', inputA)]);
    // An orphan is a candidate until verify read the job once more (a running job lists it a moment later).
    expect(comparison.orphans).toEqual([
      {
        predictionId: 'p9',
        jobs: ['job-a'],
        problem: expect.objectContaining({ kind: 'orphan-prediction', jobId: 'job-a', predictionId: 'p9' }),
      },
    ]);
    expect(comparison.problems.map((problem) => [problem.kind, problem.jobId])).toEqual([
      ['job-billed-twice', 'job-a'],
    ]);
  });

  it('counts an unbilled unknown prediction without calling it an orphan; a create under way is not counted', () => {
    const failed = prediction('p8', inputB, { status: 'failed' });
    const canceledBeforeStart = prediction('p7', inputB, { status: 'canceled', startedAt: null });
    expect(isBilled(canceledBeforeStart)).toBe(false);
    expect(isBilled(prediction('p6', inputB, { status: 'canceled' }))).toBe(true);
    expect(compareProviderPredictions(inputs(), [failed, canceledBeforeStart])).toMatchObject({
      problems: [],
      orphans: [],
      unknownUnbilled: 2,
    });
    const running = prediction('p5', inputB, { status: 'processing' });
    const underWay = inputs({ inFlight: new Set([inputFingerprint(inputB)]) });
    expect(compareProviderPredictions(underWay, [running])).toMatchObject({
      problems: [],
      orphans: [],
      unknownUnbilled: 0,
    });
  });

  it('leaves a prediction another run’s job claimed to that run, and takes a live job’s claim as knowing it', () => {
    const otherRun = inputs({ claims: new Map([['p9', 'other-run.r']]) });
    expect(compareProviderPredictions(otherRun, [prediction('p9', inputA)])).toMatchObject({
      problems: [],
      orphans: [],
      ownedByOtherRuns: 1,
    });
    const justCreated = inputs({ claims: new Map([['p9', 'job-b']]) });
    expect(compareProviderPredictions(justCreated, [prediction('p9', inputB)])).toMatchObject({
      problems: [],
      orphans: [],
    });
    // A claim by a job of this run that has ended, whose row does not list it: still an orphan.
    const ended = inputs({ claims: new Map([['p9', 'job-a']]) });
    const orphan = compareProviderPredictions(ended, [prediction('p9', inputA)]).orphans[0];
    expect(orphan?.problem.kind).toBe('orphan-prediction');
    expect(orphan?.problem.message).toContain('job job-a claimed it, but its row does not list it');
  });

  it('finds a succeeded row whose prediction did not succeed', () => {
    const comparison = compareProviderPredictions(inputs(), [prediction('p1', inputA, { status: 'failed' })]);
    expect(comparison.problems).toEqual([
      expect.objectContaining({ kind: 'prediction-status-differs', jobId: 'job-a', predictionId: 'p1' }),
    ]);
  });

  it('asks for the claims of only the unknown predictions of the run’s inputs', () => {
    const listed = [prediction('p1', inputA), prediction('p9', inputA), prediction('x1', { prompt: 'other' })];
    const { jobsByFingerprint, owners } = inputs();
    expect(unlistedOfRun(jobsByFingerprint, owners, listed)).toEqual(['p9']);
  });
});
