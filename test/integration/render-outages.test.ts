/**
 * Outages in the middle of a run — S3 down while predictions run or outputs upload, the provider unreachable while a
 * prediction runs — with an in-process render worker on the real local stack (redis-server, s3rver, the simulator).
 * The worker's S3 endpoint is a test proxy (test/helpers/latency-proxy.ts) that can go down while everything else stays
 * up; presigned control-image URLs point at it too, so the simulator's fetch of a control image needs S3 as well.
 *
 * What must hold is what the invoice will say. Every scenario checks the billing oracle — no input billed more than
 * once at the simulator, the ledger's `spent` equal to the images the simulator billed × the price to the micro-dollar
 * (or, for a prediction depthq lost sight of, kept as `possiblyBilled`), nothing left reserved — and that a job resumes
 * the prediction it paid for instead of paying again.
 *
 * Each scenario has its own simulator (its stats count that scenario only), proxies, key prefix and run; all of them
 * and the worker are closed after each test. Nothing waits a fixed time for something to happen: every wait is on an
 * observed condition with a timeout. The one timed wait is the length of an outage, which is the fault itself.
 */
import { Job } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { type Checkpoint, readCheckpoint } from '../../src/core/checkpoint.js';
import { sidecarKeyOf } from '../../src/core/keys.js';
import { fluxDepthDev, fluxDepthPro, type ModelDefinition } from '../../src/core/models.js';
import { costOf } from '../../src/core/money.js';
import { type RenderJob, renderJobIdOf, reservationOfJob } from '../../src/core/render-job.js';
import type { ResultRow } from '../../src/ledger/run-ledger.js';
import { LOCAL_SIMULATOR_TOKEN, type LocalSimulatorOptions, type LocalStack } from '../../src/local/stack.js';
import { retryRunJobs } from '../../src/runs/retry-jobs.js';
import { nsfwError, type RunningSimulator, startSimulator } from '../../src/sim/index.js';
import { getObjectBytes } from '../../src/storage/s3.js';
import { type RunningRenderWorker, startRenderWorker } from '../../src/worker/start.js';
import { type LatencyProxy, type ProxiedRequestHead, startLatencyProxy } from '../helpers/latency-proxy.js';
import {
  getSimulatorPrediction,
  listSimulatorPredictions,
  predictionSubjectOf,
  prepareRenderRun,
  type RenderRunFixture,
  type SimulatorPrediction,
  waitForCounters,
} from '../helpers/render-run.js';
import { useLocalStack } from '../helpers/stack.js';
import { useWorkerProcesses, waitForCondition } from '../helpers/worker-process.js';

// Each scenario starts a simulator of its own (see `setUpScene`).
const stack = useLocalStack({ simulator: false });
// No worker children here: used for its per-test cleanup, which closes what a test registered in reverse order.
const { deferCleanup } = useWorkerProcesses();

/** One run on its own simulator, behind an S3 proxy (and, when asked, a provider proxy). */
interface Scene {
  readonly fixture: RenderRunFixture;
  readonly model: ModelDefinition;
  readonly simulator: RunningSimulator;
  /** The simulator seen directly (not through the provider proxy), for the test's own reads. */
  readonly simulatorView: LocalStack;
  /** The worker's S3_ENDPOINT. */
  readonly s3Proxy: LatencyProxy;
  /** The worker's REPLICATE_BASE_URL, when the scenario takes the provider down. */
  readonly providerProxy?: LatencyProxy;
}

interface SceneOptions {
  readonly images: number;
  readonly styles: readonly string[];
  readonly simulator?: LocalSimulatorOptions;
  /** DEPTHQ_* settings of the worker. */
  readonly env?: Record<string, string>;
  readonly model?: ModelDefinition;
  readonly providerProxy?: boolean;
}

