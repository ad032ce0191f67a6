/**
 * In-memory stand-ins for the render job's ports — a provider whose predictions a test scripts, an output store that
 * can fail on demand, a ledger with the run ledger's money rules, and a queued job whose fenced write can be lost — so
 * every transition of the render job runs in a unit test in milliseconds. The integration suites prove the same rules
 * against redis-server, s3rver and the simulator.
 */
import pino from 'pino';
import type { ControlImageFacts } from '../../src/core/checkpoint.js';
import { OutputExpiredError } from '../../src/core/errors.js';
import { type BudgetState, canReserve } from '../../src/core/money.js';
import { buildRenderJob, type RenderJob } from '../../src/core/render-job.js';
import {
  type PauseCause,
  type ResultRow,
  type RunState,
  resultRowSchema,
  type Settlement,
} from '../../src/ledger/run-ledger.js';
import {
  defaultPipelineSettings,
  type OutputStore,
  type PipelineSettings,
  type RenderLedger,
  type StepDeps,
  type StoredOutputObject,
} from '../../src/pipeline/render-context.js';
import type { QueuedRenderJob } from '../../src/pipeline/run-job.js';
import type {
  AwaitOptions,
  CreatedPrediction,
  CreatePredictionRequest,
  ImageModelProvider,
  Prediction,
} from '../../src/providers/provider.js';
import { replicateIdentity } from '../../src/providers/replicate.js';
import { MemoryPredictionClaims } from '../../src/queue/prediction-claims.js';
import { startingPrediction } from './memory-provider.js';

export const T0 = Date.parse('2026-01-01T10:00:00.000Z');

/** A failure scripted for one call: thrown as is. */
export type Scripted = Error | undefined;

export class FakeProvider implements ImageModelProvider {
  /** It stands in for Replicate: failures are named as Replicate's. */
  readonly identity = replicateIdentity;
  readonly retentionMs = 60 * 60_000;
  readonly creates: CreatePredictionRequest[] = [];
  readonly cancels: string[] = [];
  readonly predictions = new Map<string, Prediction>();
  /** Thrown by the next creates, one per call. */
  createFailures: Scripted[] = [];
  /** Thrown by the next awaitTerminal calls, one per call. */
  awaitFailures: Scripted[] = [];
  /** Thrown by the next cancel calls, one per call. */
  cancelFailures: Scripted[] = [];
  /** How a created prediction ends when awaited: succeeded with one output, unless this says otherwise. */
  endAs: (id: string) => Partial<Prediction> = () => ({});
  /** What `findByFingerprint` finds. */
  lost: Prediction | undefined;
  #next = 1;

  constructor(private readonly clock: { now: number }) {}

  prediction(id: string, fields: Partial<Prediction> = {}): Prediction {
    const prediction: Prediction = { ...startingPrediction(id, new Date(this.clock.now).toISOString()), ...fields };
    this.predictions.set(id, prediction);
    return prediction;
  }

  async create(request: CreatePredictionRequest): Promise<CreatedPrediction> {
    this.creates.push(request);
    const failure = this.createFailures.shift();
    if (failure !== undefined) throw failure;
    return { prediction: this.prediction(`p${this.#next++}`), adopted: false };
  }

  async get(id: string): Promise<Prediction> {
    const found = this.predictions.get(id);
    if (found === undefined) throw new Error(`no prediction ${id}`);
    return found;
  }

  async cancel(id: string): Promise<Prediction> {
    this.cancels.push(id);
    const failure = this.cancelFailures.shift();
    if (failure !== undefined) throw failure;
    const found = await this.get(id);
    if (found.status !== 'starting' && found.status !== 'processing') return found;
    const canceled: Prediction = { ...found, status: found.startedAt ? 'canceled' : 'aborted' };
    this.predictions.set(id, canceled);
    return canceled;
  }

  // biome-ignore lint/correctness/useYield: the render job never lists; a call is a test failure.
  async *listCreatedBetween(): AsyncGenerator<Prediction> {
    throw new Error('the render job does not list predictions');
  }

