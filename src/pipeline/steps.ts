/**
 * One function per named state of the render job (`core/render-state.ts`). Each reads the job's checkpoint, does its
 * one thing, and writes what it finished (fenced) before the next step: a step either moves the job on (returns
 * undefined), ends or parks it (returns a `JobResult`), or throws a failure the processor loop classifies.
 * See docs/render-job.md.
 */
import type { FinishedPrediction, StoredOutput } from '../core/checkpoint.js';
import { withCurrentPrediction, withoutCurrentPrediction } from '../core/checkpoint.js';
import { classifyFailure, FlaggedError, OutputExpiredError, TransientJobError } from '../core/errors.js';
import { inputFingerprint } from '../core/fingerprint.js';
import { imageTypeOfOutputFormat } from '../core/image-type.js';
import { outputKeyForImage, sidecarKeyOf } from '../core/keys.js';
import { outputFormatOf } from '../core/models.js';
import { costOf } from '../core/money.js';
import { redactUrl } from '../core/redact.js';
import type { RenderStep } from '../core/render-state.js';
import {
  imageCountOfPrediction,
  type Prediction,
  ProviderCallError,
  sightingOf,
  terminalStatuses,
} from '../providers/provider.js';
import { LockLostError } from '../queue/fenced-checkpoint.js';
import { finishCanceled } from './endings.js';
import { type JobResult, type RenderJobState, rowOf, type StepDeps } from './render-context.js';
import { outcomeOf, sidecarOf } from './sidecar.js';

export type Step = (deps: StepDeps, job: RenderJobState) => Promise<JobResult | undefined>;

export function finishedOf(prediction: Prediction, expectedImages: number): FinishedPrediction {
  return {
    id: prediction.id,
    createdAt: prediction.createdAt,
    startedAt: prediction.startedAt,
    completedAt: prediction.completedAt,
    outputUrls: [...prediction.outputUrls],
    imageCount: imageCountOfPrediction(prediction, expectedImages),
    predictTimeSeconds: prediction.predictTimeSeconds,
    loggedSeed: prediction.loggedSeed,
  };
}

function errorText(prediction: Prediction): string {
  return prediction.error ?? `prediction ${prediction.status}`;
}

function park(deps: StepDeps, job: RenderJobState, reason: 'paused' | 'budget'): Promise<JobResult> {
  return deps.ledger
    .recordResult(job.payload.run, job.jobId, rowOf(job, 'parked', { reason }))
    .then(() => ({ kind: 'parked', untilMs: deps.now() + deps.settings.parkDelayMs }));
}

/**
 * A paused run starts nothing new; a canceled one spends nothing more. A finished prediction is paid for already: it
 * is stored and recorded whatever the run's state.
 */
const gate: Step = async (deps, job) => {
  const { checkpoint } = job;
  if (checkpoint.finished === undefined) {
    const runState = await deps.ledger.runState(job.payload.run);
    if (runState === 'canceled') {
      const id = checkpoint.predictionId;
      // A cancel that fails is not swallowed: the job retries it (inside the job while it holds the prediction) rather
      // than end while the prediction may still succeed, be billed and never be stored.
      const answer = id === undefined ? undefined : await deps.provider.cancel(id, job.signal);
      if (answer?.status !== 'succeeded') {
        return finishCanceled(deps, job, answer === undefined ? undefined : sightingOf(answer));
      }
      // It succeeded before the cancel reached it: paid for, so it is stored and recorded.
      await keepSucceeded(job, answer);
    } else if (runState === 'paused' && checkpoint.predictionId === undefined && checkpoint.creating === undefined) {
      job.log.info('run paused: parking');
      return park(deps, job, 'paused');
    }
  }
  job.progress = { ...job.progress, gated: true };
  return undefined;
};

/** Idempotent per job: a resumed job finds its reservation (or its settlement) again. */
const reserve: Step = async (deps, job) => {
  const reserved = await deps.ledger.reserve(job.payload.run, job.jobId, job.reservation);
  if (!reserved.ok && reserved.reason === 'budget') {
    job.log.info({ reservation: job.reservation, money: reserved.state }, 'over budget: parking');
    return park(deps, job, 'budget');
  }
  job.attemptStartedAt = new Date(deps.now()).toISOString();
  await deps.ledger.recordResult(job.payload.run, job.jobId, rowOf(job, 'running'));
  job.progress = { ...job.progress, reserved: true };
  return undefined;
};

