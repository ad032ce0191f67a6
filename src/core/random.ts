/**
 * A seeded pseudo-random source (mulberry32): small, fast, well mixed, and the same sequence for the same seed on every
 * platform — what makes simulated faults, rendered images and drawn control images repeat exactly.
 *
 * Pure.
 */
export type RandomSource = () => number;

/** Numbers in [0, 1), determined by `seed` (taken as an unsigned 32-bit integer). */
export function seededRandom(seed: number): RandomSource {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
