/**
 * /metrics and /healthz on real parts: redis-server, s3rver, the simulator and an in-process render worker publishing its
 * telemetry, scraped over HTTP through a real @hono/node-server listener. Spend is checked against the ledger to the
 * micro-dollar, provider responses against the simulator's own counts, and the Grafana dashboard's PromQL against the
 * metrics a scrape exposes. Last, Redis is stopped (and frozen): the scrape still answers.
 */
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ServerType, serve } from '@hono/node-server';
import { Hono } from 'hono';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ledgerKeys } from '../../src/core/keys.js';
import { fluxDepthPro } from '../../src/core/models.js';
import { renderJobIdOf } from '../../src/core/render-job.js';
import { mountMetricsRoutes } from '../../src/dashboard/metrics-routes.js';
import { closeConnection, createWorkerConnection } from '../../src/queue/connections.js';
import { startRenderWorker } from '../../src/worker/start.js';
import {
  prepareRenderRun,
  type RenderRunFixture,
  useRenderRunCleanup,
  waitForCounters,
} from '../helpers/render-run.js';
import { eventually, useLocalStack } from '../helpers/stack.js';

const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

const stack = useLocalStack({
  simulator: { startDelayMs: { min: 10, max: 30 }, latencyMs: { min: 50, max: 150 }, outputMaxSide: 256 },
});
const { fixtures, workers } = useRenderRunCleanup();

interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

interface Scrape {
  readonly status: number;
  readonly contentType: string | null;
  readonly text: string;
  readonly samples: readonly Sample[];
  /** Metric family names from the `# TYPE` lines, with their types. */
  readonly types: ReadonlyMap<string, string>;
}

function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const match of text.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
    const [, name, value] = match;
    if (name !== undefined && value !== undefined) labels[name] = value.replace(/\\(.)/g, '$1');
  }
  return labels;
}

/** The Prometheus text format, strictly enough to fail on a malformed line. */
function parseExposition(text: string): Pick<Scrape, 'samples' | 'types'> {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('# HELP ')) continue;
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type?.[1] && type[2]) {
      types.set(type[1], type[2]);
      continue;
    }
    const sample = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!sample?.[1] || sample[3] === undefined)
      throw new Error(`not a Prometheus sample line: ${JSON.stringify(line)}`);
    const value = Number(sample[3]);
    expect(Number.isNaN(value), line).toBe(false);
    samples.push({ name: sample[1], labels: parseLabels(sample[2] ?? ''), value });
  }
  return { samples, types };
}

function valuesOf(scrape: Scrape, name: string, labels: Record<string, string> = {}): number[] {
  return scrape.samples
    .filter((sample) => sample.name === name && Object.entries(labels).every(([k, v]) => sample.labels[k] === v))
    .map((sample) => sample.value);
}

function valuesOfLabel(scrape: Scrape, name: string, label: string): string[] {
  return scrape.samples.filter((sample) => sample.name === name).flatMap((sample) => sample.labels[label] ?? []);
}

function sumOf(scrape: Scrape, name: string, labels: Record<string, string> = {}): number {
  return valuesOf(scrape, name, labels).reduce((sum, value) => sum + value, 0);
}

/** The one sample of `name` with `labels`; fails when there is none or several. */
function only(scrape: Scrape, name: string, labels: Record<string, string> = {}): number {
  const values = valuesOf(scrape, name, labels);
  expect(values, `${name}${JSON.stringify(labels)} in\n${scrape.text}`).toHaveLength(1);
  return values[0] ?? Number.NaN;
}

let fixture: RenderRunFixture;
let dashboardRedis: Redis;
let server: ServerType;
let baseUrl: string;
let frozenServer: ServerType;
let frozenUrl: string;
/** What the main app reported while Redis could not be read. */
const redisErrors: Array<{ readonly error: unknown; readonly during: string }> = [];

function listen(app: Hono): Promise<{ server: ServerType; url: string }> {
  return new Promise((resolve) => {
    const started = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, (info: AddressInfo) =>
      resolve({ server: started, url: `http://127.0.0.1:${info.port}` }),
    );
  });
}

function close(target: ServerType | undefined): Promise<void> {
  return new Promise((resolve) => (target ? target.close(() => resolve()) : resolve()));
}

async function scrapeAt(url: string): Promise<Scrape> {
  const response = await fetch(`${url}/metrics`);
  const text = await response.text();
  return { status: response.status, contentType: response.headers.get('content-type'), text, ...parseExposition(text) };
}

const scrape = () => scrapeAt(baseUrl);

