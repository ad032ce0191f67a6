/**
 * The render processor: one queued job becomes one stored, paid-once, recorded output, whatever crashes on the way.
 *
 * A checkpointed state machine — validate → reserve → create → await → store → record. Each step reads the checkpoint
 * first and skips what is done; each step's result is written (fenced: only while this worker still holds the job's
 * lock) before the next step starts. The create is sent only after a fenced write of "creating, with this exact input"
 * succeeded, so of two workers that both believe they own a job, only one can ever pay.
 */
import { hostname } from 'node:os';
import type { S3Client } from '@aws-sdk/client-s3';
import { DelayedError, RateLimitError, UnrecoverableError, WaitingError } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import {
  type Checkpoint,
  type ControlImageFacts,
  type FinishedPrediction,
  readCheckpoint,
  type StoredOutput,
} from '../core/checkpoint.js';
import {
  classifyFailure,
  coerceError,
  type FailureClass,
  FatalJobError,
  FlaggedError,
  OutputExpiredError,
  TransientJobError,
} from '../core/errors.js';
import { inputFingerprint } from '../core/fingerprint.js';
import { imageTypeOfOutputFormat } from '../core/image-type.js';
import { outputKeyForImage, sidecarKeyOf } from '../core/keys.js';
import { findModel, imageCountOf, type ModelDefinition, outputFormatOf, outputUrlsOf } from '../core/models.js';
import { costOf, microsToDecimal } from '../core/money.js';
import { redactUrl } from '../core/redact.js';
import { parseRenderJob, type RenderJob, reservationOfJob } from '../core/render-job.js';
import { type ResultRow, type ResultStatus, type RunLedger, RunNotFoundError } from '../ledger/run-ledger.js';
import { ProviderHttpError, ProviderNetworkError } from '../providers/http-errors.js';
import { type ImageModelProvider, type Prediction, terminalStatuses } from '../providers/provider.js';
import { LockLostError, writeCheckpointFenced } from '../queue/fenced-checkpoint.js';
import type { RenderQueueJob } from '../queue/render-queue.js';
import {
  copyUrlToObject,
  inspectImageObject,
  ObjectMissingError,
  type ObjectRef,
  presignGetUrl,
  putJsonObject,
  sha256OfObject,
} from '../storage/s3.js';

export interface PipelineSettings {
  /** Seconds the create call holds for the prediction to finish (`Prefer: wait`); most need no poll at all. */
  readonly createWaitSeconds: number;
  /** The prediction is aborted (not started) or canceled (running) by Replicate after this: the bound on a lost one. */
  readonly cancelAfterMs: number;
  /** The presigned control-image URL outlives the prediction's wait in Replicate's queue by this much. */
  readonly presignMarginMs: number;
  /** Replicate deletes inputs and outputs this long after creation: reconciliation is only possible inside it. */
  readonly providerRetentionMs: number;
  /**
   * A parked (over-budget) job looks again after this on its own. A budget change releases parked jobs at once
   * (`releaseParkedJobs`), so this is only a fallback — long, because every wake-up takes a slot of the creates-per-minute
   * limiter from the runs that can spend.
   */
  readonly parkDelayMs: number;
  /** Clock skew allowed between this machine and the provider when listing predictions by creation time. */
  readonly clockSkewMs: number;
}

export const defaultPipelineSettings: PipelineSettings = {
  createWaitSeconds: 60,
  cancelAfterMs: 15 * 60_000,
  presignMarginMs: 5 * 60_000,
  providerRetentionMs: 60 * 60_000,
  parkDelayMs: 10 * 60_000,
  clockSkewMs: 60_000,
};

export interface RenderPipelineDeps {
  readonly provider: ImageModelProvider;
  readonly s3: S3Client;
  readonly ledger: RunLedger;
  /** The worker's connection: fenced checkpoint writes and the control-image digest cache. */
  readonly redis: Redis;
  /** `<prefix>:<queue>`, where BullMQ keeps the job hashes and locks. */
  readonly queueKeyPrefix: string;
  /** The whole queue waits this long (BullMQ's queue-wide rate limit): how a 429 is honoured by every worker. */
  readonly rateLimit: (ms: number) => Promise<void>;
  readonly logger: Logger;
  readonly settings?: Partial<PipelineSettings>;
  readonly now?: () => number;
  /** Downloads provider outputs. */
  readonly fetch?: typeof fetch;
}