/**
 * A create was sent (or was about to be) by an attempt that never saw its answer: find it before paying again. The
 * lookup covers [first send − skew, end of the last send + skew]. While a send may still be in flight (its worker died
 * mid-send, or lost its lock during a network flap: up to the latest send + the longest send), finding nothing proves
 * nothing, so the job waits, without spending an attempt, and looks again. After, nothing found means the create most
 * likely never arrived: the job creates anew, marked `orphanSuspected` so the invoice can be checked.
 */
const adopt: Step = async (deps, job) => {
  const creating = job.checkpoint.creating;
  job.progress = { ...job.progress, lookedForLostCreate: true };
  if (creating === undefined) return undefined;
  const { providerRetentionMs, clockSkewMs, longestCreateSendMs } = deps.settings;
  const sentAt = Date.parse(creating.sentAt);
  if (deps.now() - sentAt >= providerRetentionMs - clockSkewMs) {
    job.log.warn({ sentAt: creating.sentAt }, 'saved input is past the provider retention: orphan suspected');
    await job.save({ ...job.checkpoint, orphanSuspected: true });
    return undefined;
  }
  // Until this instant (this machine's clock) the POST may still reach the provider; its created_at is then at most
  // this + the clock skew (the provider's clock).
  const inFlightUntil =
    creating.sendsEndedAt === undefined
      ? Date.parse(creating.lastSentAt ?? creating.sentAt) + longestCreateSendMs
      : Date.parse(creating.sendsEndedAt);
  // A provider that cannot be asked (no list endpoint) finds nothing: the job waits out the window all the same, then
  // creates anew, since nothing can prove the create never arrived.
  const found = await deps.provider.findByFingerprint?.(
    job.model.id,
    creating.fingerprint,
    new Date(sentAt - clockSkewMs),
    job.signal,
    new Date(inFlightUntil + clockSkewMs),
    mayAdoptFor(deps, job),
  );
  if (found !== undefined) {
    await claimOrStop(deps, job, found);
    job.log.info({ predictionId: found.id }, 'adopted the prediction a previous attempt created');
    await job.save(withCurrentPrediction(job.checkpoint, found.id, found.createdAt));
    job.pending = found;
    job.sighting = sightingOf(found);
    return undefined;
  }
  if (deps.now() < inFlightUntil) {
    job.log.info({ sentAt: creating.sentAt, untilMs: inFlightUntil }, 'a lost create may still be in flight: waiting');
    return { kind: 'parked', untilMs: inFlightUntil };
  }
  job.log.warn(
    { sentAt: creating.sentAt },
    deps.provider.findByFingerprint === undefined
      ? `a lost create cannot be looked up on ${deps.provider.identity.name}: creating anew, orphan suspected`
      : 'a lost create was not found: creating anew, orphan suspected',
  );
  await job.save({ ...job.checkpoint, orphanSuspected: true });
  return undefined;
};

/** A prediction found by input may be adopted only when no other job owns it (two jobs can send the same input). */
function mayAdoptFor(deps: StepDeps, job: RenderJobState): (prediction: Prediction) => Promise<boolean> {
  return async (prediction) => {
    const owner = await deps.claims.ownerOf(prediction.id);
    return owner === undefined || owner === job.jobId;
  };
}

/** Records the job as the prediction's owner; another job that claimed it first keeps it, and this attempt stops. */
async function claimOrStop(deps: StepDeps, job: RenderJobState, prediction: Prediction): Promise<void> {
  if (await deps.claims.claim(prediction.id, job.jobId)) return;
  throw new TransientJobError(`prediction ${prediction.id} was claimed by another job with the same input`);
}

