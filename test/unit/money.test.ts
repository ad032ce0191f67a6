import { describe, expect, it } from 'vitest';
import {
  assertMicros,
  type BudgetState,
  canReserve,
  committedOf,
  costOf,
  formatUsd,
  InvalidAmountError,
  MICROS_PER_USD,
  microsToDecimal,
  remainingOf,
  usdToMicros,
} from '../../src/core/money.js';

describe('usdToMicros', () => {
  it.each([
    ['0.05', 50_000],
    ['$12', 12_000_000],
    ['1000.5', 1_000_500_000],
    ['0.000001', 1],
    ['0', 0],
    ['0.1', 100_000],
    [' $ 25 ', 25_000_000],
    ['$1200.50', 1_200_500_000],
    ['007.25', 7_250_000],
    ['9007199254.740991', Number.MAX_SAFE_INTEGER],
  ])('parses %j exactly as %d micro-dollars', (text, micros) => {
    expect(usdToMicros(text)).toBe(micros);
  });

  it('is exact where floats are not: 0.1 + 0.2 adds up to 0.3', () => {
    expect(usdToMicros('0.1') + usdToMicros('0.2')).toBe(usdToMicros('0.3'));
    expect(0.1 + 0.2).not.toBe(0.3);
  });

  it.each([
    '',
    'abc',
    '-1',
    '-0.05',
    '1e3',
    '0.0000001',
    '1.',
    '.5',
    '1,000',
    '$',
    '1.2.3',
    'NaN',
    'Infinity',
    '0x10',
    '5 USD',
  ])('refuses %j with a message that says what is accepted', (text) => {
    expect(() => usdToMicros(text)).toThrow(InvalidAmountError);
    expect(() => usdToMicros(text)).toThrow(/at most six decimals/);
  });

  it('refuses amounts too large to stay exact instead of rounding them', () => {
    expect(() => usdToMicros('9007199254.740992')).toThrow(/too large/);
    expect(() => usdToMicros('999999999999.000001')).toThrow(InvalidAmountError);
  });

  it('names its error class', () => {
    try {
      usdToMicros('x');
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(InvalidAmountError);
      expect((error as Error).name).toBe('InvalidAmountError');
    }
  });
});

describe('formatUsd', () => {
  it.each([
    [50_000, '$0.05'],
    [12, '$0.000012'],
    [0, '$0.00'],
    [1_000_000, '$1.00'],
    [1_500_000, '$1.50'],
    [1_234_567_890_000, '$1,234,567.89'],
    [5_000_000_000, '$5,000.00'],
    [-50_000, '-$0.05'],
    [1_000_001, '$1.000001'],
  ])('formats %d as %s', (micros, text) => {
    expect(formatUsd(micros)).toBe(text);
  });

  it('refuses fractional micro-dollars', () => {
    expect(() => formatUsd(0.5)).toThrow(InvalidAmountError);
    expect(() => formatUsd(Number.NaN)).toThrow(InvalidAmountError);
  });

  it('round-trips through usdToMicros for amounts without thousands separators', () => {
    for (const micros of [0, 1, 50_000, 999_999, 1_000_000, 123_456_789]) {
      expect(usdToMicros(formatUsd(micros))).toBe(micros);
    }
  });
});

describe('microsToDecimal', () => {
  it('always writes six decimals and no separators, for machines', () => {
    expect(microsToDecimal(50_000)).toBe('0.050000');
    expect(microsToDecimal(5_000_000_000)).toBe('5000.000000');
    expect(microsToDecimal(0)).toBe('0.000000');
    expect(microsToDecimal(-1)).toBe('-0.000001');
    expect(() => microsToDecimal(1.5)).toThrow(InvalidAmountError);
  });
});

describe('assertMicros and costOf', () => {
  it('accepts safe integers only', () => {
    expect(() => assertMicros(5)).not.toThrow();
    expect(() => assertMicros(-5)).not.toThrow();
    expect(() => assertMicros(0.05)).toThrow(/not a whole number of micro-dollars/);
    expect(() => assertMicros(2 ** 53)).toThrow(InvalidAmountError);
  });

  it('multiplies exactly: 100,000 images at $0.05 cost exactly $5,000', () => {
    expect(costOf(usdToMicros('0.05'), 100_000)).toBe(5_000 * MICROS_PER_USD);
    expect(costOf(25_000, 4)).toBe(100_000);
    expect(costOf(50_000, 0)).toBe(0);
  });

  it('refuses bad image counts and unsafe results', () => {
    expect(() => costOf(50_000, -1)).toThrow(/image count/);
    expect(() => costOf(50_000, 1.5)).toThrow(InvalidAmountError);
    expect(() => costOf(0.5, 2)).toThrow(InvalidAmountError);
    expect(() => costOf(2 ** 40, 2 ** 20)).toThrow(InvalidAmountError);
  });
});

describe('budget arithmetic', () => {
  const state: BudgetState = { budget: 1_000_000, reserved: 200_000, spent: 500_000, possiblyBilled: 100_000 };

  it('commits reserved, spent and possibly billed money', () => {
    expect(committedOf(state)).toBe(800_000);
  });

  it('allows a reservation that reaches the budget exactly, and not one micro-dollar more', () => {
    expect(canReserve(state, 200_000)).toBe(true);
    expect(canReserve(state, 200_001)).toBe(false);
    expect(canReserve(state, 0)).toBe(true);
  });

  it('counts possibly billed money against the budget', () => {
    expect(canReserve({ ...state, possiblyBilled: 0 }, 300_000)).toBe(true);
    expect(canReserve(state, 300_000)).toBe(false);
  });

  it('never refuses when there is no budget', () => {
    expect(canReserve({ ...state, budget: null }, Number.MAX_SAFE_INTEGER)).toBe(true);
    expect(remainingOf({ ...state, budget: null })).toBeNull();
  });

  it('refuses fractional reservations', () => {
    expect(() => canReserve(state, 0.5)).toThrow(InvalidAmountError);
  });

  it('reports what is left, never below zero', () => {
    expect(remainingOf(state)).toBe(200_000);
    expect(remainingOf({ ...state, budget: 700_000 })).toBe(0);
    expect(remainingOf({ ...state, budget: 0, reserved: 0, spent: 0, possiblyBilled: 0 })).toBe(0);
  });
});
