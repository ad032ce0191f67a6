/**
 * The metrics /metrics exposes, on a prom-client `Registry` of their own (never the global one, so two apps in one
 * process — tests — never share or double-register series). Every value comes from the scrape's `MetricsSnapshot`: each
 * metric's `get()` is overridden to turn the snapshot into samples, so a series that the snapshot lacks (Redis down, a
 * run no longer among the newest) is simply absent, never a stale or invented 0. The list, with labels and sources:
 * docs/metrics.md.
 */
import { Gauge, type MetricType, Registry } from 'prom-client';
import { cumulativeBuckets } from '../../core/telemetry.js';
import { RESULT_STATUSES, RUN_STATES } from '../../ledger/run-ledger.js';
import type { MetricsSnapshot } from './snapshot.js';

type Labels = Record<string, string | number>;
interface Sample {
  readonly labels: Labels;
  readonly value: number;
  /** For histograms: `<name>_bucket`, `_sum`, `_count`. */
  readonly metricName?: string;
}
type SamplesOf = (snapshot: MetricsSnapshot) => Sample[];

interface SnapshotMetricConfig {
  readonly name: string;
  readonly help: string;
  readonly labelNames?: readonly string[];
  readonly samples: SamplesOf;
  readonly registry: Registry;
  readonly current: () => MetricsSnapshot | undefined;
}

function samplesNow(config: SnapshotMetricConfig): Sample[] {
  const snapshot = config.current();
  return snapshot === undefined ? [] : config.samples(snapshot);
}

/**
 * One metric read from the snapshot, rendered under `# TYPE <type>`. prom-client's Counter and Histogram cannot take
 * values someone else observed (a Counter only goes up by `inc()`, a Histogram only counts `observe()`), so every kind
 * is a Gauge whose `get()` answers the snapshot's samples and whose type line says what the series is: a counter, or a
 * histogram (`_bucket` with `le`, `_sum`, `_count`). prom-client's typings declare `type` as a numeric enum; at run
 * time it is that text.
 */