/** The small return value BullMQ keeps; the ledger and the sidecar hold the rest. */
export interface RenderOutcome {
  readonly status: 'succeeded';
  readonly outputKeys: readonly string[];
  readonly predictionId: string;
  readonly costMicros: number;
  readonly seed: number;
}

export type RenderProcessor = (job: RenderQueueJob, token?: string, signal?: AbortSignal) => Promise<RenderOutcome>;

const E005 = /\(E005\)|flagged as sensitive/i;

function loggedSeedOf(logs: string | null | undefined): number | null {
  const match = /Using seed: (\d+)/.exec(logs ?? '');
  return match ? Number(match[1]) : null;
}

function finishedOf(prediction: Prediction, expectedImages: number): FinishedPrediction {
  const outputUrls = outputUrlsOf(prediction.output);
  return {
    id: prediction.id,
    createdAt: prediction.created_at,
    startedAt: prediction.started_at ?? null,
    completedAt: prediction.completed_at ?? null,
    outputUrls,
    imageCount: prediction.metrics?.image_count ?? (outputUrls.length > 0 ? outputUrls.length : expectedImages),
    predictTimeSeconds: prediction.metrics?.predict_time ?? null,
    loggedSeed: loggedSeedOf(prediction.logs),
  };
}

function errorText(prediction: Prediction): string {
  const error = prediction.error;
  if (typeof error === 'string') return error;
  if (error === null || error === undefined) return `prediction ${prediction.status}`;
  return JSON.stringify(error);
}

/** Why the processor stopped without finishing, in a form that decides what happens to the job. */
type Stop =
  | { readonly kind: 'fatal'; readonly status: 'failed' | 'flagged'; readonly reason: string; readonly message: string }
  | { readonly kind: 'transient'; readonly message: string }
  | { readonly kind: 'throttled'; readonly retryAfterMs: number; readonly message: string };

function stopOfFailure(failure: FailureClass, message: string): Stop {
  switch (failure.kind) {
    case 'fatal':
      return { kind: 'fatal', status: 'failed', reason: 'fatal', message };
    case 'flagged':
      return { kind: 'fatal', status: 'flagged', reason: 'flagged', message };
    case 'throttled':
      return { kind: 'throttled', retryAfterMs: failure.retryAfterMs, message };
    case 'transient':
      return { kind: 'transient', message };
  }
}

function stopOf(error: Error): Stop {
  if (error instanceof ProviderHttpError) {
    return stopOfFailure(
      classifyFailure({ httpStatus: error.status, body: error.body, retryAfterHeader: error.retryAfterHeader }),
      error.message,
    );
  }
  if (error instanceof ProviderNetworkError) {
    return stopOfFailure(classifyFailure({ networkErrorCode: error.code }), error.message);
  }
  if (error instanceof FlaggedError)
    return { kind: 'fatal', status: 'flagged', reason: 'flagged', message: error.message };
  if (error instanceof OutputExpiredError) {
    return { kind: 'fatal', status: 'failed', reason: 'output-expired', message: error.message };
  }
  if (error instanceof FatalJobError)
    return { kind: 'fatal', status: 'failed', reason: 'fatal', message: error.message };
  return { kind: 'transient', message: error.message };
}

/** Errors BullMQ uses for control flow: they pass through untouched. */
function isControlFlow(error: unknown): boolean {
  return error instanceof DelayedError || error instanceof RateLimitError || error instanceof WaitingError;
}

