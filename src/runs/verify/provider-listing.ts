/**
 * What the provider check needs from outside: the fingerprint of the exact input each job sends, and the provider's
 * predictions created while the run could have made some (bounded: a window, and a cap on how many are listed).
 *
 * A job sends its payload's input with the control image as a presigned URL (`create` in src/pipeline/steps.ts); the
 * fingerprint compares URLs without their query (the signature), so presigning the same object here gives the same
 * fingerprint as the worker's. Presigning is computed locally: it sends nothing to S3.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import type { Redis } from 'ioredis';
import pLimit from 'p-limit';
import { inputFingerprint } from '../../core/fingerprint.js';
import { ledgerKeys } from '../../core/keys.js';
import { findModel } from '../../core/models.js';
import { type RenderJob, renderJobSchema } from '../../core/render-job.js';
import { scanHash } from '../../ledger/hash-scan.js';
import type { ImageModelProvider, Prediction } from '../../providers/provider.js';
import { RedisPredictionClaims } from '../../queue/prediction-claims.js';
import { queueKeyPrefixOf } from '../../queue/render-queue.js';
import { presignGetUrl } from '../../storage/s3.js';

const SCAN_BATCH = 500;

/** Every payload the ledger kept for the run's jobs (job id → payload); one that does not parse is left out. */
export async function readPayloads(redis: Redis, prefix: string, run: string): Promise<Map<string, RenderJob>> {
  const key = ledgerKeys(prefix, run).payloads;
  const payloads = new Map<string, RenderJob>();
  for await (const [jobId, json] of scanHash(redis, key, SCAN_BATCH)) {
    try {
      const parsed = renderJobSchema.safeParse(JSON.parse(json));
      if (parsed.success) payloads.set(jobId, parsed.data);
    } catch {
      // Not JSON: this job cannot be fingerprinted; its predictions are still matched by the ids its row lists.
    }
  }
  return payloads;
}

/** The fingerprint of what each payload's job sends → the jobs that send it. */
export async function fingerprintsOf(
  s3: S3Client,
  payloads: ReadonlyMap<string, RenderJob>,
): Promise<Map<string, string[]>> {
  const urls = new Map<string, string>();
  const byFingerprint = new Map<string, string[]>();
  for (const [jobId, payload] of payloads) {
    const model = findModel(payload.model);
    if (model === undefined) continue;
    const { bucket, key } = payload.controlImage;
    const location = `${bucket}/${key}`;
    let url = urls.get(location);
    if (url === undefined) {
      url = await presignGetUrl(s3, { bucket, key }, 60);
      urls.set(location, url);
    }
    const fingerprint = inputFingerprint({ ...payload.input, [model.imageInputs[0] ?? 'control_image']: url });
    byFingerprint.set(fingerprint, [...(byFingerprint.get(fingerprint) ?? []), jobId]);
  }
  return byFingerprint;
}

export interface ProviderListing {
  readonly predictions: readonly Prediction[];
  /** The cap was reached before the window was listed to its end. */
  readonly truncated: boolean;
}

/** The provider's predictions created in [since, until], at most `cap` of them. */
export async function listWindow(
  provider: ImageModelProvider,
  since: Date,
  until: Date,
  cap: number,
  signal: AbortSignal | undefined,
): Promise<ProviderListing> {
  const list = provider.listCreatedBetween;
  if (list === undefined) return { predictions: [], truncated: false };
  const predictions: Prediction[] = [];
  for await (const prediction of list.call(provider, since, until, signal)) {
    if (predictions.length >= cap) return { predictions, truncated: true };
    predictions.push(prediction);
  }
  return { predictions, truncated: false };
}

/** The owning job of each of `predictionIds` that one claimed (`src/queue/prediction-claims.ts`), bounded in flight. */
export async function claimsOf(
  redis: Redis,
  prefix: string,
  predictionIds: readonly string[],
  concurrency: number,
): Promise<Map<string, string>> {
  const claims = new RedisPredictionClaims(redis, queueKeyPrefixOf(prefix));
  const owners = new Map<string, string>();
  const limit = pLimit(concurrency);
  await Promise.all(
    predictionIds.map((id) =>
      limit(async () => {
        const owner = await claims.ownerOf(id);
        if (owner !== undefined) owners.set(id, owner);
      }),
    ),
  );
  return owners;
}