class SnapshotMetric extends Gauge<string> {
  readonly #config: SnapshotMetricConfig;
  readonly #type: MetricType;
  constructor(config: SnapshotMetricConfig, type: 'gauge' | 'counter' | 'histogram') {
    super({ name: config.name, help: config.help, labelNames: config.labelNames ?? [], registers: [config.registry] });
    this.#config = config;
    this.#type = type as unknown as MetricType;
  }
  override async get() {
    return { ...(await super.get()), type: this.#type, values: samplesNow(this.#config) };
  }
}

/** A worker whose heartbeat is older than this is not counted alive. */
export interface RegistryOptions {
  readonly aliveWithinMs: number;
}

function runLabels(run: MetricsSnapshot['runs'][number]): Labels {
  return { run: run.run, model: run.model };
}

/**
 * Builds the registry. `current()` is the snapshot of the scrape in progress, `undefined` when Redis could not be read:
 * then only `depthq_redis_up` (0) has a sample.
 */
export function createMetricsRegistry(
  current: () => MetricsSnapshot | undefined,
  options: RegistryOptions,
): { readonly registry: Registry; readonly redisUp: Gauge<string> } {
  const registry = new Registry();
  const redisUp = new Gauge({
    name: 'depthq_redis_up',
    help: 'Whether this scrape could read Redis (1) or not (0); when 0, every other depthq series is absent.',
    registers: [registry],
  });
  const gauge = (name: string, help: string, labelNames: readonly string[], samples: SamplesOf) =>
    new SnapshotMetric({ name, help, labelNames, samples, registry, current }, 'gauge');
  const counter = (name: string, help: string, labelNames: readonly string[], samples: SamplesOf) =>
    new SnapshotMetric({ name, help, labelNames, samples, registry, current }, 'counter');

  gauge('depthq_metrics_runs_known', 'Runs in the run index.', [], (s) => [{ labels: {}, value: s.runsKnown }]);
  gauge(
    'depthq_metrics_runs_exported',
    'Runs with per-run series on this scrape: the newest DEPTHQ_METRICS_RUNS.',
    [],
    (s) => [{ labels: {}, value: s.runs.length }],
  );
  gauge('depthq_metrics_runs_unreadable', 'Runs among the newest whose ledger did not parse, left out.', [], (s) => [
    { labels: {}, value: s.runsUnreadable },
  ]);
  gauge(
    'depthq_run_jobs',
    "Jobs of a run by their ledger status (the run ledger's counters).",
    ['run', 'model', 'status'],
    (s) =>
      s.runs.flatMap((run) =>
        RESULT_STATUSES.map((status) => ({ labels: { ...runLabels(run), status }, value: run.counters[status] })),
      ),
  );
  gauge('depthq_run_jobs_registered', 'Jobs registered in a run (every status).', ['run', 'model'], (s) =>
    s.runs.map((run) => ({ labels: runLabels(run), value: run.counters.total })),
  );
  gauge('depthq_run_state', "A run's state: 1 for the one it is in, 0 for the others.", ['run', 'state'], (s) =>
    s.runs.flatMap((run) =>
      RUN_STATES.map((state) => ({ labels: { run: run.run, state }, value: run.state === state ? 1 : 0 })),
    ),
  );
  gauge('depthq_run_created_timestamp_seconds', 'When the run was created (Unix seconds).', ['run', 'model'], (s) =>
    s.runs.map((run) => ({ labels: runLabels(run), value: Date.parse(run.createdAt) / 1000 })),
  );
  gauge(
    'depthq_run_budget_microdollars',
    "A run's budget in micro-dollars; absent when unlimited.",
    ['run', 'model'],
    (s) =>
      s.runs.flatMap((run) => (run.money.budget === null ? [] : [{ labels: runLabels(run), value: run.money.budget }])),
  );
  gauge(
    'depthq_run_spent_microdollars',
    'Micro-dollars spent on delivered images (the ledger, exact).',
    ['run', 'model'],
    (s) => s.runs.map((run) => ({ labels: runLabels(run), value: run.money.spent })),
  );
  gauge('depthq_run_reserved_microdollars', 'Micro-dollars held for predictions under way.', ['run', 'model'], (s) =>
    s.runs.map((run) => ({ labels: runLabels(run), value: run.money.reserved })),
  );
  gauge(
    'depthq_run_possibly_billed_microdollars',
    'Micro-dollars for predictions that may have been billed without a stored image (check the invoice).',
    ['run', 'model'],
    (s) => s.runs.map((run) => ({ labels: runLabels(run), value: run.money.possiblyBilled })),
  );
  gauge(
    'depthq_queue_jobs',
    "BullMQ's count of render-queue jobs by its state (finished jobs until BullMQ removes them).",
    ['state'],
    (s) => Object.entries(s.queue).map(([state, value]) => ({ labels: { state }, value })),
  );
  counter(
    'depthq_provider_responses_total',
    'Provider HTTP answers seen by all workers, by operation and status (429 = throttled; network = no answer).',
    ['provider', 'operation', 'status'],
    (s) => s.telemetry.responses.map(({ count, ...labels }) => ({ labels, value: count })),
  );
  counter('depthq_images_stored_total', 'Images stored and recorded by all workers.', ['model'], (s) =>
    s.telemetry.images.map(({ model, count }) => ({ labels: { model }, value: count })),
  );
  gauge(
    'depthq_provider_requests_per_image',
    'Provider requests (every answer and network failure) per image stored, since telemetry began; absent before the first image.',
    [],
    (s) => {
      const images = s.telemetry.images.reduce((sum, { count }) => sum + count, 0);
      const requests = s.telemetry.responses.reduce((sum, { count }) => sum + count, 0);
      return images === 0 ? [] : [{ labels: {}, value: requests / images }];
    },
  );
  new SnapshotMetric(
    {
      name: 'depthq_prediction_duration_seconds',
      help: "Predictions from created to terminal, by the provider's timestamps, by model and terminal status.",
      labelNames: ['model', 'status'],
      registry,
      current,
      samples: (s) =>
        s.telemetry.predictions.flatMap(({ model, status, buckets, sumSeconds, count }) => [
          ...cumulativeBuckets(buckets).map((bucket) => ({
            metricName: 'depthq_prediction_duration_seconds_bucket',
            labels: { model, status, le: bucket.le },
            value: bucket.count,
          })),
          { metricName: 'depthq_prediction_duration_seconds_sum', labels: { model, status }, value: sumSeconds },
          { metricName: 'depthq_prediction_duration_seconds_count', labels: { model, status }, value: count },
        ]),
    },
    'histogram',
  );
  gauge('depthq_workers_alive', 'Render workers whose heartbeat is recent.', [], (s) => [
    { labels: {}, value: s.workers.filter((worker) => s.nowMs - worker.lastSeenMs <= options.aliveWithinMs).length },
  ]);
  gauge(
    'depthq_worker_heartbeat_age_seconds',
    "Seconds since each worker's last heartbeat (workers seen in the last hour; a cleanly stopped worker is removed).",
    ['worker'],
    (s) =>
      s.workers.map((worker) => ({ labels: { worker: worker.worker }, value: (s.nowMs - worker.lastSeenMs) / 1000 })),
  );
  return { registry, redisUp };
}