beforeAll(async () => {
  fixture = await prepareRenderRun(stack(), {
    images: 3,
    styles: ['day', 'night'],
    budgetMicros: 10_000_000,
    env: { DEPTHQ_TELEMETRY_INTERVAL_MS: '200' },
  });
  fixtures.push(fixture);
  // Its connection sees Redis stopped below; the commands that fail then say so themselves.
  fixture.redis.on('error', () => undefined);
  fixture.queue.on('error', () => undefined);
  // The dashboard's own connection, reconnecting for ever as a long-running process's would.
  dashboardRedis = createWorkerConnection(fixture.config.redisUrl, { name: 'depthq-dashboard-test' });
  dashboardRedis.on('error', () => undefined);
  const deps = { config: fixture.config, redis: dashboardRedis, ledger: fixture.ledger, queue: fixture.queue };
  const app = new Hono({ strict: false });
  mountMetricsRoutes(app, deps, { onRedisError: (error, during) => redisErrors.push({ error, during }) });
  ({ server, url: baseUrl } = await listen(app));
  // A second app with a short Redis timeout, scraped only while Redis is frozen (its connection stays "ready").
  const frozenApp = new Hono({ strict: false });
  mountMetricsRoutes(frozenApp, deps, { redisTimeoutMs: 1_000 });
  ({ server: frozenServer, url: frozenUrl } = await listen(frozenApp));
});

afterAll(async () => {
  await close(server);
  await close(frozenServer);
  if (dashboardRedis) await closeConnection(dashboardRedis);
});

