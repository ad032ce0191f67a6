import { describe, expect, it } from 'vitest';
import {
  type Checkpoint,
  readCheckpoint,
  withCurrentPrediction,
  withoutCurrentPrediction,
} from '../../src/core/checkpoint.js';
import {
  checkpointForRetry,
  freshAttempt,
  holdsPrediction,
  postCreateDeadlineMs,
  stepOf,
} from '../../src/core/render-state.js';

const HOUR = 3_600_000;
const limits = { retentionMs: HOUR, marginMs: 60_000 };
const created = '2026-01-01T10:00:00.000Z';
const createdMs = Date.parse(created);
const fingerprint = 'a'.repeat(64);
const sha = 'b'.repeat(64);

const empty: Checkpoint = readCheckpoint({});
const creating: Checkpoint = { ...empty, creating: { fingerprint, sentAt: created } };
const awaiting: Checkpoint = withCurrentPrediction(creating, 'p1', created);
const finished: Checkpoint = {
  ...awaiting,
  finished: {
    id: 'p1',
    createdAt: created,
    startedAt: created,
    completedAt: created,
    outputUrls: ['https://replicate.delivery/x/out.webp'],
    imageCount: 1,
    predictTimeSeconds: 3,
    loggedSeed: 7,
  },
};
const stored: Checkpoint = {
  ...finished,
  stored: [{ key: 'out/x.webp', sha256: sha, size: 10, contentType: 'image/webp', source: 'https://r/x' }],
};
const gatedAndReserved = { gated: true, reserved: true, lookedForLostCreate: false };

describe('stepOf: the named states', () => {
  it('gates, then reserves, before anything else in each attempt', () => {
    expect(stepOf(stored, freshAttempt)).toBe('gate');
    expect(stepOf(empty, { ...freshAttempt, gated: true })).toBe('reserve');
  });

  it('walks create → await → store → record → done as the checkpoint fills', () => {
    expect(stepOf(empty, gatedAndReserved)).toBe('create');
    expect(stepOf(awaiting, gatedAndReserved)).toBe('await');
    expect(stepOf(finished, gatedAndReserved)).toBe('store');
    expect(stepOf(stored, gatedAndReserved)).toBe('record');
    expect(stepOf({ ...stored, recorded: true }, freshAttempt)).toBe('done');
  });

  it('looks for a lost create once per attempt before creating again', () => {
    expect(stepOf(creating, gatedAndReserved)).toBe('adopt');
    expect(stepOf(creating, { ...gatedAndReserved, lookedForLostCreate: true })).toBe('create');
  });
});

describe('current prediction', () => {
  it('keeps predictionIds a set when the same prediction is adopted twice', () => {
    const again = withCurrentPrediction(awaiting, 'p1', created);
    expect(again.predictionIds).toEqual(['p1']);
    const next = withCurrentPrediction(withoutCurrentPrediction(again), 'p2', undefined);
    expect(next.predictionIds).toEqual(['p1', 'p2']);
    expect(next.predictionCreatedAt).toBeUndefined();
    expect(next.predictionId).toBe('p2');
  });

  it('forgets the current prediction and the create in flight, keeping the history', () => {
    const cleared = withoutCurrentPrediction(awaiting);
    expect(cleared).not.toHaveProperty('predictionId');
    expect(cleared).not.toHaveProperty('predictionCreatedAt');
    expect(cleared).not.toHaveProperty('creating');
    expect(cleared.predictionIds).toEqual(['p1']);
  });
});

describe('postCreateDeadlineMs', () => {
  it('is undefined without a prediction, else created_at + retention − margin', () => {
    expect(holdsPrediction(creating)).toBe(false);
    expect(postCreateDeadlineMs(creating, limits)).toBeUndefined();
    expect(postCreateDeadlineMs(awaiting, limits)).toBe(createdMs + HOUR - 60_000);
    expect(postCreateDeadlineMs(finished, limits)).toBe(createdMs + HOUR - 60_000);
  });

  it('falls back to when the create was sent', () => {
    const { predictionCreatedAt: _at, ...withoutCreatedAt } = awaiting;
    expect(postCreateDeadlineMs({ ...withoutCreatedAt, creating: { fingerprint, sentAt: created } }, limits)).toBe(
      createdMs + HOUR - 60_000,
    );
  });
});

describe('checkpointForRetry: retry keeps what was paid', () => {
  const early = { ...limits, nowMs: createdMs + 10 * 60_000 };
  const late = { ...limits, nowMs: createdMs + HOUR };

  it('stores a succeeded prediction inside the retention instead of creating again', () => {
    const failedToStore = { ...finished, recorded: true };
    const { checkpoint, resumesPrediction } = checkpointForRetry(failedToStore, true, early);
    expect(resumesPrediction).toBe(true);
    expect(stepOf(checkpoint, gatedAndReserved)).toBe('store');
    expect(checkpoint.finished?.id).toBe('p1');
  });

  it('awaits a prediction that may still run', () => {
    const { checkpoint, resumesPrediction } = checkpointForRetry({ ...awaiting, recorded: true }, true, early);
    expect(resumesPrediction).toBe(true);
    expect(stepOf(checkpoint, gatedAndReserved)).toBe('await');
  });

  it('looks for a create whose answer was lost', () => {
    const { checkpoint, resumesPrediction } = checkpointForRetry({ ...creating, recorded: true }, true, early);
    expect(resumesPrediction).toBe(true);
    expect(stepOf(checkpoint, gatedAndReserved)).toBe('adopt');
  });

  it('creates anew past the retention, or with a new seed, keeping every prediction id', () => {
    for (const [old, sameSeed, at] of [
      [finished, true, late],
      [finished, false, early],
      [awaiting, true, late],
      [creating, true, late],
    ] as const) {
      const { checkpoint, resumesPrediction } = checkpointForRetry({ ...old, recorded: true }, sameSeed, at);
      expect(resumesPrediction).toBe(false);
      expect(stepOf(checkpoint, gatedAndReserved)).toBe('create');
      expect(checkpoint.predictionIds).toEqual(old.predictionIds);
      expect(checkpoint.recorded).toBe(false);
    }
  });

  it('creates anew for a job that never had a prediction', () => {
    const { checkpoint, resumesPrediction } = checkpointForRetry({ ...empty, recorded: true }, true, early);
    expect(resumesPrediction).toBe(false);
    expect(stepOf(checkpoint, gatedAndReserved)).toBe('create');
  });
});
