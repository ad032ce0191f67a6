import { describe, expect, it } from 'vitest';
import { DEFAULT_METRICS_RUN_LIMIT, loadConfig } from '../../src/config/index.js';
import { ConfigError } from '../../src/core/errors.js';
import { telemetryKeys } from '../../src/core/keys.js';
import {
  bucketLabels,
  bucketOf,
  cumulativeBuckets,
  heartbeatsOf,
  INFINITE_BUCKET,
  PREDICTION_SECONDS_BUCKETS,
  statusLabel,
  TelemetryAccumulator,
  telemetryField,
  telemetryTotalsOf,
} from '../../src/core/telemetry.js';
import { operationOf } from '../../src/providers/transport.js';

/** The accumulator's counts as the Redis hash would hold them after one publish. */
function asHash(accumulator: TelemetryAccumulator): Record<string, string> {
  return Object.fromEntries([...accumulator.drain()].map(([field, count]) => [field, String(count)]));
}

describe('prediction latency buckets', () => {
  it('puts a value in the first bucket whose upper bound is at least the value (bounds are inclusive)', () => {
    expect(bucketOf(0)).toBe('0.5');
    expect(bucketOf(0.5)).toBe('0.5');
    expect(bucketOf(0.51)).toBe('1');
    expect(bucketOf(10)).toBe('10');
    expect(bucketOf(10.001)).toBe('20');
    expect(bucketOf(1800)).toBe('1800');
    expect(bucketOf(1800.5)).toBe(INFINITE_BUCKET);
  });

  it('lists every bound in order and +Inf last', () => {
    const labels = bucketLabels();
    expect(labels).toHaveLength(PREDICTION_SECONDS_BUCKETS.length + 1);
    expect(labels.at(-1)).toBe('+Inf');
    expect(labels.slice(0, -1).map(Number)).toEqual([...PREDICTION_SECONDS_BUCKETS].sort((a, b) => a - b));
  });

  it('turns per-bucket counts into cumulative ones whose +Inf is the total', () => {
    const cumulative = cumulativeBuckets(
      new Map([
        ['1', 2],
        ['5', 3],
        ['+Inf', 1],
      ]),
      [1, 5, 10],
    );
    expect(cumulative).toEqual([
      { le: '1', count: 2 },
      { le: '5', count: 5 },
      { le: '10', count: 5 },
      { le: '+Inf', count: 6 },
    ]);
  });
});

describe('TelemetryAccumulator', () => {
  it('counts responses by provider, operation and status, network failures and odd statuses as network', () => {
    const telemetry = new TelemetryAccumulator();
    telemetry.providerResponse({ provider: 'replicate', operation: 'create', status: 201 });
    telemetry.providerResponse({ provider: 'replicate', operation: 'create', status: 429 });
    telemetry.providerResponse({ provider: 'replicate', operation: 'create', status: 429 });
    telemetry.providerResponse({ provider: 'replicate', operation: 'get', status: 'network' });
    telemetry.providerResponse({ provider: 'replicate', operation: 'get', status: 0 });
    const totals = telemetryTotalsOf(asHash(telemetry));
    expect(totals.responses).toEqual(
      expect.arrayContaining([
        { provider: 'replicate', operation: 'create', status: '201', count: 1 },
        { provider: 'replicate', operation: 'create', status: '429', count: 2 },
        { provider: 'replicate', operation: 'get', status: 'network', count: 2 },
      ]),
    );
    expect(totals.responses).toHaveLength(3);
  });

  it('keeps a latency histogram per model and status: one bucket, the sum in whole ms and the count', () => {
    const telemetry = new TelemetryAccumulator([1, 10]);
    const model = 'black-forest-labs/flux-depth-pro';
    telemetry.predictionEnded({ model, status: 'succeeded', seconds: 0.4 });
    telemetry.predictionEnded({ model, status: 'succeeded', seconds: 7.25 });
    telemetry.predictionEnded({ model, status: 'succeeded', seconds: 60 });
    telemetry.predictionEnded({ model, status: 'failed', seconds: -3 });
    const totals = telemetryTotalsOf(asHash(telemetry));
    const succeeded = totals.predictions.find((entry) => entry.status === 'succeeded');
    expect(succeeded?.model).toBe(model);
    expect([...(succeeded?.buckets ?? [])].sort()).toEqual([
      ['+Inf', 1],
      ['1', 1],
      ['10', 1],
    ]);
    expect(succeeded?.count).toBe(3);
    expect(succeeded?.sumSeconds).toBeCloseTo(67.65, 6);
    // A clock that ran backwards counts as 0 s, not a negative sum.
    const failed = totals.predictions.find((entry) => entry.status === 'failed');
    expect(failed).toMatchObject({ count: 1, sumSeconds: 0 });
    expect(failed?.buckets.get('1')).toBe(1);
  });

  it('counts stored images, ignoring counts that are not whole and positive', () => {
    const telemetry = new TelemetryAccumulator();
    telemetry.imagesStored('m/a', 1);
    telemetry.imagesStored('m/a', 2);
    telemetry.imagesStored('m/a', 0);
    telemetry.imagesStored('m/a', 1.5);
    expect(telemetryTotalsOf(asHash(telemetry)).images).toEqual([{ model: 'm/a', count: 3 }]);
  });

  it('drains to zero, and a failed publish restores what it drained on top of what came since', () => {
    const telemetry = new TelemetryAccumulator();
    telemetry.imagesStored('m/a', 2);
    const drained = telemetry.drain();
    expect(telemetry.size).toBe(0);
    telemetry.imagesStored('m/a', 1);
    telemetry.restore(drained);
    expect(telemetry.drain().get(telemetryField.images('m/a'))).toBe(3);
    expect(telemetry.drain().size).toBe(0);
  });

  it('never lets a label value break the field format', () => {
    const telemetry = new TelemetryAccumulator();
    telemetry.providerResponse({ provider: 'a|b', operation: '', status: 200 });
    const totals = telemetryTotalsOf(asHash(telemetry));
    expect(totals.responses).toEqual([{ provider: 'a_b', operation: '_', status: '200', count: 1 }]);
  });
});