  async findByInput(): Promise<Prediction | undefined> {
    throw new Error('the render job looks lost creates up by fingerprint');
  }

  async findByFingerprint(
    _model: string,
    _fingerprint: string,
    _since: Date,
    _signal?: AbortSignal,
    _until?: Date,
    accept?: (prediction: Prediction) => Promise<boolean>,
  ): Promise<Prediction | undefined> {
    if (this.lost === undefined) return undefined;
    return accept === undefined || (await accept(this.lost)) ? this.lost : undefined;
  }

  async awaitTerminal(prediction: Prediction, _options?: AwaitOptions): Promise<Prediction> {
    const failure = this.awaitFailures.shift();
    if (failure !== undefined) throw failure;
    const current = this.predictions.get(prediction.id) ?? prediction;
    if (current.status !== 'starting' && current.status !== 'processing') return current;
    const ended: Prediction = {
      ...current,
      status: 'succeeded',
      startedAt: current.createdAt,
      completedAt: new Date(this.clock.now).toISOString(),
      outputUrls: [`https://replicate.delivery/fake/${prediction.id}/out-0.webp`],
      loggedSeed: 42,
      predictTimeSeconds: 1.5,
      imageCount: 1,
      ...this.endAs(prediction.id),
    };
    this.predictions.set(prediction.id, ended);
    return ended;
  }
}

export class FakeStore implements OutputStore {
  readonly copies: string[] = [];
  readonly sidecars = new Map<string, unknown>();
  /** Thrown by the next copies, one per call. */
  copyFailures: Scripted[] = [];
  /** Every copy fails with this while set. */
  down: Error | undefined;
  controlFacts: ControlImageFacts = { sha256: 'c'.repeat(64), size: 1234, etag: '"e"' };

  async controlImageFacts(): Promise<ControlImageFacts> {
    return this.controlFacts;
  }

  async presignControlImage(ref: { bucket: string; key: string }): Promise<string> {
    return `http://s3.test/${ref.bucket}/${ref.key}?X-Amz-Signature=secret`;
  }

  async copyOutput(request: Parameters<OutputStore['copyOutput']>[0]): Promise<StoredOutputObject> {
    if (this.down !== undefined) throw this.down;
    const failure = this.copyFailures.shift();
    if (failure !== undefined) throw failure;
    this.copies.push(request.target.key);
    return { sha256: 'f'.repeat(64), size: 10, contentType: 'image/webp', etag: '"o"' };
  }

  async putSidecar(ref: { bucket: string; key: string }, value: unknown): Promise<void> {
    if (this.down !== undefined) throw this.down;
    this.sidecars.set(ref.key, value);
  }
}

export const expired = (): OutputExpiredError => new OutputExpiredError('the output is gone (HTTP 404)');

/** The run ledger's rules (idempotent reserve per job, settle once, release), in memory, for one run. */
export class MemoryLedger implements RenderLedger {
  state: RunState = 'active';
  budget: number | null = null;
  readonly reservations = new Map<string, number>();
  readonly settlements = new Map<string, Settlement>();
  readonly rows: ResultRow[] = [];
  spent = 0;
  possiblyBilled = 0;

  money(): BudgetState {
    const reserved = [...this.reservations.values()].reduce((sum, each) => sum + each, 0);
    return { budget: this.budget, reserved, spent: this.spent, possiblyBilled: this.possiblyBilled };
  }

  lastRow(): ResultRow | undefined {
    return this.rows.at(-1);
  }

  async runState(): Promise<RunState> {
    return this.state;
  }

  /** The cause `pauseFor` recorded, until the state changes. */
  pause: PauseCause | undefined;

  async pauseFor(_run: string, cause: { reason: string; message: string }): ReturnType<RenderLedger['pauseFor']> {
    const previous = this.state;
    if (previous === 'canceled') return { previous, current: previous, newCause: false };
    const newCause = previous !== 'paused' || this.pause?.reason !== cause.reason;
    this.state = 'paused';
    this.pause = { ...cause, at: new Date(T0).toISOString() };
    return { previous, current: 'paused', newCause };
  }

