/**
 * Seeds for rows whose manifest gives none. A seed is the only way to reproduce an output, so depthq never lets the model
 * pick one at random: it derives one from what identifies the image (run, row, style) and how many times the image was
 * re-rolled. Deriving instead of drawing at random means re-ingesting the same manifest gives the same seeds, and a
 * resumed job never needs to have recorded a seed before it was used.
 *
 * Pure: hashing only.
 */
import { createHash } from 'node:crypto';

/** The largest seed depthq derives or accepts: a signed 32-bit integer, which every backend's seed parameter can hold. */
export const MAX_SEED = 2_147_483_647;

export interface SeedParts {
  readonly run: string;
  readonly rowId: string;
  readonly style: string | null;
  /** How many times this image was re-rolled (after a content-filter refusal, say): 0 for the first seed. */
  readonly reseed: number;
}

/**
 * Changing this changes every derived seed, so every output of a re-ingested manifest: bump it only on purpose. It also
 * keeps these hashes apart from any other sha256 of the same parts.
 */
const seedDomain = 'depthq/seed/v1';

/**
 * A seed in [0, MAX_SEED] from sha256 of the parts. The parts are JSON-encoded as an array, which is unambiguous:
 * ('a', 'bc') and ('ab', 'c') differ, and a null style differs from the style "null".
 */
export function deriveSeed(parts: SeedParts): number {
  if (!Number.isSafeInteger(parts.reseed) || parts.reseed < 0) {
    throw new RangeError(`reseed must be a whole number ≥ 0, got ${parts.reseed}`);
  }
  const encoded = JSON.stringify([seedDomain, parts.run, parts.rowId, parts.style, parts.reseed]);
  const digest = createHash('sha256').update(encoded, 'utf8').digest();
  // The top 31 bits of the digest: uniform over [0, 2^31 − 1] because a hash's bits are.
  return digest.readUInt32BE(0) >>> 1;
}

/** Whether `value` is a seed depthq sends: a whole number from 0 to MAX_SEED. */
export function isValidSeed(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 && value <= MAX_SEED;
}
