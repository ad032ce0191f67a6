/**
 * The provenance sidecar stored beside each output as `<key>.json` — what reproduces the image (model, input, seed) and
 * what it cost — and the small outcome BullMQ keeps for a succeeded job.
 */
import { hostname } from 'node:os';
import type { Checkpoint, FinishedPrediction, StoredOutput } from '../core/checkpoint.js';
import { costOf, microsToDecimal } from '../core/money.js';
import type { RenderJob } from '../core/render-job.js';

/** The small return value BullMQ keeps; the ledger and the sidecar hold the rest. */
export interface RenderOutcome {
  readonly status: 'succeeded';
  readonly outputKeys: readonly string[];
  readonly predictionId: string;
  readonly costMicros: number;
  readonly seed: number;
}

export function outcomeOf(payload: RenderJob, checkpoint: Checkpoint): RenderOutcome {
  const finished = checkpoint.finished;
  return {
    status: 'succeeded',
    outputKeys: (checkpoint.stored ?? []).map((output) => output.key),
    predictionId: finished?.id ?? checkpoint.predictionIds.at(-1) ?? '',
    costMicros: finished ? costOf(payload.priceMicrosPerImage, finished.imageCount) : 0,
    seed: Number(payload.input.seed),
  };
}

export interface SidecarFacts {
  readonly payload: RenderJob;
  readonly jobId: string;
  readonly checkpoint: Checkpoint;
  readonly finished: FinishedPrediction;
  readonly output: StoredOutput;
  readonly outputs: readonly StoredOutput[];
  readonly costMicros: number;
  readonly attempt: number;
  readonly storedAtMs: number;
}

/** The provenance that reproduces and accounts for one output image. */
export function sidecarOf(facts: SidecarFacts): Record<string, unknown> {
  const { payload, checkpoint, finished, output, outputs, costMicros } = facts;
  return {
    depthq: {
      sidecarVersion: 1,
      jobId: facts.jobId,
      run: payload.run,
      rowId: payload.rowId,
      style: payload.style,
      attempt: facts.attempt,
    },
    model: payload.model,
    input: { ...payload.input, control_image: `s3://${payload.controlImage.bucket}/${payload.controlImage.key}` },
    seed: payload.input.seed,
    seedSource: payload.seedSource,
    loggedSeed: finished.loggedSeed,
    prediction: {
      id: finished.id,
      createdAt: finished.createdAt,
      startedAt: finished.startedAt,
      completedAt: finished.completedAt,
      predictTimeSeconds: finished.predictTimeSeconds,
      imageCount: finished.imageCount,
      allPredictionIds: checkpoint.predictionIds,
    },
    controlImage: { bucket: payload.controlImage.bucket, key: payload.controlImage.key, ...checkpoint.control },
    output: { bucket: payload.output.bucket, ...output },
    ...(outputs.length > 1 ? { outputs: outputs.map((o) => ({ bucket: payload.output.bucket, ...o })) } : {}),
    cost: {
      micros: costMicros,
      usd: microsToDecimal(costMicros),
      priceMicrosPerImage: payload.priceMicrosPerImage,
      imageCount: finished.imageCount,
    },
    metadata: payload.metadata,
    storedAt: new Date(facts.storedAtMs).toISOString(),
    storedBy: { host: hostname(), pid: process.pid },
  };
}
