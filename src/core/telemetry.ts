/**
 * Worker telemetry: the per-process facts /metrics shows that the run ledger does not hold — every provider response by
 * status (429s and network errors included), how long predictions took from created to terminal, and images stored.
 * They are seen in the worker processes, but /metrics is served by the dashboard, so a worker counts them in memory
 * (`TelemetryAccumulator`, here) and a publisher (`src/queue/telemetry-publisher.ts`) adds them to one Redis hash every
 * couple of seconds in one pipelined batch: no Redis round trip per image. See docs/metrics.md.
 *
 * Pure: no I/O. The hash's fields are `kind|label|label…` with a count each; encoding and decoding live here so the
 * writer and the reader cannot disagree.
 */

/** An HTTP status, or `network` when no response came (reset, refused, timed out). */
export type ResponseStatus = number | 'network';

export interface ProviderResponseSeen {
  /** The provider's name (`replicate`). */
  readonly provider: string;
  /** What the request was for: `create`, `get`, `list`, `cancel`, `other` — a bounded set, never an id. */
  readonly operation: string;
  readonly status: ResponseStatus;
}

export interface PredictionEndSeen {
  /** The model id, `owner/name`. */
  readonly model: string;
  /** The terminal status: `succeeded`, `failed`, `canceled`, `aborted`. */
  readonly status: string;
  /** From the provider's created to completed timestamps. */
  readonly seconds: number;
}

/** What the render worker reports. Each call is a counter increment in memory: cheap enough for every response. */
export interface Telemetry {
  providerResponse(seen: ProviderResponseSeen): void;
  predictionEnded(seen: PredictionEndSeen): void;
  imagesStored(model: string, count: number): void;
}

/**
 * The upper bounds (seconds, inclusive) of the prediction latency histogram. FLUX.1 Depth [pro] takes ~10–30 s on
 * Replicate; cold starts and queueing take minutes; the simulator takes under 2 s. Fixed, because each bound is a field
 * every worker adds to: changing them splits the histogram's history.
 */
export const PREDICTION_SECONDS_BUCKETS: readonly number[] = [
  0.5, 1, 2, 5, 10, 20, 30, 45, 60, 90, 120, 300, 600, 1800,
];

/** `+Inf`, the bucket of observations above the last bound. */
export const INFINITE_BUCKET = '+Inf';

/** The `le` label of the bucket `seconds` falls in: the first bound ≥ seconds, else `+Inf`. */
export function bucketOf(seconds: number, bounds: readonly number[] = PREDICTION_SECONDS_BUCKETS): string {
  const bound = bounds.find((upper) => seconds <= upper);
  return bound === undefined ? INFINITE_BUCKET : String(bound);
}

/** Prometheus buckets are cumulative; the hash keeps one count per bucket. The `le` values in order, `+Inf` last. */
export function bucketLabels(bounds: readonly number[] = PREDICTION_SECONDS_BUCKETS): string[] {
  return [...bounds.map(String), INFINITE_BUCKET];
}

/** Per-bucket counts (by `le`) → cumulative counts in bucket order, `+Inf` last (= the total). */
export function cumulativeBuckets(
  counts: ReadonlyMap<string, number>,
  bounds: readonly number[] = PREDICTION_SECONDS_BUCKETS,
): Array<{ readonly le: string; readonly count: number }> {
  let total = 0;
  return bucketLabels(bounds).map((le) => {
    total += counts.get(le) ?? 0;
    return { le, count: total };
  });
}

// ---------------------------------------------------------------------------------------------------------------------
// Hash fields
// ---------------------------------------------------------------------------------------------------------------------

const SEPARATOR = '|';

/** Label values are written as they are, except the separator; they are ids from a bounded set (models, providers). */
function labelPart(value: string): string {
  return value.replaceAll(SEPARATOR, '_') || '_';
}

/** The status label: a three-digit HTTP status or `network`. */
export function statusLabel(status: ResponseStatus): string {
  return typeof status === 'number' && Number.isInteger(status) && status >= 100 && status <= 599
    ? String(status)
    : 'network';
}

export const telemetryField = {
  response: (seen: ProviderResponseSeen) =>
    ['resp', labelPart(seen.provider), labelPart(seen.operation), statusLabel(seen.status)].join(SEPARATOR),
  predictionBucket: (model: string, status: string, le: string) =>
    ['pred_le', labelPart(model), labelPart(status), le].join(SEPARATOR),
  /** The sum in whole milliseconds, so every worker can HINCRBY it (floats would need HINCRBYFLOAT and drift). */
  predictionSumMs: (model: string, status: string) =>
    ['pred_sum_ms', labelPart(model), labelPart(status)].join(SEPARATOR),
  predictionCount: (model: string, status: string) =>
    ['pred_count', labelPart(model), labelPart(status)].join(SEPARATOR),
  images: (model: string) => ['images', labelPart(model)].join(SEPARATOR),
} as const;

/**
 * Counts in memory until drained. Drain hands over the counts and starts again from zero; a publish that failed gives
 * them back with `restore`, so a Redis outage delays telemetry instead of losing it.
 */
export class TelemetryAccumulator implements Telemetry {
  #counts = new Map<string, number>();
  readonly #bounds: readonly number[];