  async reserve(_run: string, jobId: string, amount: number): ReturnType<RenderLedger['reserve']> {
    const settlement = this.settlements.get(jobId);
    if (settlement !== undefined) return { ok: false, reason: 'settled', settlement, state: this.money() };
    const held = this.reservations.get(jobId);
    if (held !== undefined) return { ok: true, amount: held, alreadyHeld: true, state: this.money() };
    if (!canReserve(this.money(), amount)) return { ok: false, reason: 'budget', state: this.money() };
    this.reservations.set(jobId, amount);
    return { ok: true, amount, alreadyHeld: false, state: this.money() };
  }

  async settle(
    _run: string,
    jobId: string,
    amounts: { spent: number; possiblyBilled: number },
  ): ReturnType<RenderLedger['settle']> {
    const first = this.settlements.get(jobId);
    if (first !== undefined) return { settlement: first, alreadySettled: true, state: this.money() };
    const settlement: Settlement = {
      ...amounts,
      releasedReservation: this.reservations.get(jobId) ?? 0,
      settledAt: new Date(T0).toISOString(),
    };
    this.reservations.delete(jobId);
    this.settlements.set(jobId, settlement);
    this.spent += amounts.spent;
    this.possiblyBilled += amounts.possiblyBilled;
    return { settlement, alreadySettled: false, state: this.money() };
  }

  async release(_run: string, jobId: string): ReturnType<RenderLedger['release']> {
    const released = this.reservations.get(jobId) ?? null;
    this.reservations.delete(jobId);
    return { released, state: this.money() };
  }

  async recordResult(_run: string, _jobId: string, row: ResultRow): ReturnType<RenderLedger['recordResult']> {
    const previousStatus = this.rows.at(-1)?.status ?? null;
    this.rows.push(resultRowSchema.parse(row));
    return { previousStatus };
  }
}

export function renderJobFor(model = 'black-forest-labs/flux-depth-pro'): RenderJob {
  return buildRenderJob({
    run: 'run-1',
    rowId: 'row-1',
    style: 'day',
    model,
    controlImage: { bucket: 'control', key: 'in/row-1.png' },
    input: { prompt: 'a bright living room', seed: 7 },
    output: { bucket: 'renders', prefix: 'out/' },
    metadata: {},
  });
}

/** A queued job whose fenced write succeeds until `lockLost` is set. */
export class FakeQueuedJob implements QueuedRenderJob {
  readonly id = 'job-1';
  data: unknown;
  lockLost = false;
  readonly writes: unknown[] = [];
  readonly controller = new AbortController();

  constructor(
    data: unknown,
    readonly attemptsMade = 0,
    readonly maxAttempts = 3,
  ) {
    this.data = data;
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  async writeData(data: Record<string, unknown>): Promise<'written' | 'lock-lost'> {
    if (this.lockLost) return 'lock-lost';
    this.data = data;
    this.writes.push(data);
    return 'written';
  }

  checkpoint(): Record<string, unknown> {
    return Reflect.get(this.data as object, 'checkpoint') as Record<string, unknown>;
  }
}

export interface Harness {
  readonly clock: { now: number };
  readonly claims: MemoryPredictionClaims;
  readonly provider: FakeProvider;
  readonly store: FakeStore;
  readonly ledger: MemoryLedger;
  readonly deps: StepDeps;
}

export function harness(settings: Partial<PipelineSettings> = {}): Harness {
  const clock = { now: T0 };
  const provider = new FakeProvider(clock);
  const store = new FakeStore();
  const ledger = new MemoryLedger();
  const claims = new MemoryPredictionClaims();
  const deps: StepDeps = {
    provider,
    store,
    ledger,
    settings: { ...defaultPipelineSettings, retryBaseMs: 1, retryCapMs: 2, ...settings },
    now: () => clock.now,
    claims,
    random: () => 0.5,
    log: pino({ level: 'silent' }),
  };
  return { clock, provider, store, ledger, claims, deps };
}
