import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { deriveSeed, isValidSeed, MAX_SEED } from '../../src/core/seed.js';

const base = { run: 'catalog-2024', rowId: 'row-12', style: 'modern', reseed: 0 };

describe('deriveSeed', () => {
  it('is deterministic', () => {
    expect(deriveSeed(base)).toBe(deriveSeed({ ...base }));
  });

  it('is the top 31 bits of sha256 over the JSON-encoded parts', () => {
    const digest = createHash('sha256')
      .update(JSON.stringify(['depthq/seed/v1', base.run, base.rowId, base.style, base.reseed]))
      .digest();
    expect(deriveSeed(base)).toBe(digest.readUInt32BE(0) >>> 1);
  });

  it('stays within [0, MAX_SEED] and is a whole number', () => {
    expect(MAX_SEED).toBe(2_147_483_647);
    for (let index = 0; index < 2000; index++) {
      const seed = deriveSeed({ ...base, rowId: `row-${index}` });
      expect(Number.isInteger(seed)).toBe(true);
      expect(seed).toBeGreaterThanOrEqual(0);
      expect(seed).toBeLessThanOrEqual(MAX_SEED);
    }
  });

  it('spreads over the whole range (not stuck in a small part of it)', () => {
    const seeds = Array.from({ length: 2000 }, (_, index) => deriveSeed({ ...base, rowId: String(index) }));
    expect(new Set(seeds).size).toBe(2000);
    expect(seeds.filter((seed) => seed > MAX_SEED / 2).length).toBeGreaterThan(800);
    expect(seeds.filter((seed) => seed < MAX_SEED / 2).length).toBeGreaterThan(800);
  });

  it('changes with every part', () => {
    const seed = deriveSeed(base);
    expect(deriveSeed({ ...base, run: 'catalog-2025' })).not.toBe(seed);
    expect(deriveSeed({ ...base, rowId: 'row-13' })).not.toBe(seed);
    expect(deriveSeed({ ...base, style: 'classic' })).not.toBe(seed);
    expect(deriveSeed({ ...base, reseed: 1 })).not.toBe(seed);
  });

  it('encodes the parts unambiguously', () => {
    expect(deriveSeed({ ...base, run: 'a', rowId: 'bc' })).not.toBe(deriveSeed({ ...base, run: 'ab', rowId: 'c' }));
    expect(deriveSeed({ ...base, rowId: 'x', style: 'y.z' })).not.toBe(
      deriveSeed({ ...base, rowId: 'x.y', style: 'z' }),
    );
    expect(deriveSeed({ ...base, style: null })).not.toBe(deriveSeed({ ...base, style: 'null' }));
    expect(deriveSeed({ ...base, style: null })).not.toBe(deriveSeed({ ...base, style: '' }));
    expect(deriveSeed({ ...base, rowId: '1', reseed: 0 })).not.toBe(deriveSeed({ ...base, rowId: '10', reseed: 0 }));
  });

  it('gives a different seed for every re-roll', () => {
    const seeds = [0, 1, 2, 3, 4].map((reseed) => deriveSeed({ ...base, reseed }));
    expect(new Set(seeds).size).toBe(5);
  });

  it('handles unicode row ids', () => {
    expect(deriveSeed({ ...base, rowId: 'café' })).not.toBe(deriveSeed({ ...base, rowId: 'cafe\u0301' }));
  });

  it.each([-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY])('refuses reseed %d', (reseed) => {
    expect(() => deriveSeed({ ...base, reseed })).toThrow(RangeError);
  });
});

describe('isValidSeed', () => {
  it.each([0, 1, 42, MAX_SEED])('accepts %d', (seed) => {
    expect(isValidSeed(seed)).toBe(true);
  });

  it.each([-1, MAX_SEED + 1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '42', null, undefined, 2 ** 53])(
    'refuses %j',
    (seed) => {
      expect(isValidSeed(seed)).toBe(false);
    },
  );
});