  constructor(bounds: readonly number[] = PREDICTION_SECONDS_BUCKETS) {
    this.#bounds = bounds;
  }

  #add(field: string, amount: number): void {
    this.#counts.set(field, (this.#counts.get(field) ?? 0) + amount);
  }

  providerResponse(seen: ProviderResponseSeen): void {
    this.#add(telemetryField.response(seen), 1);
  }

  predictionEnded(seen: PredictionEndSeen): void {
    // A clock that ran backwards between created and completed would give a negative latency: count it as 0.
    const seconds = Number.isFinite(seen.seconds) ? Math.max(0, seen.seconds) : 0;
    this.#add(telemetryField.predictionBucket(seen.model, seen.status, bucketOf(seconds, this.#bounds)), 1);
    this.#add(telemetryField.predictionSumMs(seen.model, seen.status), Math.round(seconds * 1000));
    this.#add(telemetryField.predictionCount(seen.model, seen.status), 1);
  }

  imagesStored(model: string, count: number): void {
    if (Number.isSafeInteger(count) && count > 0) this.#add(telemetryField.images(model), count);
  }

  /** Fields with a count to publish. */
  get size(): number {
    return this.#counts.size;
  }

  drain(): ReadonlyMap<string, number> {
    const drained = this.#counts;
    this.#counts = new Map();
    return drained;
  }

  restore(counts: ReadonlyMap<string, number>): void {
    for (const [field, amount] of counts) this.#add(field, amount);
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// Reading the hash back
// ---------------------------------------------------------------------------------------------------------------------

export interface ResponseCount {
  readonly provider: string;
  readonly operation: string;
  readonly status: string;
  readonly count: number;
}

export interface PredictionLatency {
  readonly model: string;
  readonly status: string;
  /** Count per bucket `le`, not cumulative. */
  readonly buckets: ReadonlyMap<string, number>;
  readonly sumSeconds: number;
  readonly count: number;
}

export interface TelemetryTotals {
  readonly responses: readonly ResponseCount[];
  readonly predictions: readonly PredictionLatency[];
  readonly images: ReadonlyArray<{ readonly model: string; readonly count: number }>;
}

/** The stored hash as totals; fields it does not know (a newer worker's) and values that are not counts are skipped. */
export function telemetryTotalsOf(hash: Readonly<Record<string, string>>): TelemetryTotals {
  const responses: ResponseCount[] = [];
  const images: Array<{ model: string; count: number }> = [];
  const predictions = new Map<
    string,
    { model: string; status: string; buckets: Map<string, number>; sumMs: number; count: number }
  >();
  const predictionOf = (model: string, status: string) => {
    const key = `${model}${SEPARATOR}${status}`;
    let entry = predictions.get(key);
    if (entry === undefined) {
      entry = { model, status, buckets: new Map(), sumMs: 0, count: 0 };
      predictions.set(key, entry);
    }
    return entry;
  };
  for (const [field, text] of Object.entries(hash)) {
    const count = Number(text);
    if (!Number.isSafeInteger(count) || count < 0) continue;
    const [kind, ...labels] = field.split(SEPARATOR);
    const [first, second, third] = labels;
    if (kind === 'resp' && labels.length === 3 && first && second && third) {
      responses.push({ provider: first, operation: second, status: third, count });
    } else if (kind === 'pred_le' && labels.length === 3 && first && second && third) {
      predictionOf(first, second).buckets.set(third, count);
    } else if (kind === 'pred_sum_ms' && labels.length === 2 && first && second) {
      predictionOf(first, second).sumMs = count;
    } else if (kind === 'pred_count' && labels.length === 2 && first && second) {
      predictionOf(first, second).count = count;
    } else if (kind === 'images' && labels.length === 1 && first) {
      images.push({ model: first, count });
    }
  }
  return {
    responses,
    predictions: [...predictions.values()].map(({ sumMs, ...rest }) => ({ ...rest, sumSeconds: sumMs / 1000 })),
    images,
  };
}

// ---------------------------------------------------------------------------------------------------------------------
// Worker heartbeats
// ---------------------------------------------------------------------------------------------------------------------

export interface WorkerHeartbeat {
  readonly worker: string;
  readonly lastSeenMs: number;
}

/**
 * The heartbeats hash (worker id → last-seen ms) read at `nowMs`: the workers seen within `forgetAfterMs` (shown), and
 * the ids older than that (deleted by the reader, so restarts do not grow the hash or the label set for ever).
 */
export function heartbeatsOf(
  hash: Readonly<Record<string, string>>,
  nowMs: number,
  forgetAfterMs: number,
): { readonly recent: WorkerHeartbeat[]; readonly forgotten: string[] } {
  const recent: WorkerHeartbeat[] = [];
  const forgotten: string[] = [];
  for (const [worker, text] of Object.entries(hash)) {
    const lastSeenMs = Number(text);
    if (!Number.isSafeInteger(lastSeenMs) || nowMs - lastSeenMs > forgetAfterMs) forgotten.push(worker);
    else recent.push({ worker, lastSeenMs });
  }
  recent.sort((a, b) => a.worker.localeCompare(b.worker));
  return { recent, forgotten };
}