export function createRenderProcessor(deps: RenderPipelineDeps): RenderProcessor {
  const settings: PipelineSettings = { ...defaultPipelineSettings, ...deps.settings };
  const now = deps.now ?? Date.now;
  const controlDigestKey = `${deps.queueKeyPrefix}:control-sha256`;

  async function controlImageFacts(ref: ObjectRef): Promise<ControlImageFacts> {
    let info: Awaited<ReturnType<typeof inspectImageObject>>;
    try {
      info = await inspectImageObject(deps.s3, ref);
    } catch (error) {
      if (error instanceof ObjectMissingError) {
        throw new FatalJobError(`control image ${error.message}: upload it or fix the manifest row`, { cause: error });
      }
      throw error;
    }
    if (info.size === 0) throw new FatalJobError(`control image s3://${ref.bucket}/${ref.key} is empty`);
    if (info.imageType === undefined) {
      throw new FatalJobError(`control image s3://${ref.bucket}/${ref.key} is not a jpeg, png, gif or webp image`);
    }
    // An ETag names one version of an object: its sha256 is computed once per version, not once per job.
    const field = `${ref.bucket}/${ref.key}@${info.etag ?? info.size}`;
    const cached = await deps.redis.hget(controlDigestKey, field);
    if (cached !== null) return { ...(info.etag ? { etag: info.etag } : {}), sha256: cached, size: info.size };
    const { sha256, size } = await sha256OfObject(deps.s3, ref);
    await deps.redis.hset(controlDigestKey, field, sha256);
    return { ...(info.etag ? { etag: info.etag } : {}), sha256, size };
  }

  return async function processRenderJob(job, token, signal) {
    if (job.id === undefined || token === undefined) throw new UnrecoverableError('render jobs need an id and a lock');
    const jobId: string = job.id;
    let payload: RenderJob;
    try {
      payload = parseRenderJob(job.data);
    } catch (error) {
      throw new UnrecoverableError(coerceError(error).message);
    }
    const registered = findModel(payload.model);
    if (registered === undefined) throw new UnrecoverableError(`unknown model ${payload.model}`);
    const model: ModelDefinition = registered;
    const rawData = job.data as Record<string, unknown>;
    let checkpoint: Checkpoint = readCheckpoint(rawData.checkpoint);
    const attempt = job.attemptsMade + 1;
    const log = deps.logger.child({ run: payload.run, row: payload.rowId, style: payload.style, jobId, attempt });
    const expectedImages = imageCountOf(model, payload.input);
    const reservation = reservationOfJob(payload);

    const save = async (next: Checkpoint): Promise<void> => {
      const data = { ...rawData, checkpoint: next };
      const outcome = await writeCheckpointFenced(deps.redis, {
        queueKeyPrefix: deps.queueKeyPrefix,
        jobId,
        token,
        data,
      });
      if (outcome === 'lock-lost') throw new LockLostError(jobId);
      checkpoint = next;
      job.data = data as typeof job.data;
    };

    /** When this attempt got past its reservation; every later row of the attempt carries it, so reports have timings. */
    let attemptStartedAt: string | undefined;
    const row = (status: ResultStatus, extra: Partial<ResultRow> = {}): ResultRow => ({
      status,
      rowId: payload.rowId,
      style: payload.style,
      outputKey: payload.output.key,
      seed: Number(payload.input.seed),
      ...(checkpoint.predictionIds.length > 0
        ? { predictionId: checkpoint.predictionIds.at(-1), predictionIds: checkpoint.predictionIds }
        : {}),
      attempts: attempt,
      ...(checkpoint.orphanSuspected ? { orphanSuspected: true } : {}),
      ...(Object.keys(payload.metadata).length > 0 ? { metadata: payload.metadata } : {}),
      ...(typeof payload.input.prompt === 'string' ? { prompt: payload.input.prompt } : {}),
      ...(attemptStartedAt === undefined ? {} : { startedAt: attemptStartedAt }),
      ...extra,
    });

    const isLastAttempt = () => attempt >= (job.opts.attempts ?? 1);

    try {
      if (checkpoint.recorded) return outcomeOf(payload, checkpoint);

      // A paused run starts nothing new; a canceled one spends nothing more. A finished prediction is paid for
      // already: it is stored and recorded whatever the run's state.
      if (checkpoint.finished === undefined) {
        const runState = await deps.ledger.runState(payload.run);
        if (runState === 'canceled') {
          const running = checkpoint.predictionId
            ? await deps.provider.cancel(checkpoint.predictionId, signal).catch(() => undefined)
            : undefined;
          // A prediction that succeeded before the cancel reached it is paid for: it is stored and recorded below.
          if (running?.status !== 'succeeded') {
            await finishCanceled(running);
            throw new UnrecoverableError(`run ${payload.run} was canceled`);
          }
        }
        if (runState === 'paused' && checkpoint.predictionId === undefined && checkpoint.creating === undefined) {
          log.info('run paused: parking');
          await deps.ledger.recordResult(payload.run, jobId, row('parked', { reason: 'paused' }));
          await job.moveToDelayed(now() + settings.parkDelayMs, token);
          throw new DelayedError();
        }
      }

      // reserve: idempotent per job, so a resumed job finds its reservation (or its settlement) again.
      const reserved = await deps.ledger.reserve(payload.run, jobId, reservation);
      if (!reserved.ok && reserved.reason === 'budget') {
        log.info({ reservation, money: reserved.state }, 'over budget: parking');
        await deps.ledger.recordResult(payload.run, jobId, row('parked', { reason: 'budget' }));
        await job.moveToDelayed(now() + settings.parkDelayMs, token);
        throw new DelayedError();
      }
      attemptStartedAt = new Date(now()).toISOString();
      await deps.ledger.recordResult(payload.run, jobId, row('running'));

      // create (or find again the prediction a crashed attempt created)
      let prediction: Prediction | undefined;
      if (checkpoint.predictionId === undefined && checkpoint.finished === undefined) {
        prediction = await createOrAdopt();
      }

      // await
      if (checkpoint.finished === undefined) {
        const id = prediction?.id ?? checkpoint.predictionId;
        if (id === undefined) throw new TransientJobError('no prediction to wait for');
        let current = prediction ?? (await deps.provider.get(id, signal));
        // The run was canceled while this job was creating its prediction: `depthq cancel` could not know its id yet.
        if (!terminalStatuses.has(current.status) && (await deps.ledger.runState(payload.run)) === 'canceled') {
          current = await deps.provider.cancel(id, signal);
        }
        const done = await deps.provider.awaitTerminal(current, signal ? { signal } : {});
        await handleEnd(done);
      }

      // store
      if (checkpoint.stored === undefined) await store();

      // record
      return await record();
    } catch (thrown) {
      if (thrown instanceof LockLostError) {
        // Nothing else would say why this attempt stopped: BullMQ only reports that its final move was refused.
        log.warn('lost the job to another worker (its lock expired): stopped without side effects');
        throw thrown;
      }
      // Control flow, or an end this attempt already recorded (UnrecoverableError): passed on untouched.
      if (isControlFlow(thrown) || thrown instanceof UnrecoverableError) throw thrown;
      if (signal?.aborted) {
        // The worker is closing: the job goes back to waiting with its checkpoint, no attempt spent.
        log.info('worker closing: job returns to waiting');
        await deps.ledger.recordResult(payload.run, jobId, row('queued'));
        await job.moveToWait(token);
        throw new WaitingError();
      }
      const error = coerceError(thrown);
      if (error instanceof RunNotFoundError) {
        // Without its run there is no budget to spend against and no ledger to record in: nothing to retry for.
        throw new UnrecoverableError(error.message);
      }
      const stop = stopOf(error);
      switch (stop.kind) {
        case 'throttled':
          log.warn({ retryAfterMs: stop.retryAfterMs }, 'provider throttled: the whole queue waits');
          await deps.rateLimit(stop.retryAfterMs);
          throw new RateLimitError();
        case 'fatal':
          await finishUnsuccessfully(stop.status, stop.reason, stop.message);
          throw new UnrecoverableError(stop.message);
        case 'transient':
          if (isLastAttempt()) {
            await finishUnsuccessfully('failed', 'attempts-exhausted', stop.message);
          } else {
            log.warn({ err: error.message }, 'transient failure: will retry');
          }
          throw error;
      }
    }

    async function createOrAdopt(): Promise<Prediction> {
      if (checkpoint.creating) {
        // A create was sent (or was about to be) by an attempt that never saw its answer.
        const sentAt = Date.parse(checkpoint.creating.sentAt);
        if (now() - sentAt < settings.providerRetentionMs - settings.clockSkewMs) {
          const found = await deps.provider.findByFingerprint(
            model.id,
            checkpoint.creating.fingerprint,
            new Date(sentAt - settings.clockSkewMs),
            signal,
          );
          if (found) {
            log.info({ predictionId: found.id }, 'adopted the prediction a previous attempt created');
            await save({
              ...checkpoint,
              predictionId: found.id,
              predictionIds: [...checkpoint.predictionIds, found.id],
            });
            return found;
          }
        } else {
          log.warn(
            { sentAt: checkpoint.creating.sentAt },
            'saved input is past the provider retention: orphan suspected',
          );
          await save({ ...checkpoint, orphanSuspected: true });
        }
      }
      const control = checkpoint.control ?? (await controlImageFacts(payload.controlImage));
      const expiresInSeconds = (settings.cancelAfterMs + settings.presignMarginMs) / 1000;
      const url = await presignGetUrl(deps.s3, payload.controlImage, expiresInSeconds);
      const input = { ...payload.input, [model.imageInputs[0] ?? 'control_image']: url };
      const sentAt = new Date(now()).toISOString();
      // The fence: only the worker that still owns the job gets past this line to pay for a prediction.
      await save({ ...checkpoint, control, creating: { fingerprint: inputFingerprint(input), sentAt } });
      let created: Awaited<ReturnType<ImageModelProvider['create']>>;
      try {
        created = await deps.provider.create({
          model: model.id,
          input,
          waitSeconds: settings.createWaitSeconds,
          cancelAfterMs: settings.cancelAfterMs,
          ...(signal ? { signal } : {}),
        });
      } catch (error) {
        // A 4xx answer (422, 429, …) means nothing was created: the next attempt need not look for it.
        if (error instanceof ProviderHttpError && error.status < 500) {
          const { creating: _refused, ...rest } = checkpoint;
          await save({ ...rest });
        }
        throw error;
      }
      if (created.adopted) log.info({ predictionId: created.prediction.id }, 'create answer lost: adopted by input');
      await save({
        ...checkpoint,
        predictionId: created.prediction.id,
        predictionIds: [...checkpoint.predictionIds, created.prediction.id],
      });
      return created.prediction;
    }

    async function handleEnd(done: Prediction): Promise<void> {
      if (done.status === 'succeeded') {
        const finished = finishedOf(done, expectedImages);
        if (finished.outputUrls.length === 0) {
          throw new OutputExpiredError(
            done.data_removed
              ? `prediction ${done.id} succeeded but its output was removed before depthq stored it`
              : `prediction ${done.id} succeeded without an output`,
          );
        }
        await save({ ...checkpoint, finished });
        return;
      }
      const text = errorText(done);
      if (done.status === 'failed' && E005.test(text)) {
        throw new FlaggedError(text);
      }
      if (
        (done.status === 'canceled' || done.status === 'aborted') &&
        (await deps.ledger.runState(payload.run)) === 'canceled'
      ) {
        await finishCanceled(done);
        throw new UnrecoverableError(`run ${payload.run} was canceled`);
      }
      // Any other end calls for a new prediction: forget this one (it stays in predictionIds for the invoice).
      const { predictionId: _dropped, creating: _sent, ...rest } = checkpoint;
      await save({ ...rest, predictionIds: checkpoint.predictionIds });
      throw new TransientJobError(`prediction ${done.id} ended ${done.status}: ${text}`);
    }

    async function store(): Promise<void> {
      const finished = checkpoint.finished;
      if (finished === undefined) throw new TransientJobError('nothing to store');
      const format = outputFormatOf(model, payload.input);
      const imageType = imageTypeOfOutputFormat(format);
      const stored: StoredOutput[] = [];
      for (const [index, url] of finished.outputUrls.entries()) {
        const key = outputKeyForImage(payload.output.key, index, finished.outputUrls.length);
        const object = await copyUrlToObject(deps.s3, {
          url,
          target: { bucket: payload.output.bucket, key },
          imageType,
          metadata: { seed: String(payload.input.seed), 'prediction-id': finished.id, 'depthq-run': payload.run },
          ...(signal ? { signal } : {}),
          ...(deps.fetch ? { fetch: deps.fetch } : {}),
        });
        stored.push({
          key,
          sha256: object.sha256,
          size: object.size,
          contentType: object.contentType,
          ...(object.etag ? { etag: object.etag } : {}),
          source: redactUrl(url),
        });
      }
      const cost = costOf(payload.priceMicrosPerImage, finished.imageCount);
      for (const output of stored) {
        await putJsonObject(
          deps.s3,
          { bucket: payload.output.bucket, key: sidecarKeyOf(output.key) },
          sidecarOf(payload, jobId, checkpoint, finished, output, stored, cost, attempt, now()),
        );
      }
      await save({ ...checkpoint, stored });
    }

    async function record(): Promise<RenderOutcome> {
      const finished = checkpoint.finished;
      if (finished === undefined) throw new TransientJobError('nothing to record');
      const cost = costOf(payload.priceMicrosPerImage, finished.imageCount);
      await deps.ledger.settle(payload.run, jobId, { spent: cost, possiblyBilled: 0 });
      await deps.ledger.recordResult(
        payload.run,
        jobId,
        row('succeeded', {
          predictionId: finished.id,
          costMicros: cost,
          ...(checkpoint.stored?.[0] ? { outputKey: checkpoint.stored[0].key } : {}),
          finishedAt: new Date(now()).toISOString(),
        }),
      );
      await save({ ...checkpoint, recorded: true });
      log.info({ predictionId: finished.id, costMicros: cost }, 'stored and recorded');
      return outcomeOf(payload, checkpoint);
    }

    /**
     * Ends the job of a canceled run: a prediction that had started may be billed (Replicate charges a canceled running
     * prediction), so its reservation becomes `possiblyBilled`; otherwise the reservation is released.
     */
    async function finishCanceled(prediction: Prediction | undefined): Promise<void> {
      const started = prediction !== undefined && prediction.status !== 'aborted' && Boolean(prediction.started_at);
      if (started) await deps.ledger.settle(payload.run, jobId, { spent: 0, possiblyBilled: reservation });
      else await deps.ledger.release(payload.run, jobId);
      await deps.ledger.recordResult(
        payload.run,
        jobId,
        row('canceled', { reason: 'run-canceled', finishedAt: new Date(now()).toISOString() }),
      );
      log.info({ possiblyBilled: started }, 'run canceled: job ended');
    }

    /** Ends the job for good: its money settled or released, its row written. */
    async function finishUnsuccessfully(status: 'failed' | 'flagged', reason: string, message: string): Promise<void> {
      const run = payload.run;
      const id = jobId;
      if (status === 'flagged' || reason === 'output-expired') {
        // A flagged prediction may be billed (unconfirmed); an expired output certainly was. Kept apart from `spent`.
        const amount = checkpoint.finished
          ? costOf(payload.priceMicrosPerImage, checkpoint.finished.imageCount)
          : reservation;
        await deps.ledger.settle(
          run,
          id,
          reason === 'output-expired' ? { spent: amount, possiblyBilled: 0 } : { spent: 0, possiblyBilled: amount },
        );
      } else {
        await deps.ledger.release(run, id);
      }
      await deps.ledger.recordResult(
        run,
        id,
        row(status, { reason, error: message, finishedAt: new Date(now()).toISOString() }),
      );
      log.warn({ status, reason, err: message }, 'job ended unsuccessfully');
    }
  };
}

function outcomeOf(payload: RenderJob, checkpoint: Checkpoint): RenderOutcome {
  const finished = checkpoint.finished;
  return {
    status: 'succeeded',
    outputKeys: (checkpoint.stored ?? []).map((output) => output.key),
    predictionId: finished?.id ?? checkpoint.predictionIds.at(-1) ?? '',
    costMicros: finished ? costOf(payload.priceMicrosPerImage, finished.imageCount) : 0,
    seed: Number(payload.input.seed),
  };
}

/** The provenance that reproduces and accounts for one output image; stored beside it as `<key>.json`. */
function sidecarOf(
  payload: RenderJob,
  jobId: string,
  checkpoint: Checkpoint,
  finished: FinishedPrediction,
  output: StoredOutput,
  outputs: readonly StoredOutput[],
  costMicros: number,
  attempt: number,
  storedAtMs: number,
): Record<string, unknown> {
  return {
    depthq: { sidecarVersion: 1, jobId, run: payload.run, rowId: payload.rowId, style: payload.style, attempt },
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
    storedAt: new Date(storedAtMs).toISOString(),
    storedBy: { host: hostname(), pid: process.pid },
  };
}
