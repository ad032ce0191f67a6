/**
 * Injected faults. Per-request faults (5xx, connection resets) and per-prediction failures are drawn from a PRNG, which
 * is seeded when `faults.seed` is given so that a test or a demo sees the same faults every run. Creates and other
 * requests draw from separate streams, so the number of polls a client makes cannot shift which creates fail.
 *
 * Flagging is not random per request: Replicate's safety checker judges the content, so the same input is flagged every
 * time. It is decided by a hash of the input's content key and a salt. How a flagged prediction fails depends on the
 * model, as on Replicate: flux-depth-pro with E005, flux-depth-dev with its own safety checker's NSFW message.
 */
import { createHash } from 'node:crypto';
import { fluxDepthDev } from '../core/models.js';
import { type RandomSource, seededRandom } from '../core/random.js';
import type { Faults } from './options.js';

export type RequestFault =
  | { readonly kind: 'server-error'; readonly status: 500 | 502 | 503 }
  | { readonly kind: 'reset' };

export interface CreateFaults {
  /** Answer 500/502/503 before creating anything. */
  readonly serverError?: 500 | 502 | 503;
  /** Create, then destroy the connection instead of answering. */
  readonly resetAfterCreate: boolean;
  /** The prediction ends `failed` with a generic error. */
  readonly failPrediction: boolean;
}

const serverErrorStatuses = [500, 502, 503] as const;

/** Replicate's content filter (flux-depth-pro and other official models): the E005 error. */
export const flaggedError =
  'The input or output was flagged as sensitive. Please try again with different inputs. (E005)';
/** flux-depth-dev's own safety checker: no code, only this text. */
export const nsfwError = 'NSFW content detected. Try running it again, or try a different prompt.';

/** The error a flagged prediction of `model` (its `owner/name`) fails with. */
export function flaggedErrorOf(model: string): string {
  return model === fluxDepthDev.id ? nsfwError : flaggedError;
}
export const genericFailureError = 'Prediction failed: CUDA error: an illegal memory access was encountered';

export class FaultInjector {
  private faults: Faults;
  private createRandom: RandomSource;
  private otherRandom: RandomSource;
  private flagSalt: string;

  constructor(faults: Faults) {
    this.faults = faults;
    this.createRandom = faults.seed === undefined ? Math.random : seededRandom(faults.seed);
    this.otherRandom = faults.seed === undefined ? Math.random : seededRandom(faults.seed ^ 0x51ed);
    this.flagSalt = `depthq-sim:${faults.seed ?? 0}`;
  }

  current(): Faults {
    return this.faults;
  }

  /** Changes rates at run time; a new seed restarts both PRNG streams. */
  update(changes: { readonly [K in keyof Faults]?: Faults[K] | undefined }): void {
    const named = Object.fromEntries(Object.entries(changes).filter(([, value]) => value !== undefined));
    const next: Faults = { ...this.faults, ...named };
    if (changes.seed !== undefined && changes.seed !== this.faults.seed) {
      this.createRandom = seededRandom(changes.seed);
      this.otherRandom = seededRandom(changes.seed ^ 0x51ed);
      this.flagSalt = `depthq-sim:${changes.seed}`;
    }
    this.faults = next;
  }

  /** Always draws the same number of values per create, so one rate changing does not reshuffle the others. */
  forCreate(): CreateFaults {
    const serverErrorDraw = this.createRandom();
    const statusDraw = this.createRandom();
    const resetDraw = this.createRandom();
    const failDraw = this.createRandom();
    const serverError =
      serverErrorDraw < this.faults.serverErrorRate
        ? serverErrorStatuses[Math.floor(statusDraw * serverErrorStatuses.length)]
        : undefined;
    return {
      ...(serverError === undefined ? {} : { serverError }),
      resetAfterCreate: resetDraw < this.faults.connectionResetRate,
      failPrediction: failDraw < this.faults.failureRate,
    };
  }

  forOtherRequest(): RequestFault | undefined {
    const serverErrorDraw = this.otherRandom();
    const statusDraw = this.otherRandom();
    const resetDraw = this.otherRandom();
    if (serverErrorDraw < this.faults.serverErrorRate) {
      return { kind: 'server-error', status: serverErrorStatuses[Math.floor(statusDraw * 3)] ?? 500 };
    }
    return resetDraw < this.faults.connectionResetRate ? { kind: 'reset' } : undefined;
  }

  /** Deterministic per input: the same content key is flagged (or not) on every attempt. */
  isFlagged(contentKey: string): boolean {
    if (this.faults.flaggedRate <= 0) return false;
    const digest = createHash('sha256').update(`${this.flagSalt}\n${contentKey}`).digest();
    return digest.readUInt32BE(0) / 4294967296 < this.faults.flaggedRate;
  }
}
