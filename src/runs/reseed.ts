/**
 * The next seed for an image the content filter refused (E005). Replicate refuses the same input and seed every time,
 * so `depthq retry --flagged --reseed` gives the job a new seed — derived, like every seed depthq picks, from what
 * identifies the image and how many times it was re-rolled (core/seed.ts), so the new seed is reproducible and recorded.
 *
 * No counter is stored: the re-roll a derived seed came from is found again by deriving seeds 0, 1, 2 … until one
 * matches, and the next seed is the one after it. A seed the manifest gave (or one no re-roll within the search gives)
 * is followed by re-roll 0, the first derived seed. Either way the job's `seedSource` becomes `derived`.
 *
 * Pure: hashing only.
 */
import { deriveSeed } from '../core/seed.js';

/** How far back a re-roll is looked for: nobody re-rolls an image a thousand times. */
export const MAX_RESEED_SEARCH = 1_000;

export interface ImageIdentity {
  readonly run: string;
  readonly rowId: string;
  readonly style: string | null;
}

/** The re-roll that derives `seed` for this image, or `undefined` when none up to MAX_RESEED_SEARCH does. */
export function reseedIndexOf(image: ImageIdentity, seed: number): number | undefined {
  for (let reseed = 0; reseed <= MAX_RESEED_SEARCH; reseed++) {
    if (deriveSeed({ ...image, reseed }) === seed) return reseed;
  }
  return undefined;
}

/** The seed of the image's next re-roll, never equal to `currentSeed`. */
export function nextSeedAfter(
  image: ImageIdentity,
  currentSeed: number,
): { readonly seed: number; readonly reseed: number } {
  const found = reseedIndexOf(image, currentSeed);
  let reseed = found === undefined ? 0 : found + 1;
  let seed = deriveSeed({ ...image, reseed });
  // Two re-rolls may hash to the same 31-bit seed (or a manifest seed equal a derived one): that would be no re-roll.
  while (seed === currentSeed) {
    reseed += 1;
    seed = deriveSeed({ ...image, reseed });
  }
  return { seed, reseed };
}
