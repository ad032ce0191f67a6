/**
 * The prediction lifecycle: starting → processing → succeeded | failed | canceled | aborted, on timers drawn from the
 * configured latency ranges. Owns the deadlines (`Cancel-After`), the retention sweep, billing records, webhook events
 * and the waiters of `Prefer: wait` creates.
 */
import { imageCountOf, type ModelDefinition, type ModelInput } from '../core/models.js';
import { contentKeyOf } from './content-key.js';
import { type FaultInjector, flaggedErrorOf, genericFailureError } from './faults.js';
import { ImageInputError } from './image-input-fetch.js';
import { fetchImageInputs, renderOutputs } from './model-runner.js';
import type { LatencyRange } from './options.js';
import { type OutputFileStore, outputFileName } from './output-files.js';
import { type Cursor, type Page, pageOf } from './prediction-pages.js';
import { isTerminal, newPredictionId, type PredictionRecord, predictionJson } from './prediction-record.js';
import { type BillingLedger, type PredictionStatus, predictionStatuses } from './stats.js';
import type { TimerSet } from './timer-set.js';
import type { WebhookDispatcher, WebhookEventType } from './webhooks.js';

export interface PredictionEngineOptions {
  readonly startDelayMs: LatencyRange;
  readonly latencyMs: LatencyRange;
  readonly retentionMs: number;
  readonly maxControlImageBytes: number;
  readonly controlImageTimeoutMs: number;
  readonly outputMaxSide: number;
  /** See `outputMinBytes` in options.ts. */
  readonly outputMinBytes: number;
  /** Where clients reach this server; read at serialisation time because the port is known only after listen. */
  readonly publicUrl: () => string;
  readonly timers: TimerSet;
  readonly files: OutputFileStore;
  readonly webhooks: WebhookDispatcher;
  readonly faults: FaultInjector;
  readonly billing: BillingLedger;
}

export interface CreatePredictionRequest {
  readonly model: ModelDefinition;
  readonly input: Readonly<Record<string, unknown>>;
  readonly completeInput: ModelInput;
  readonly webhook?: string;
  readonly webhookEvents: ReadonlySet<WebhookEventType>;
  readonly cancelAfterMs?: number;
  readonly failByFault: boolean;
}

export interface ListFilter {
  readonly createdAfter?: number;
  readonly createdBefore?: number;
  readonly cursor?: Cursor;
}

const MAX_RANDOM_SEED = 2_147_483_647;

function draw(range: LatencyRange): number {
  return range.min + Math.floor(Math.random() * (range.max - range.min + 1));
}

function progressLine(done: number, total: number): string {
  const percent = Math.round((done / total) * 100);
  const filled = Math.round(percent / 10);
  return `${String(percent).padStart(3)}%|${'█'.repeat(filled)}${' '.repeat(10 - filled)}| ${done}/${total}\n`;
}

export class PredictionEngine {
  private readonly byId = new Map<string, PredictionRecord>();
  /** Creation order; predictions are never dropped (only their data is), as on Replicate. */
  private readonly ordered: PredictionRecord[] = [];
  private readonly statusCounts: Record<PredictionStatus, number>;
  private readonly cancelTimers = new Map<string, Array<() => void>>();
  private readonly waiters = new Map<string, Set<() => void>>();
  private readonly shutdown = new AbortController();
  private sequence = 0;
  private flaggedCount = 0;
  private canceledWhileRunningCount = 0;

  constructor(private readonly options: PredictionEngineOptions) {
    this.statusCounts = Object.fromEntries(predictionStatuses.map((status) => [status, 0])) as Record<
      PredictionStatus,
      number
    >;
  }

  create(request: CreatePredictionRequest): PredictionRecord {
    const createdAt = Date.now();
    const givenSeed = request.completeInput.seed;
    const prediction: PredictionRecord = {
      id: newPredictionId(),
      sequence: this.sequence++,
      model: request.model,
      input: request.input,
      completeInput: request.completeInput,
      seed: typeof givenSeed === 'number' ? givenSeed : Math.floor(Math.random() * (MAX_RANDOM_SEED + 1)),
      imageCount: imageCountOf(request.model, request.completeInput),
      status: 'starting',
      output: null,
      logs: '',
      error: null,
      createdAt,
      ...(request.cancelAfterMs === undefined ? {} : { deadlineAt: createdAt + request.cancelAfterMs }),
      dataRemoved: false,
      removeWhenDone: false,
      ...(request.webhook === undefined ? {} : { webhook: request.webhook }),
      webhookEvents: request.webhookEvents,
      failByFault: request.failByFault,
      canceledWhileRunning: false,
    };
    this.byId.set(prediction.id, prediction);
    this.ordered.push(prediction);
    this.statusCounts.starting += 1;

    this.schedule(prediction, draw(this.options.startDelayMs), () => this.start(prediction));
    if (request.cancelAfterMs !== undefined) {
      this.schedule(prediction, request.cancelAfterMs, () => this.deadlineReached(prediction));
    }
    // Retention outlives the prediction's own timers, so it is not cancelled when the prediction ends.
    this.options.timers.after(this.options.retentionMs, () => this.retentionReached(prediction));
    return prediction;
  }