describe('reading the telemetry hash', () => {
  it('skips fields it does not know and values that are not counts', () => {
    const totals = telemetryTotalsOf({
      'resp|replicate|get|200': '4',
      'resp|replicate|get': '1',
      'resp|replicate|get|500': 'x',
      'future|thing': '3',
      'images|m/a': '-1',
    });
    expect(totals).toEqual({
      responses: [{ provider: 'replicate', operation: 'get', status: '200', count: 4 }],
      predictions: [],
      images: [],
    });
  });

  it('labels statuses as three digits or network', () => {
    expect(statusLabel(200)).toBe('200');
    expect(statusLabel(599)).toBe('599');
    expect(statusLabel(600)).toBe('network');
    expect(statusLabel('network')).toBe('network');
  });
});

describe('worker heartbeats', () => {
  it('shows workers seen within the window, sorted, and forgets older or unreadable ones', () => {
    const now = 10_000_000;
    const { recent, forgotten } = heartbeatsOf(
      { 'b:2': String(now - 1_000), 'a:1': String(now - 59_000), old: String(now - 61_000), junk: 'soon' },
      now,
      60_000,
    );
    expect(recent).toEqual([
      { worker: 'a:1', lastSeenMs: now - 59_000 },
      { worker: 'b:2', lastSeenMs: now - 1_000 },
    ]);
    expect(forgotten.sort()).toEqual(['junk', 'old']);
  });
});

describe('telemetry keys and request operations', () => {
  it('keeps telemetry under the prefix', () => {
    expect(telemetryKeys('dq')).toEqual({ counters: 'dq:telemetry:counters', workers: 'dq:telemetry:workers' });
    expect(() => telemetryKeys('')).toThrow();
  });

  it('names what a request was for from its method and path, never an id', () => {
    const base = 'https://api.replicate.com/v1';
    expect(operationOf('POST', new URL(`${base}/predictions`))).toBe('create');
    expect(operationOf('POST', new URL(`${base}/models/black-forest-labs/flux-depth-pro/predictions`))).toBe('create');
    expect(operationOf('GET', new URL(`${base}/predictions/abc123`))).toBe('get');
    expect(operationOf('GET', new URL(`${base}/predictions?cursor=x`))).toBe('list');
    expect(operationOf('POST', new URL(`${base}/predictions/abc123/cancel`))).toBe('cancel');
    expect(operationOf('GET', new URL(`${base}/models/black-forest-labs/flux-depth-pro`))).toBe('other');
  });
});

describe('telemetry and /metrics settings', () => {
  it('reads DEPTHQ_TELEMETRY_INTERVAL_MS and DEPTHQ_METRICS_RUNS, with defaults', () => {
    const defaults = loadConfig({});
    expect(defaults.metrics.runLimit).toBe(DEFAULT_METRICS_RUN_LIMIT);
    expect(defaults.worker.telemetryIntervalMs).toBeUndefined();
    const set = loadConfig({ DEPTHQ_TELEMETRY_INTERVAL_MS: '500', DEPTHQ_METRICS_RUNS: '7' });
    expect(set.metrics.runLimit).toBe(7);
    expect(set.worker.telemetryIntervalMs).toBe(500);
  });

  it('refuses a run limit of 0 naming the variable', () => {
    expect(() => loadConfig({ DEPTHQ_METRICS_RUNS: '0' })).toThrow(ConfigError);
    expect(() => loadConfig({ DEPTHQ_METRICS_RUNS: '0' })).toThrow(/DEPTHQ_METRICS_RUNS/);
  });
});