async function setUpScene(options: SceneOptions): Promise<Scene> {
  const s3 = stack().s3;
  if (s3 === undefined) throw new Error('the stack has no S3');
  const simulator = await startSimulator({
    apiToken: LOCAL_SIMULATOR_TOKEN,
    startDelayMs: { min: 5, max: 15 },
    latencyMs: { min: 20, max: 60 },
    outputMaxSide: 64,
    createsPerMinute: 100_000,
    requestsPerMinute: 100_000,
    ...options.simulator,
  });
  deferCleanup(() => simulator.close());
  const s3Proxy = await startLatencyProxy({ target: s3.endpoint });
  deferCleanup(() => s3Proxy.close());
  const providerProxy = options.providerProxy ? await startLatencyProxy({ target: simulator.url }) : undefined;
  if (providerProxy) deferCleanup(() => providerProxy.close());
  const model = options.model ?? fluxDepthPro;
  const fixture = await prepareRenderRun(stack(), {
    images: options.images,
    styles: options.styles,
    model,
    env: {
      REPLICATE_BASE_URL: providerProxy ? `${providerProxy.url}/v1` : simulator.baseUrl,
      REPLICATE_API_TOKEN: LOCAL_SIMULATOR_TOKEN,
      // Every S3 request of the worker goes through the proxy; presigned control-image URLs then point at it too.
      S3_ENDPOINT: s3Proxy.url,
      DEPTHQ_CREATES_PER_MINUTE: '100000',
      ...options.env,
    },
  });
  deferCleanup(() => fixture.close());
  const simulatorView: LocalStack = {
    simulator,
    env: () => ({ REPLICATE_BASE_URL: simulator.baseUrl, REPLICATE_API_TOKEN: LOCAL_SIMULATOR_TOKEN }),
    stop: async () => undefined,
  };
  return { fixture, model, simulator, simulatorView, s3Proxy, ...(providerProxy ? { providerProxy } : {}) };
}

async function startWorkerFor(scene: Scene, concurrency: number): Promise<RunningRenderWorker> {
  const worker = await startRenderWorker(scene.fixture.config, { concurrency });
  // A short deadline: a scenario that failed may leave jobs in flight against a proxy that is down.
  deferCleanup(() => worker.close(2_000));
  return worker;
}

/** The simulator's fetches of presigned control-image URLs that got their answer (the worker's own S3 calls are signed in a header). */
function controlFetchesAnswered(proxy: LatencyProxy): number {
  return proxy
    .requests()
    .filter(
      (request) =>
        request.method === 'GET' && request.path.includes('X-Amz-Signature=') && request.state === 'completed',
    ).length;
}

/** The upload of an output image (not its sidecar) into the run's output prefix. */
function isOutputUpload(fixture: RenderRunFixture): (request: ProxiedRequestHead) => boolean {
  return (request) => {
    const path = decodeURIComponent(request.path.split('?')[0] ?? request.path);
    return request.method === 'PUT' && path.startsWith(`/${fixture.bucket}/out/`) && !path.endsWith('.json');
  };
}

async function checkpointOf(fixture: RenderRunFixture, jobId: string): Promise<Checkpoint> {
  const job = await Job.fromId(fixture.queue, jobId);
  if (job === undefined) throw new Error(`job ${jobId} is gone from BullMQ`);
  return readCheckpoint((job.data as Record<string, unknown>).checkpoint);
}

async function rowsOf(fixture: RenderRunFixture): Promise<Map<string, ResultRow>> {
  const rows = new Map<string, ResultRow>();
  for await (const { jobId, row } of fixture.ledger.results(fixture.run)) rows.set(jobId, row);
  return rows;
}

function onlyJob(fixture: RenderRunFixture): { readonly job: RenderJob; readonly jobId: string } {
  const [job] = fixture.jobs;
  if (job === undefined || fixture.jobs.length !== 1) throw new Error('the scene should have exactly one job');
  return { job, jobId: renderJobIdOf(job) };
}

/** Every prediction the simulator holds for `job`, oldest first. */
function predictionsFor(predictions: readonly SimulatorPrediction[], job: RenderJob): SimulatorPrediction[] {
  return predictions.filter((p) => predictionSubjectOf(p.input) === predictionSubjectOf(job.input)).reverse();
}

/**
 * The billing oracle: no input billed twice; `spent` is what the simulator billed, to the micro-dollar; nothing is still
 * reserved; `possiblyBilled` is what the scenario expects (a prediction depthq lost sight of, a flagged one).
 */
async function expectBillingOracle(scene: Scene, possiblyBilled = 0): Promise<void> {
  const stats = scene.simulator.stats();
  expect.soft(stats.duplicateBilledInputs, 'inputs the provider billed more than once').toEqual([]);
  expect.soft(stats.inputsBilledMoreThanOnce, 'inputs billed more than once').toBe(0);
  expect
    .soft(await scene.fixture.ledger.money(scene.fixture.run), 'ledger money vs. the images the provider billed')
    .toEqual({
      budget: null,
      reserved: 0,
      spent: costOf(scene.model.priceMicrosPerImage, stats.billedImages),
      possiblyBilled,
    });
}