  get(id: string): PredictionRecord | undefined {
    return this.byId.get(id);
  }

  list(filter: ListFilter): Page<PredictionRecord> {
    const matching = this.ordered.filter(
      (prediction) =>
        (filter.createdAfter === undefined || prediction.createdAt >= filter.createdAfter) &&
        (filter.createdBefore === undefined || prediction.createdAt < filter.createdBefore),
    );
    return pageOf(matching, filter.cursor);
  }

  /** starting/processing → canceled; a terminal prediction is returned as it is. */
  cancel(prediction: PredictionRecord): void {
    if (isTerminal(prediction.status)) return;
    this.endCanceled(prediction);
  }

  /** Resolves when the prediction ends, after `timeoutMs`, or when the engine closes — whichever comes first. */
  waitUntilDone(prediction: PredictionRecord, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (isTerminal(prediction.status) || this.shutdown.signal.aborted || signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      let waiters = this.waiters.get(prediction.id);
      if (!waiters) {
        waiters = new Set();
        this.waiters.set(prediction.id, waiters);
      }
      const done = (): void => {
        cancelTimer();
        signal?.removeEventListener('abort', done);
        waiters.delete(done);
        resolve();
      };
      const cancelTimer = this.options.timers.after(timeoutMs, done);
      signal?.addEventListener('abort', done, { once: true });
      waiters.add(done);
    });
  }

  json(prediction: PredictionRecord): Record<string, unknown> {
    return predictionJson(prediction, this.options.publicUrl());
  }

  statuses(): Readonly<Record<PredictionStatus, number>> {
    return { ...this.statusCounts };
  }

  flagged(): number {
    return this.flaggedCount;
  }

  canceledWhileRunning(): number {
    return this.canceledWhileRunningCount;
  }

  /** Stops every lifecycle: aborts image fetches, releases `Prefer: wait` holders. Timers are cleared by their owner. */
  close(): void {
    this.shutdown.abort();
    for (const waiters of this.waiters.values()) for (const done of [...waiters]) done();
    this.waiters.clear();
    for (const cancels of this.cancelTimers.values()) for (const cancel of cancels) cancel();
    this.cancelTimers.clear();
  }

  private schedule(prediction: PredictionRecord, ms: number, task: () => void): void {
    const cancel = this.options.timers.after(ms, task);
    const cancels = this.cancelTimers.get(prediction.id);
    if (cancels) cancels.push(cancel);
    else this.cancelTimers.set(prediction.id, [cancel]);
  }

  private setStatus(prediction: PredictionRecord, status: PredictionStatus): void {
    this.statusCounts[prediction.status] -= 1;
    this.statusCounts[status] += 1;
    prediction.status = status;
  }

  private emit(prediction: PredictionRecord, event: WebhookEventType): void {
    if (prediction.webhook === undefined || !prediction.webhookEvents.has(event)) return;
    this.options.webhooks.send(prediction.id, prediction.webhook, this.json(prediction));
  }

  private appendLogs(prediction: PredictionRecord, text: string): void {
    if (prediction.dataRemoved) return;
    prediction.logs += text;
    this.emit(prediction, 'logs');
  }

  private start(prediction: PredictionRecord): void {
    if (prediction.status !== 'starting') return;
    const startedAt = Date.now();
    prediction.startedAt = startedAt;
    this.setStatus(prediction, 'processing');
    prediction.logs += `Using seed: ${prediction.seed}\n`;
    this.emit(prediction, 'start');

    const latency = draw(this.options.latencyMs);
    const steps = 50;
    for (const share of [1 / 3, 2 / 3]) {
      this.schedule(prediction, Math.floor(latency * share), () => {
        if (prediction.status === 'processing')
          this.appendLogs(prediction, progressLine(Math.round(steps * share), steps));
      });
    }
    void this.run(prediction, startedAt + latency).catch((error: unknown) => {
      // A bug in the run must still end the prediction, or a client would poll it forever.
      this.endFailed(prediction, `Prediction failed: simulator error: ${String(error)}`);
    });
  }

  /** Fetch inputs → decide faults → render, then end no earlier than `endAt` (the drawn processing time). */
  private async run(prediction: PredictionRecord, endAt: number): Promise<void> {
    const signal = this.shutdown.signal;
    let images: Awaited<ReturnType<typeof fetchImageInputs>>;
    try {
      images = await fetchImageInputs(prediction.model, prediction.completeInput, {
        maxBytes: this.options.maxControlImageBytes,
        timeoutMs: this.options.controlImageTimeoutMs,
        signal,
      });
    } catch (error) {
      if (signal.aborted) return;
      this.endFailed(
        prediction,
        error instanceof ImageInputError ? error.message : `Prediction failed: ${String(error)}`,
      );
      return;
    }
    const digests = new Map([...images].map(([name, image]) => [name, image.sha256]));
    prediction.contentKey = contentKeyOf(prediction.model.id, prediction.completeInput, digests);
    // Canceled while the inputs were being fetched: it ran, so it is billed, now that its content key is known.
    if (prediction.canceledWhileRunning) this.recordBilled(prediction, 0);
    if (prediction.status !== 'processing') return;

    // The content filter's verdict depends on the input alone, so it comes before any random failure: a flagged input
    // is flagged on its first prediction, as on every later one.
    if (this.options.faults.isFlagged(prediction.contentKey)) {
      await this.waitUntil(endAt);
      if (prediction.status === 'processing') this.flaggedCount += 1;
      this.endFailed(prediction, flaggedErrorOf(prediction.model.id));
      return;
    }
    if (prediction.failByFault) {
      await this.waitUntil(endAt);
      this.endFailed(prediction, genericFailureError);
      return;
    }
    const control = images.get(prediction.model.imageInputs[0] ?? 'control_image');
    let outputs: Awaited<ReturnType<typeof renderOutputs>>;
    try {
      outputs = control
        ? await renderOutputs(
            prediction.model,
            prediction.completeInput,
            prediction.seed,
            control.bytes,
            prediction.imageCount,
            this.options.outputMaxSide,
          )
        : [];
    } catch (error) {
      await this.waitUntil(endAt);
      const reason = error instanceof Error ? error.message : String(error);
      this.endFailed(prediction, `${control ? 'control_image: ' : ''}could not render: ${reason}`);
      return;
    }
    await this.waitUntil(endAt);
    this.endSucceeded(prediction, outputs);
  }

  private async waitUntil(at: number): Promise<void> {
    const remaining = at - Date.now();
    if (remaining > 0) await this.options.timers.sleep(remaining);
  }

  private endSucceeded(prediction: PredictionRecord, outputs: Awaited<ReturnType<typeof renderOutputs>>): void {
    if (prediction.status !== 'processing') return;
    const files = outputs.map((output, index) => ({
      name: outputFileName(index, output.format),
      bytes: output.bytes,
      contentType: output.contentType,
      servedBytes: Math.max(output.bytes.length, this.options.outputMinBytes),
    }));
    const base = `${this.options.publicUrl()}/files/${prediction.id}`;
    const urls = files.map((file) => `${base}/${file.name}`);
    this.options.files.put(prediction.id, files);
    prediction.output = prediction.model.outputShape === 'single' ? (urls[0] ?? null) : urls;
    prediction.completedAt = Date.now();
    const seconds = ((prediction.completedAt - (prediction.startedAt ?? prediction.createdAt)) / 1000).toFixed(2);
    prediction.logs += progressLine(50, 50);
    prediction.logs += `Generated ${files.length} image${files.length === 1 ? '' : 's'} in ${seconds}s\n`;
    this.setStatus(prediction, 'succeeded');
    this.recordBilled(prediction, prediction.imageCount);
    this.emit(prediction, 'output');
    this.finish(prediction);
  }

  private endFailed(prediction: PredictionRecord, error: string): void {
    if (isTerminal(prediction.status)) return;
    prediction.error = error;
    prediction.completedAt = Date.now();
    this.setStatus(prediction, 'failed');
    this.finish(prediction);
  }

  private endCanceled(prediction: PredictionRecord): void {
    const wasRunning = prediction.status === 'processing';
    prediction.completedAt = Date.now();
    this.setStatus(prediction, 'canceled');
    if (wasRunning) {
      prediction.canceledWhileRunning = true;
      this.canceledWhileRunningCount += 1;
      // Billed now if its content key is known; otherwise `run` records it once the inputs are fetched.
      if (prediction.contentKey !== undefined) this.recordBilled(prediction, 0);
    }
    this.finish(prediction);
  }

  private deadlineReached(prediction: PredictionRecord): void {
    if (prediction.status === 'starting') {
      // Never ran: `aborted`, which Replicate does not charge.
      prediction.completedAt = Date.now();
      this.setStatus(prediction, 'aborted');
      this.finish(prediction);
    } else if (prediction.status === 'processing') {
      this.endCanceled(prediction);
    }
  }

  private recordBilled(prediction: PredictionRecord, images: number): void {
    if (prediction.contentKey !== undefined) this.options.billing.record(prediction.contentKey, prediction.id, images);
  }

  private finish(prediction: PredictionRecord): void {
    for (const cancel of this.cancelTimers.get(prediction.id) ?? []) cancel();
    this.cancelTimers.delete(prediction.id);
    this.emit(prediction, 'completed');
    for (const done of [...(this.waiters.get(prediction.id) ?? [])]) done();
    this.waiters.delete(prediction.id);
    if (prediction.removeWhenDone) this.removeData(prediction);
  }

  private retentionReached(prediction: PredictionRecord): void {
    if (isTerminal(prediction.status)) this.removeData(prediction);
    else prediction.removeWhenDone = true;
  }

  private removeData(prediction: PredictionRecord): void {
    prediction.dataRemoved = true;
    prediction.input = {};
    prediction.output = null;
    prediction.logs = '';
    this.options.files.remove(prediction.id);
  }
}