/** The one create this job pays for. The fence: only the worker that still owns the job gets past the `creating` write. */
const create: Step = async (deps, job) => {
  const { payload, model, signal } = job;
  const { cancelAfterMs, presignMarginMs, createWaitSeconds } = deps.settings;
  const control = job.checkpoint.control ?? (await deps.store.controlImageFacts(payload.controlImage, signal));
  const url = await deps.store.presignControlImage(payload.controlImage, (cancelAfterMs + presignMarginMs) / 1000);
  const input = { ...payload.input, [model.imageInputs[0] ?? 'control_image']: url };
  const sentAt = new Date(deps.now()).toISOString();
  await job.save({ ...job.checkpoint, control, creating: { fingerprint: inputFingerprint(input), sentAt } });
  // Lose this mark after the create went out (a Redis crash, a failover) and the next life pays again: it must be
  // durable before anything is sent.
  try {
    await deps.confirmDurable?.();
  } catch (error) {
    const { creating: _notSent, ...rest } = job.checkpoint;
    await job.save(rest);
    throw error;
  }
  let created: Awaited<ReturnType<StepDeps['provider']['create']>>;
  try {
    created = await deps.provider.create({
      model: model.id,
      input,
      waitSeconds: createWaitSeconds,
      cancelAfterMs,
      ...(signal ? { signal } : {}),
      mayAdopt: mayAdoptFor(deps, job),
      // The fence, again, before every re-send: a worker that lost the job since the first send sends nothing more.
      beforeResend: async () => {
        const sent = job.checkpoint.creating;
        if (sent === undefined) throw new TransientJobError('the create mark is gone: not sending again');
        await job.save({ ...job.checkpoint, creating: { ...sent, lastSentAt: new Date(deps.now()).toISOString() } });
      },
    });
  } catch (error) {
    const sent = job.checkpoint.creating;
    if (error instanceof ProviderCallError && error.nothingCreated) {
      // The provider's answer says nothing was created (a 4xx): the next attempt need not look for it.
      const { creating: _refused, ...rest } = job.checkpoint;
      await job.save(rest);
    } else if (!(error instanceof LockLostError) && sent !== undefined) {
      // Every send has ended here (timed out, reset, aborted): from now on, a lookup that finds nothing is conclusive.
      await job.save({ ...job.checkpoint, creating: { ...sent, sendsEndedAt: new Date(deps.now()).toISOString() } });
    }
    throw error;
  }
  const prediction = created.prediction;
  if (created.adopted) job.log.info({ predictionId: prediction.id }, 'create answer lost: adopted by input');
  await claimOrStop(deps, job, prediction);
  await job.save(withCurrentPrediction(job.checkpoint, prediction.id, prediction.createdAt));
  job.pending = prediction;
  job.sighting = sightingOf(prediction);
  return undefined;
};

async function keepSucceeded(job: RenderJobState, done: Prediction): Promise<void> {
  const finished = finishedOf(done, job.expectedImages);
  if (finished.outputUrls.length === 0) {
    throw new OutputExpiredError(
      done.dataRemoved
        ? `prediction ${done.id} succeeded but its output was removed before depthq stored it`
        : `prediction ${done.id} succeeded without an output`,
    );
  }
  await job.save({ ...job.checkpoint, finished });
}

/**
 * Created → terminal, by the provider's own timestamps, so a prediction adopted by a later attempt is timed from its
 * real creation. Seen once per attempt that waits for it: a worker killed between this and the next checkpoint counts
 * it again on resume (telemetry, not money).
 */
function observeLatency(deps: StepDeps, job: RenderJobState, done: Prediction): void {
  if (deps.telemetry === undefined || done.completedAt === null) return;
  const seconds = (Date.parse(done.completedAt) - Date.parse(done.createdAt)) / 1000;
  if (Number.isFinite(seconds)) deps.telemetry.predictionEnded({ model: job.model.id, status: done.status, seconds });
}

/** Waits for the current prediction to end, then keeps it (succeeded), ends the job, or forgets it for a new one. */
const awaitEnd: Step = async (deps, job) => {
  const id = job.checkpoint.predictionId;
  if (id === undefined) throw new TransientJobError('no prediction to wait for');
  const seen = job.pending?.id === id ? job.pending : undefined;
  job.pending = undefined;
  let current = seen ?? (await deps.provider.get(id, job.signal));
  job.sighting = sightingOf(current);
  // The run was canceled while this job was creating its prediction: `depthq cancel` could not know its id yet.
  if (!terminalStatuses.has(current.status) && (await deps.ledger.runState(job.payload.run)) === 'canceled') {
    current = await deps.provider.cancel(id, job.signal);
  }
  const done = await deps.provider.awaitTerminal(current, job.signal ? { signal: job.signal } : {});
  observeLatency(deps, job, done);
  const failure =
    done.status === 'succeeded'
      ? undefined
      : classifyFailure({ predictionStatus: done.status, predictionError: errorText(done) });
  job.sighting = sightingOf(done, failure?.kind === 'flagged');
  if (failure === undefined) {
    await keepSucceeded(job, done);
    return undefined;
  }
  // The content filter refuses the same input every time: the job ends, keeping the prediction (it may be billed).
  if (failure.kind === 'flagged') throw new FlaggedError(errorText(done));
  if (
    (done.status === 'canceled' || done.status === 'aborted') &&
    (await deps.ledger.runState(job.payload.run)) === 'canceled'
  ) {
    return finishCanceled(deps, job, job.sighting);
  }
  // Any other end calls for a new prediction: forget this one (it stays in predictionIds for the invoice). It was not
  // billed (a failed or never-started prediction), so from here the job's money stands where a job without one does.
  await job.save(withoutCurrentPrediction(job.checkpoint));
  job.sighting = undefined;
  throw new TransientJobError(`prediction ${done.id} ended ${done.status}: ${failure.reason}`);
};