describe('/metrics', () => {
  let finished: Scrape;
  let whileAlive: Scrape;

  it('moves as a real worker renders on the simulator: jobs, spend equal to the ledger, 429s, latency, heartbeats', async () => {
    const { run } = fixture;
    const model = fluxDepthPro.id;
    const before = await scrape();
    expect(before.status).toBe(200);
    expect(before.contentType).toContain('text/plain');
    expect(only(before, 'depthq_redis_up')).toBe(1);
    expect(only(before, 'depthq_run_jobs', { run, status: 'queued' })).toBe(6);
    expect(only(before, 'depthq_run_jobs_registered', { run, model })).toBe(6);
    expect(only(before, 'depthq_run_spent_microdollars', { run, model })).toBe(0);
    expect(only(before, 'depthq_run_budget_microdollars', { run, model })).toBe(10_000_000);
    expect(only(before, 'depthq_run_state', { run, state: 'active' })).toBe(1);
    expect(only(before, 'depthq_queue_jobs', { state: 'waiting' })).toBe(6);
    expect(valuesOf(before, 'depthq_images_stored_total')).toEqual([]);
    expect(only(before, 'depthq_workers_alive')).toBe(0);

    const simulator = stack().simulator;
    if (simulator === undefined) throw new Error('the stack has no simulator');
    const simulatorBefore = simulator.stats();
    // The first two API requests the worker sends are throttled: they must show up as 429s.
    simulator.throttleNext(2, 1);
    const worker = await startRenderWorker(fixture.config, { concurrency: 3, skipStartupChecks: true });
    workers.push(worker);
    const alive = await eventually(async () => {
      whileAlive = await scrape();
      return only(whileAlive, 'depthq_workers_alive') === 1;
    }, 30_000);
    expect(alive).toBe(true);
    expect(
      valuesOf(whileAlive, 'depthq_worker_heartbeat_age_seconds', { worker: `${hostname()}:${process.pid}` }),
    ).toHaveLength(1);

    const counters = await waitForCounters(fixture.ledger, run, (c) => c.succeeded === 6, 90_000);
    expect(counters).toMatchObject({ succeeded: 6, queued: 0, running: 0, failed: 0 });
    // Telemetry reaches Redis with the worker's next flush.
    const published = await eventually(
      async () => sumOf(await scrape(), 'depthq_images_stored_total', { model }) === 6,
      30_000,
    );
    expect(published).toBe(true);
    await worker.close();

    finished = await scrape();
    const money = await fixture.ledger.money(run);
    expect(money.spent).toBe(6 * fluxDepthPro.priceMicrosPerImage);
    expect(only(finished, 'depthq_run_spent_microdollars', { run, model })).toBe(money.spent);
    expect(only(finished, 'depthq_run_reserved_microdollars', { run, model })).toBe(money.reserved);
    expect(only(finished, 'depthq_run_possibly_billed_microdollars', { run, model })).toBe(money.possiblyBilled);
    expect(only(finished, 'depthq_run_jobs', { run, status: 'succeeded' })).toBe(6);
    expect(only(finished, 'depthq_run_jobs', { run, status: 'queued' })).toBe(0);

    // Every provider answer the simulator gave is counted once, by status; the 429s are among them.
    const simulatorAfter = simulator.stats();
    const throttled = simulatorAfter.throttled - simulatorBefore.throttled;
    expect(throttled).toBeGreaterThanOrEqual(2);
    expect(sumOf(finished, 'depthq_provider_responses_total', { status: '429' })).toBe(throttled);
    expect(sumOf(finished, 'depthq_provider_responses_total')).toBe(simulatorAfter.requests - simulatorBefore.requests);
    const createdOk = finished.samples
      .filter((s) => s.name === 'depthq_provider_responses_total' && s.labels.operation === 'create')
      .filter((s) => s.labels.status?.startsWith('2'))
      .reduce((sum, s) => sum + s.value, 0);
    expect(createdOk).toBe(simulatorAfter.creates - simulatorBefore.creates);
    expect(createdOk).toBe(6);
    expect(only(finished, 'depthq_provider_requests_per_image')).toBeCloseTo(
      sumOf(finished, 'depthq_provider_responses_total') / 6,
      9,
    );

    // One latency observation per prediction, a proper cumulative histogram.
    const labels = { model, status: 'succeeded' };
    expect(only(finished, 'depthq_prediction_duration_seconds_count', labels)).toBe(6);
    const buckets = finished.samples.filter(
      (s) => s.name === 'depthq_prediction_duration_seconds_bucket' && s.labels.status === 'succeeded',
    );
    expect(buckets.at(-1)?.labels.le).toBe('+Inf');
    expect(buckets.at(-1)?.value).toBe(6);
    expect(buckets.map((b) => b.value)).toEqual([...buckets.map((b) => b.value)].sort((a, b) => a - b));
    expect(only(finished, 'depthq_prediction_duration_seconds_sum', labels)).toBeGreaterThan(0);

    // A cleanly closed worker removes its heartbeat.
    expect(only(finished, 'depthq_workers_alive')).toBe(0);
    expect(valuesOf(finished, 'depthq_worker_heartbeat_age_seconds')).toEqual([]);
  });

  it('keeps showing the run after BullMQ removed its finished jobs: the numbers come from the ledger', async () => {
    await fixture.queue.clean(0, 1_000, 'completed');
    expect(await fixture.queue.getJobCounts('completed')).toEqual({ completed: 0 });
    const pruned = await scrape();
    const { run } = fixture;
    const model = fluxDepthPro.id;
    expect(only(pruned, 'depthq_queue_jobs', { state: 'completed' })).toBe(0);
    expect(only(pruned, 'depthq_run_jobs', { run, status: 'succeeded' })).toBe(6);
    expect(only(pruned, 'depthq_run_spent_microdollars', { run, model })).toBe((await fixture.ledger.money(run)).spent);
  });

  it('holds no secret and no job id: no API token, no S3 secret, no presigned signature', () => {
    const env = stack().env();
    const secrets = [env.REPLICATE_API_TOKEN, env.AWS_SECRET_ACCESS_KEY, fixture.config.replicate.apiToken];
    for (const secret of secrets) {
      expect(secret && secret.length > 3).toBeTruthy();
      expect(finished.text).not.toContain(secret);
    }
    for (const fragment of ['X-Amz-Signature', 'X-Amz-Credential', 'Signature=', 'Bearer', 'redis://']) {
      expect(finished.text).not.toContain(fragment);
    }
    for (const job of fixture.jobs) expect(finished.text).not.toContain(renderJobIdOf(job));
    for (const sample of finished.samples) expect(Object.keys(sample.labels)).not.toContain('job');
  });

  it('backs every query of the Grafana dashboard with a metric /metrics exposes', () => {
    const dashboard = JSON.parse(
      readFileSync(path.join(projectRoot, 'deploy/grafana/dashboards/depthq.json'), 'utf8'),
    ) as unknown;
    const queries: string[] = [];
    const walk = (node: unknown, key?: string): void => {
      if (typeof node === 'string' && (key === 'expr' || key === 'query' || key === 'definition')) queries.push(node);
      else if (Array.isArray(node)) for (const item of node) walk(item);
      else if (typeof node === 'object' && node !== null) for (const [k, v] of Object.entries(node)) walk(v, k);
    };
    walk(dashboard);
    expect(queries.length).toBeGreaterThan(15);
    // The worker's heartbeat series exist only while it runs; everything else is on the scrape after the run.
    const exposedSeries = new Set([...whileAlive.samples, ...finished.samples].map((sample) => sample.name));
    const named = new Set(queries.flatMap((query) => query.match(/\bdepthq_[a-z0-9_]+/g) ?? []));
    expect(named.size).toBeGreaterThan(10);
    for (const name of named) {
      expect(exposedSeries.has(name), `${name} (in the Grafana dashboard) is not on /metrics`).toBe(true);
    }
    // The panels use the datasource the provisioning file creates.
    const datasource = readFileSync(
      path.join(projectRoot, 'deploy/grafana/provisioning/datasources/prometheus.yml'),
      'utf8',
    );
    const uid = /uid: (\S+)/.exec(datasource)?.[1];
    expect(uid).toBe('depthq-prometheus');
    const uids = new Set(JSON.stringify(dashboard).match(/"uid":"[^"]+"/g));
    expect(uids).toEqual(new Set([`"uid":"${uid}"`, '"uid":"depthq-overview"']));
  });
});

describe('bounded scrapes', () => {
  it('exports the newest DEPTHQ_METRICS_RUNS runs, counts the rest, and leaves out a run whose ledger does not parse', async () => {
    const meta = (name: string) => ({
      model: fluxDepthPro.id,
      budgetMicros: null,
      manifest: { name, sha256: '0'.repeat(64) },
      output: { bucket: fixture.bucket, prefix: 'out', keyTemplate: '{run}/{style}/{id}.{ext}' },
      defaults: {},
    });
    const middle = `${fixture.run}-middle`;
    const newest = `${fixture.run}-newest`;
    await fixture.ledger.createRun(middle, meta('middle.csv'));
    // ISO timestamps order the runs: make sure the next one is created a millisecond later.
    await new Promise((resolve) => setTimeout(resolve, 5));
    await fixture.ledger.createRun(newest, meta('newest.csv'));
    await fixture.redis.hset(ledgerKeys(fixture.prefix, newest).money, 'spent', 'not micro-dollars');

    const app = new Hono({ strict: false });
    const config = { ...fixture.config, metrics: { runLimit: 2 } };
    mountMetricsRoutes(app, { config, redis: dashboardRedis, ledger: fixture.ledger, queue: fixture.queue });
    const response = await app.request('/metrics');
    const text = await response.text();
    const bounded: Scrape = { status: response.status, contentType: null, text, ...parseExposition(text) };
    expect(bounded.status).toBe(200);
    expect(only(bounded, 'depthq_redis_up')).toBe(1);
    expect(only(bounded, 'depthq_metrics_runs_known')).toBe(3);
    expect(only(bounded, 'depthq_metrics_runs_exported')).toBe(1);
    expect(only(bounded, 'depthq_metrics_runs_unreadable')).toBe(1);
    const runs = new Set(valuesOfLabel(bounded, 'depthq_run_jobs_registered', 'run'));
    expect(runs).toEqual(new Set([middle]));
    // The oldest run is beyond the limit; its ledger is untouched, only not exported.
    expect((await fixture.ledger.counters(fixture.run)).succeeded).toBe(6);
  });
});

describe('Redis away', () => {
  it('a frozen Redis (connection open, no answers) still gives a 200 scrape with depthq_redis_up 0 after the timeout', async () => {
    const redis = stack().redis;
    if (redis === undefined) throw new Error('the stack has no Redis');
    process.kill(redis.pid, 'SIGSTOP');
    try {
      const frozen = await scrapeAt(frozenUrl);
      expect(frozen.status).toBe(200);
      expect(only(frozen, 'depthq_redis_up')).toBe(0);
      expect(frozen.samples.map((sample) => sample.name)).toEqual(['depthq_redis_up']);
    } finally {
      process.kill(redis.pid, 'SIGCONT');
    }
    expect(await eventually(async () => only(await scrape(), 'depthq_redis_up') === 1, 30_000)).toBe(true);
  });

  it('a stopped Redis gives a 200 scrape with depthq_redis_up 0 and nothing else, and /healthz 503; both recover', async () => {
    const redis = stack().redis;
    if (redis === undefined) throw new Error('the stack has no Redis');
    expect((await fetch(`${baseUrl}/healthz`)).status).toBe(200);
    redisErrors.length = 0;
    await redis.kill();
    try {
      const down = await scrape();
      expect(down.status).toBe(200);
      expect(only(down, 'depthq_redis_up')).toBe(0);
      // The other families keep their HELP/TYPE lines but have no samples: absent, not 0.
      expect(down.samples.map((sample) => sample.name)).toEqual(['depthq_redis_up']);
      expect(down.types.get('depthq_run_spent_microdollars')).toBe('gauge');
      const health = await fetch(`${baseUrl}/healthz`);
      expect(health.status).toBe(503);
      expect(await health.json()).toEqual({ status: 'unavailable', redis: 'down' });
      // The answers say nothing of why; the dashboard's log hook does.
      expect(redisErrors.map(({ during }) => during)).toEqual(['metrics', 'healthz']);
    } finally {
      await redis.restart();
    }
    expect(await eventually(async () => (await fetch(`${baseUrl}/healthz`)).status === 200, 30_000)).toBe(true);
    // The queue's own connection reconnects on its own schedule.
    expect(await eventually(async () => only(await scrape(), 'depthq_redis_up') === 1, 30_000)).toBe(true);
  });
});
