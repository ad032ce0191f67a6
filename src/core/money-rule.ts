/**
 * The one money rule: what a job that ends without a stored image owes, decided by where its prediction stands. Used by
 * the pipeline's endings, by `depthq cancel` and (through `checkpointForRetry`) by `depthq retry`; see docs/render-job.md.
 *
 * - a succeeded prediction was billed: `spent` = its image count × the price;
 * - a prediction that may run or may have run (an id whose end is unknown, a create whose answer was lost, a prediction
 *   canceled after it started, one the content filter refused) is `possiblyBilled` = the job's reservation;
 * - only a job that never sent a create, or whose last prediction ended without being billed (failed, aborted before it
 *   started), has its reservation released.
 * Budget is never handed back for a prediction that may run or has run.
 *
 * Pure: plain data in, plain data out.
 */
import type { Checkpoint } from './checkpoint.js';
import { costOf, type Micros } from './money.js';

export type PredictionStanding =
  | { readonly kind: 'none' }
  | { readonly kind: 'unknown' }
  | { readonly kind: 'succeeded'; readonly imageCount: number };

/** What was last seen of the job's current prediction, when something was (a cancel's answer, the awaited end). */
export interface PredictionSighting {
  readonly status: 'starting' | 'processing' | 'succeeded' | 'failed' | 'canceled' | 'aborted';
  readonly started: boolean;
  /** The content filter refused it: such a prediction may be billed (unconfirmed). */
  readonly flagged?: boolean;
  /** For a succeeded prediction: how many images it made. */
  readonly imageCount?: number;
}

/**
 * Where the job's prediction stands, from its checkpoint (`undefined`: unreadable, so anything may have been sent) and,
 * when there is one, the latest sighting of its current prediction.
 */
export function standingOf(checkpoint: Checkpoint | undefined, sighting?: PredictionSighting): PredictionStanding {
  if (checkpoint === undefined) return { kind: 'unknown' };
  if (checkpoint.finished !== undefined) return { kind: 'succeeded', imageCount: checkpoint.finished.imageCount };
  if (sighting !== undefined) {
    switch (sighting.status) {
      case 'succeeded':
        return { kind: 'succeeded', imageCount: sighting.imageCount ?? 1 };
      case 'failed':
        return sighting.flagged === true ? { kind: 'unknown' } : { kind: 'none' };
      case 'aborted':
        return { kind: 'none' };
      case 'canceled':
        return sighting.started ? { kind: 'unknown' } : { kind: 'none' };
      case 'starting':
      case 'processing':
        return { kind: 'unknown' };
    }
  }
  if (checkpoint.predictionId !== undefined || checkpoint.creating !== undefined) return { kind: 'unknown' };
  return { kind: 'none' };
}

export type EndSettlement =
  | { readonly kind: 'release' }
  | { readonly kind: 'settle'; readonly spent: Micros; readonly possiblyBilled: Micros };

export function settlementOfEnd(
  standing: PredictionStanding,
  prices: { readonly priceMicrosPerImage: Micros; readonly reservationMicros: Micros },
): EndSettlement {
  switch (standing.kind) {
    case 'succeeded':
      return { kind: 'settle', spent: costOf(prices.priceMicrosPerImage, standing.imageCount), possiblyBilled: 0 };
    case 'unknown':
      return { kind: 'settle', spent: 0, possiblyBilled: prices.reservationMicros };
    case 'none':
      return { kind: 'release' };
  }
}