/** Copies the outputs to S3, then their sidecars. A 404 inside the provider's retention is a blip, not an expiry. */
const store: Step = async (deps, job) => {
  const { payload, checkpoint } = job;
  const finished = checkpoint.finished;
  if (finished === undefined) throw new TransientJobError('nothing to store');
  const imageType = imageTypeOfOutputFormat(outputFormatOf(job.model, payload.input));
  const stored: StoredOutput[] = [];
  for (const [index, url] of finished.outputUrls.entries()) {
    const key = outputKeyForImage(payload.output.key, index, finished.outputUrls.length);
    let object: Awaited<ReturnType<StepDeps['store']['copyOutput']>>;
    try {
      object = await deps.store.copyOutput({
        url,
        target: { bucket: payload.output.bucket, key },
        imageType,
        metadata: { seed: String(payload.input.seed), 'prediction-id': finished.id, 'depthq-run': payload.run },
        ...(job.signal ? { signal: job.signal } : {}),
      });
    } catch (error) {
      const createdMs = Date.parse(finished.createdAt);
      if (error instanceof OutputExpiredError && deps.now() < createdMs + deps.settings.providerRetentionMs) {
        throw new TransientJobError(`${error.message}, inside the provider's retention: retrying`, { cause: error });
      }
      throw error;
    }
    stored.push({
      key,
      sha256: object.sha256,
      size: object.size,
      contentType: object.contentType,
      ...(object.etag ? { etag: object.etag } : {}),
      source: redactUrl(url),
    });
  }
  const costMicros = costOf(payload.priceMicrosPerImage, finished.imageCount);
  const storedAtMs = deps.now();
  for (const output of stored) {
    const sidecar = sidecarOf({
      payload,
      jobId: job.jobId,
      checkpoint,
      finished,
      output,
      outputs: stored,
      costMicros,
      attempt: job.attempt,
      storedAtMs,
    });
    await deps.store.putSidecar({ bucket: payload.output.bucket, key: sidecarKeyOf(output.key) }, sidecar, job.signal);
  }
  await job.save({ ...checkpoint, stored });
  return undefined;
};

/** Settles the money (spent = images × price) and writes the `succeeded` row. */
const record: Step = async (deps, job) => {
  const { payload, checkpoint } = job;
  const finished = checkpoint.finished;
  if (finished === undefined) throw new TransientJobError('nothing to record');
  const costMicros = costOf(payload.priceMicrosPerImage, finished.imageCount);
  await deps.ledger.settle(payload.run, job.jobId, { spent: costMicros, possiblyBilled: 0 });
  await deps.ledger.recordResult(
    payload.run,
    job.jobId,
    rowOf(job, 'succeeded', {
      predictionId: finished.id,
      costMicros,
      ...(checkpoint.stored?.[0] ? { outputKey: checkpoint.stored[0].key } : {}),
      finishedAt: new Date(deps.now()).toISOString(),
    }),
  );
  await job.save({ ...checkpoint, recorded: true });
  deps.telemetry?.imagesStored(job.model.id, checkpoint.stored?.length ?? finished.imageCount);
  job.log.info({ predictionId: finished.id, costMicros }, 'stored and recorded');
  return undefined;
};

const done: Step = async (_deps, job) => ({ kind: 'succeeded', outcome: outcomeOf(job.payload, job.checkpoint) });

export const steps: Readonly<Record<RenderStep, Step>> = {
  gate,
  reserve,
  adopt,
  create,
  await: awaitEnd,
  store,
  record,
  done,
};
