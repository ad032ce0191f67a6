import { describe, expect, it } from 'vitest';
import { type Checkpoint, readCheckpoint, withCurrentPrediction } from '../../src/core/checkpoint.js';
import { settlementOfEnd, standingOf } from '../../src/core/money-rule.js';

const prices = { priceMicrosPerImage: 50_000, reservationMicros: 50_000 };
const empty: Checkpoint = readCheckpoint({});
const sentAt = '2026-01-01T10:00:00.000Z';
const creating: Checkpoint = { ...empty, creating: { fingerprint: 'a'.repeat(64), sentAt } };
const awaiting = withCurrentPrediction(creating, 'p1', sentAt);
const finished: Checkpoint = {
  ...awaiting,
  finished: {
    id: 'p1',
    createdAt: sentAt,
    startedAt: sentAt,
    completedAt: sentAt,
    outputUrls: ['a', 'b'],
    imageCount: 2,
    predictTimeSeconds: 1,
    loggedSeed: null,
  },
};

describe('standingOf', () => {
  it('reads the checkpoint alone', () => {
    expect(standingOf(empty)).toEqual({ kind: 'none' });
    expect(standingOf(creating)).toEqual({ kind: 'unknown' });
    expect(standingOf(awaiting)).toEqual({ kind: 'unknown' });
    expect(standingOf(finished)).toEqual({ kind: 'succeeded', imageCount: 2 });
    expect(standingOf(undefined)).toEqual({ kind: 'unknown' });
  });

  it('trusts the latest sighting of the current prediction', () => {
    expect(standingOf(awaiting, { status: 'succeeded', started: true, imageCount: 3 })).toEqual({
      kind: 'succeeded',
      imageCount: 3,
    });
    expect(standingOf(awaiting, { status: 'failed', started: true })).toEqual({ kind: 'none' });
    expect(standingOf(awaiting, { status: 'failed', started: true, flagged: true })).toEqual({ kind: 'unknown' });
    expect(standingOf(awaiting, { status: 'canceled', started: false })).toEqual({ kind: 'none' });
    expect(standingOf(awaiting, { status: 'canceled', started: true })).toEqual({ kind: 'unknown' });
    expect(standingOf(awaiting, { status: 'processing', started: true })).toEqual({ kind: 'unknown' });
    expect(standingOf(awaiting, { status: 'aborted', started: false })).toEqual({ kind: 'none' });
  });

  it('never lets a sighting undo a stored success', () => {
    expect(standingOf(finished, { status: 'failed', started: true })).toEqual({ kind: 'succeeded', imageCount: 2 });
  });
});

describe('settlementOfEnd: never hand back budget for a prediction that may run or has run', () => {
  it('spends image count × price for a succeeded prediction', () => {
    expect(settlementOfEnd({ kind: 'succeeded', imageCount: 2 }, prices)).toEqual({
      kind: 'settle',
      spent: 100_000,
      possiblyBilled: 0,
    });
  });

  it('counts the reservation as possibly billed when the outcome is unknown', () => {
    expect(settlementOfEnd({ kind: 'unknown' }, prices)).toEqual({ kind: 'settle', spent: 0, possiblyBilled: 50_000 });
  });

  it('releases only when no prediction can have been billed', () => {
    expect(settlementOfEnd({ kind: 'none' }, prices)).toEqual({ kind: 'release' });
  });
});