async function sidecarPredictionId(fixture: RenderRunFixture, outputKey: string): Promise<unknown> {
  const bytes = await getObjectBytes(fixture.s3, { bucket: fixture.bucket, key: sidecarKeyOf(outputKey) });
  const sidecar = JSON.parse(Buffer.from(bytes).toString('utf8')) as { prediction?: { id?: unknown } };
  return sidecar.prediction?.id;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('render outages', () => {
  it('a. S3 down while 12 predictions run, until every job used its attempts; a same-seed retry stores the first prediction', async () => {
    const scene = await setUpScene({
      images: 6,
      styles: ['day', 'night'],
      simulator: { latencyMs: { min: 1_500, max: 1_800 } },
      env: { DEPTHQ_JOB_ATTEMPTS: '2', DEPTHQ_BACKOFF_BASE_MS: '100', DEPTHQ_POST_CREATE_RETRY_MS: '1500' },
    });
    const { fixture, simulator, s3Proxy } = scene;
    const { ledger, queue, run, config } = fixture;
    const jobs = fixture.jobs;
    expect(jobs).toHaveLength(12);
    // Output uploads are held until the outage cuts them, so no job can store its image before S3 goes down, however
    // slowly the 12 creates are spread on a loaded machine.
    const outputUpload = isOutputUpload(fixture);
    s3Proxy.setDelay((request) => (outputUpload(request) ? 60_000 : 0));
    await startWorkerFor(scene, 12);

    // Down once the simulator created all 12 and fetched their control images (which needs S3): every prediction will
    // succeed, and every output will find S3 down.
    await waitForCondition(
      'the simulator to create 12 predictions and fetch their control images',
      () => simulator.stats().creates === 12 && controlFetchesAnswered(s3Proxy) >= 12,
      { timeoutMs: 15_000 },
    );
    s3Proxy.setDown(true);
    s3Proxy.setDelay(() => 0);
    const created = await listSimulatorPredictions(scene.simulatorView);
    expect(created.filter((prediction) => !['processing', 'succeeded'].includes(prediction.status))).toEqual([]);
    const firstPredictionOf = new Map(
      jobs.map((job) => [renderJobIdOf(job), predictionsFor(created, job).map((prediction) => prediction.id)]),
    );
    for (const [jobId, ids] of firstPredictionOf) expect(ids, jobId).toHaveLength(1);

    const failed = await waitForCounters(ledger, run, (counters) => counters.failed === 12, 20_000);
    expect(failed, 'every job failed for good while S3 was down').toMatchObject({ total: 12, failed: 12 });
    await waitForCondition('the 12 predictions to succeed', () => simulator.stats().predictions.succeeded === 12, {
      timeoutMs: 10_000,
    });
    expect(s3Proxy.droppedConnections()).toBeGreaterThan(0);
    s3Proxy.setDown(false);

    const meta = await ledger.getRun(run);
    if (meta === undefined) throw new Error('no run meta');
    const outcome = await retryRunJobs(
      queue,
      ledger,
      run,
      meta,
      { failed: true, flagged: false, reseed: false },
      { retentionMs: config.replicate.retentionMs, marginMs: config.replicate.retentionMarginMs },
    );
    expect(outcome.skipped).toEqual([]);
    expect(outcome.requeued).toHaveLength(12);

    const counters = await waitForCounters(ledger, run, (c) => c.succeeded === 12, 20_000);
    expect.soft(counters, 'every job succeeded after the retry').toMatchObject({ total: 12, succeeded: 12, failed: 0 });
    // Each input paid once: the retry stored the prediction each job already had, and created none.
    const stats = simulator.stats();
    expect.soft(stats.creates, 'predictions created in all').toBe(12);
    expect.soft(stats.billedImages, 'images billed').toBe(12);
    await expectBillingOracle(scene);
    const rows = await rowsOf(fixture);
    for (const [jobId, [first]] of firstPredictionOf) {
      const row = rows.get(jobId);
      const ids = row?.predictionIds ?? [];
      expect.soft(new Set(ids).size, `${jobId}: predictionIds has no duplicates`).toBe(ids.length);
      expect.soft(ids, `${jobId}: its predictions`).toEqual([first]);
      expect.soft(row?.status, `${jobId}: status`).toBe('succeeded');
      expect.soft(row?.predictionId, `${jobId}: the prediction kept`).toBe(first);
      expect.soft(row?.costMicros, `${jobId}: cost`).toBe(fluxDepthPro.priceMicrosPerImage);
      if (row?.status === 'succeeded' && row.outputKey !== undefined) {
        expect.soft(await sidecarPredictionId(fixture, row.outputKey), `${jobId}: sidecar prediction.id`).toBe(first);
      }
    }
  }, 60_000);

  it('b. short retention: a 3.5 s S3 outage in the middle of 96 jobs; every job succeeds, no output expires', async () => {
    // Outputs are kept 10 s and the backlog after the outage is longer than that (76+ jobs of ~250 ms, two at a time).
    // A job whose upload the outage cut holds a prediction at most ~2 s old (its upload is held before the outage):
    // retried inside the job it has ~9 s to store it, whatever the load; sent to the back of the queue it comes back
    // after the backlog, past the retention.
    const retentionMs = 10_000;
    const outageMs = 3_500;
    const scene = await setUpScene({
      images: 48,
      styles: ['day', 'night'],
      simulator: { retentionMs, startDelayMs: { min: 2, max: 5 }, latencyMs: { min: 150, max: 200 } },
      env: {
        DEPTHQ_PROVIDER_RETENTION_MS: String(retentionMs),
        DEPTHQ_RETENTION_MARGIN_MS: '1000',
        // Failures before a create (the control image's HEAD) spend attempts by design: enough of them that an outage
        // this short can never use them all up, whatever the backoff's jitter draws. This scenario is about the
        // failures after the create.
        DEPTHQ_JOB_ATTEMPTS: '20',
        DEPTHQ_BACKOFF_BASE_MS: '300',
      },
    });
    const { fixture, simulator, s3Proxy } = scene;
    const { ledger, run } = fixture;
    const total = fixture.jobs.length;
    expect(total).toBe(96);
    await startWorkerFor(scene, 2);

    await waitForCounters(ledger, run, (counters) => counters.succeeded >= 20, 30_000);
    // The outage starts while an output upload is in flight, so at least one job holds a succeeded, unstored prediction.
    // Its output is deleted 10 s after its creation: retried inside the job it is stored once S3 is back; left to the
    // queue's jittered backoff it may come back too late (output-expired), depending on what the jitter draws.
    const outputUpload = isOutputUpload(fixture);
    s3Proxy.setDelay((request) => (outputUpload(request) ? 2_000 : 0));
    await waitForCondition(
      'an output upload to be in flight',
      () => s3Proxy.inFlight().some((request) => outputUpload(request)),
      { timeoutMs: 10_000 },
    );
    s3Proxy.setDown(true);
    s3Proxy.setDelay(() => 0);
    const atOutage = await ledger.counters(run);
    await sleep(outageMs);
    s3Proxy.setDown(false);
    expect(
      s3Proxy.requests().some((request) => request.state === 'dropped' && outputUpload(request)),
      'the outage cut an output upload',
    ).toBe(true);
    expect(atOutage.succeeded, 'the outage came in the middle of the run').toBeLessThan(total - 10);

    const counters = await waitForCounters(
      ledger,
      run,
      (c) => c.succeeded + c.failed + c.flagged + c.canceled === total,
      60_000,
    );
    const rows = await rowsOf(fixture);
    const unsuccessful = [...rows]
      .filter(([, row]) => row.status !== 'succeeded')
      .map(([jobId, row]) => ({ jobId, status: row.status, reason: row.reason, error: row.error }));
    expect.soft(unsuccessful, 'jobs that did not succeed').toEqual([]);
    expect.soft(counters).toMatchObject({ total, succeeded: total });
    expect
      .soft(
        [...rows.values()].filter((row) => row.reason === 'output-expired'),
        'outputs that expired before they were stored',
      )
      .toEqual([]);
    for (const [jobId, row] of rows) {
      const ids = row.predictionIds ?? [];
      expect.soft(new Set(ids).size, `${jobId}: predictionIds has no duplicates`).toBe(ids.length);
    }
    await expectBillingOracle(scene);
    expect.soft(simulator.stats().billedImages, 'images billed').toBe(total);
  }, 90_000);

  it('c1. the provider unreachable while the prediction runs, on the last attempt: its reservation is possibly billed', async () => {
    const scene = await setUpScene({
      images: 1,
      styles: ['day'],
      providerProxy: true,
      // Still running long after the job has given up.
      simulator: { latencyMs: { min: 30_000, max: 30_000 } },
      env: { DEPTHQ_JOB_ATTEMPTS: '1', DEPTHQ_POST_CREATE_RETRY_MS: '1000', DEPTHQ_CREATE_WAIT_SECONDS: '1' },
    });
    const { fixture, simulator } = scene;
    const { ledger, run } = fixture;
    const { job, jobId } = onlyJob(fixture);
    await startWorkerFor(scene, 1);

    // Down once the job knows its prediction (the create's answer is in its checkpoint): from then on it can only poll.
    let predictionId: string | undefined;
    await waitForCondition(
      "the job's create to be answered",
      async () => {
        predictionId = (await checkpointOf(fixture, jobId)).predictionId;
        return predictionId !== undefined;
      },
      { timeoutMs: 10_000 },
    );
    scene.providerProxy?.setDown(true);

    // Slow by the product, not the test: each poll that meets the dead provider is retried by the provider's transport
    // (6 tries, jittered backoff: up to ~15 s) before the job sees the failure, and the post-create window lets the job
    // start one more such poll. So the job gives up 10–30 s after the outage began.
    const counters = await waitForCounters(ledger, run, (c) => c.failed === 1, 45_000);
    expect(counters, 'the job failed for good').toMatchObject({ total: 1, failed: 1 });
    const prediction = await getSimulatorPrediction(scene.simulatorView, predictionId ?? '');
    expect(prediction.status, 'the prediction still runs: it will be billed').toBe('processing');
    const row = await ledger.result(run, jobId);
    expect.soft(row?.predictionIds).toEqual([predictionId]);
    expect.soft(simulator.stats().creates).toBe(1);
    // Not released: the provider will bill a prediction that runs. Nothing is billed yet, so nothing is spent.
    await expectBillingOracle(scene, reservationOfJob(job));
  }, 60_000);

  it('c2. S3 down after the prediction succeeded, on the last attempt: the image is spent', async () => {
    const scene = await setUpScene({
      images: 1,
      styles: ['day'],
      simulator: { latencyMs: { min: 1_000, max: 1_000 } },
      env: { DEPTHQ_JOB_ATTEMPTS: '1', DEPTHQ_POST_CREATE_RETRY_MS: '1000' },
    });
    const { fixture, simulator, s3Proxy } = scene;
    const { ledger, run } = fixture;
    const { jobId } = onlyJob(fixture);
    // The output upload is held until the outage cuts it: the image cannot be stored before S3 goes down.
    const outputUpload = isOutputUpload(fixture);
    s3Proxy.setDelay((request) => (outputUpload(request) ? 60_000 : 0));
    await startWorkerFor(scene, 1);

    await waitForCondition(
      'the simulator to fetch the control image',
      () => simulator.stats().creates === 1 && controlFetchesAnswered(s3Proxy) >= 1,
      { timeoutMs: 10_000 },
    );
    s3Proxy.setDown(true);
    s3Proxy.setDelay(() => 0);
    const counters = await waitForCounters(ledger, run, (c) => c.failed === 1, 20_000);
    expect(counters, 'the job failed for good').toMatchObject({ total: 1, failed: 1 });
    await waitForCondition('the prediction to succeed', () => simulator.stats().predictions.succeeded === 1, {
      timeoutMs: 10_000,
    });
    const [prediction] = await listSimulatorPredictions(scene.simulatorView);
    const row = await ledger.result(run, jobId);
    expect.soft(row?.predictionIds).toEqual([prediction?.id]);
    expect.soft(simulator.stats()).toMatchObject({ creates: 1, billedImages: 1 });
    // The provider billed the image: it is spent, stored or not.
    await expectBillingOracle(scene);
  }, 60_000);

  it('d. flux-depth-dev refuses the input with its NSFW message: the row is flagged after one create', async () => {
    const scene = await setUpScene({
      images: 1,
      styles: ['day'],
      model: fluxDepthDev,
      simulator: { faults: { flaggedRate: 1 } },
      env: { DEPTHQ_JOB_ATTEMPTS: '3' },
    });
    const { fixture, simulator } = scene;
    const { ledger, run } = fixture;
    const { job, jobId } = onlyJob(fixture);
    await startWorkerFor(scene, 1);

    const counters = await waitForCounters(ledger, run, (c) => c.flagged + c.failed === 1, 20_000);
    const predictions = predictionsFor(await listSimulatorPredictions(scene.simulatorView), job);
    const row = await ledger.result(run, jobId);
    expect.soft(predictions.map((p) => [p.status, p.error])).toEqual([['failed', nsfwError]]);
    expect.soft(simulator.stats().creates, 'creates for the flagged input').toBe(1);
    expect.soft(counters).toMatchObject({ total: 1, flagged: 1, failed: 0 });
    expect.soft(row).toMatchObject({ status: 'flagged', predictionIds: predictions.slice(0, 1).map((p) => p.id) });
    expect.soft(row?.error).toContain('NSFW content detected');
    // A flagged prediction may be billed (unconfirmed): its reservation is kept apart from `spent`.
    await expectBillingOracle(scene, reservationOfJob(job));
  }, 60_000);
});
