/**
 * The smallest provider the pipeline runs on: predictions kept in a map, each succeeding with one output when awaited,
 * and no way to list them — like an API without a list endpoint (Black Forest Labs' own). It implements only the
 * required part of `ImageModelProvider`, so a test on it shows the pipeline needs nothing more.
 */
import type {
  CreatedPrediction,
  CreatePredictionRequest,
  ImageModelProvider,
  Prediction,
} from '../../src/providers/provider.js';

/** A prediction just created at `createdAt`: starting, nothing out yet. */
export function startingPrediction(id: string, createdAt: string): Prediction {
  return {
    id,
    status: 'starting',
    createdAt,
    startedAt: null,
    completedAt: null,
    outputUrls: [],
    predictTimeSeconds: null,
    loggedSeed: null,
    error: null,
    dataRemoved: false,
  };
}

export class MemoryProvider implements ImageModelProvider {
  readonly identity = { name: 'Memory', tokenSetting: 'MEMORY_TOKEN', baseUrlSetting: 'MEMORY_URL' };
  readonly retentionMs = 10 * 60_000;
  readonly creates: CreatePredictionRequest[] = [];
  readonly #predictions = new Map<string, Prediction>();
  #next = 1;

  constructor(private readonly clock: { now: number }) {}

  async create(request: CreatePredictionRequest): Promise<CreatedPrediction> {
    this.creates.push(request);
    const prediction = startingPrediction(`m${this.#next++}`, new Date(this.clock.now).toISOString());
    this.#predictions.set(prediction.id, prediction);
    return { prediction, adopted: false };
  }

  async get(id: string): Promise<Prediction> {
    const found = this.#predictions.get(id);
    if (found === undefined) throw new Error(`no prediction ${id}`);
    return found;
  }

  async cancel(id: string): Promise<Prediction> {
    const found = await this.get(id);
    if (found.status !== 'starting' && found.status !== 'processing') return found;
    const canceled: Prediction = { ...found, status: found.startedAt === null ? 'aborted' : 'canceled' };
    this.#predictions.set(id, canceled);
    return canceled;
  }

  async awaitTerminal(prediction: Prediction): Promise<Prediction> {
    const current = await this.get(prediction.id);
    if (current.status !== 'starting' && current.status !== 'processing') return current;
    const at = new Date(this.clock.now).toISOString();
    const ended: Prediction = {
      ...current,
      status: 'succeeded',
      startedAt: current.createdAt,
      completedAt: at,
      outputUrls: [`https://memory.test/${current.id}/out-0.webp`],
      imageCount: 1,
    };
    this.#predictions.set(current.id, ended);
    return ended;
  }
}
