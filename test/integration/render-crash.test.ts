/**
 * Crash safety of the render worker, with real worker processes on the real local stack (redis-server, s3rver, the
 * simulator): a worker SIGKILLed at each step of a job, and two workers running the same job at once.
 *
 * Each kill happens at a state the test OBSERVES — the ledger, the simulator, the job's checkpoint in BullMQ, the
 * requests a latency proxy holds — never at a switch inside production code. The windows are widened with real latency
 * (a slow S3 in front of s3rver, slow predictions) and nothing else.
 *
 * Each test has its own simulator (its stats count that test's one job only), its own S3 latency proxy, key prefix and
 * run; the worker children are killed after each test whatever happened.
 */
import { createHash } from 'node:crypto';
import { Job } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { type Checkpoint, readCheckpoint } from '../../src/core/checkpoint.js';
import { sidecarKeyOf } from '../../src/core/keys.js';
import { fluxDepthPro } from '../../src/core/models.js';
import { type RenderJob, renderJobIdOf } from '../../src/core/render-job.js';
import type { LocalSimulatorOptions } from '../../src/local/stack.js';
import { LOCAL_SIMULATOR_TOKEN } from '../../src/local/stack.js';
import { type RunningSimulator, startSimulator } from '../../src/sim/index.js';
import { getObjectBytes } from '../../src/storage/s3.js';
import { type DelayRule, type LatencyProxy, startLatencyProxy } from '../helpers/latency-proxy.js';
import { prepareRenderRun, type RenderRunFixture, waitForCounters, workerEnvironment } from '../helpers/render-run.js';
import { useLocalStack } from '../helpers/stack.js';
import {
  startWorker,
  useWorkerProcesses,
  type WorkerProcess,
  waitForCondition,
  waitForLogLine,
} from '../helpers/worker-process.js';

// The simulator of each test is its own (see `setUpScene`); the stack's would only share its stats between tests.
const stack = useLocalStack({ simulator: false });
const { deferCleanup } = useWorkerProcesses();

/** One render job, a simulator and an S3 latency proxy of its own, and the environment of a worker child for them. */
interface Scene {
  readonly fixture: RenderRunFixture;
  readonly job: RenderJob;
  readonly jobId: string;
  readonly simulator: RunningSimulator;
  readonly s3Proxy: LatencyProxy;
  readonly env: Record<string, string>;
}

interface SceneOptions {
  readonly simulator?: LocalSimulatorOptions;
  /** Latency added to the worker's S3 requests (and to the simulator's fetch of the presigned control image). */
  readonly s3Delay?: (job: RenderJob) => DelayRule;
  readonly env?: Record<string, string>;
}

async function setUpScene(options: SceneOptions = {}): Promise<Scene> {
  const s3 = stack().s3;
  if (s3 === undefined) throw new Error('the stack has no S3');
  const simulator = await startSimulator({
    apiToken: LOCAL_SIMULATOR_TOKEN,
    startDelayMs: { min: 10, max: 30 },
    latencyMs: { min: 100, max: 200 },
    outputMaxSide: 256,
    ...options.simulator,
  });
  deferCleanup(() => simulator.close());
  const s3Proxy = await startLatencyProxy({ target: s3.endpoint });
  deferCleanup(() => s3Proxy.close());
  const fixture = await prepareRenderRun(stack(), { images: 1, styles: ['day'] });
  deferCleanup(() => fixture.close());
  const job = fixture.jobs[0];
  if (job === undefined) throw new Error('the run has no job');
  if (options.s3Delay) s3Proxy.setDelay(options.s3Delay(job));
  const env = workerEnvironment(stack(), fixture.prefix, {
    REPLICATE_BASE_URL: simulator.baseUrl,
    REPLICATE_API_TOKEN: LOCAL_SIMULATOR_TOKEN,
    // Every S3 request of the worker goes through the proxy; presigned control-image URLs then point at it too.
    S3_ENDPOINT: s3Proxy.url,
    ...options.env,
  });
  return { fixture, job, jobId: renderJobIdOf(job), simulator, s3Proxy, env };
}

async function checkpointOf(scene: Scene): Promise<Checkpoint> {
  const job = await Job.fromId(scene.fixture.queue, scene.jobId);
  if (job === undefined) throw new Error(`job ${scene.jobId} is gone from BullMQ`);
  return readCheckpoint((job.data as Record<string, unknown>).checkpoint);
}

/** The path of an object in a path-style S3 request. */
function objectPath(ref: { readonly bucket: string; readonly key: string }): string {
  return `/${ref.bucket}/${ref.key}`;
}

/** The request's path without its query string, decoded: what an S3 object path is compared as. */
function pathnameOf(path: string): string {
  return decodeURIComponent(path.split('?')[0] ?? path);
}

/** The control image's HEAD and GET, which come between the reservation and the create, take 2.5 s each. */
function slowControlImage(job: RenderJob): DelayRule {
  return (request) => (pathnameOf(request.path) === objectPath(job.controlImage) ? 2_500 : 0);
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The bytes the simulator serves as the prediction's output. */
async function simulatorOutputBytes(scene: Scene, predictionId: string): Promise<Uint8Array> {
  const headers = { Authorization: `Bearer ${LOCAL_SIMULATOR_TOKEN}` };
  const prediction = (await (
    await fetch(`${scene.simulator.baseUrl}/predictions/${predictionId}`, { headers })
  ).json()) as {
    output: unknown;
  };
  if (typeof prediction.output !== 'string') throw new Error(`prediction ${predictionId} has no single output`);
  const response = await fetch(prediction.output);
  expect(response.status).toBe(200);
  return new Uint8Array(await response.arrayBuffer());
}

async function readSidecar(scene: Scene): Promise<Record<string, unknown>> {
  const { output } = scene.job;
  const bytes = await getObjectBytes(scene.fixture.s3, { bucket: output.bucket, key: sidecarKeyOf(output.key) });
  return JSON.parse(Buffer.from(bytes).toString('utf8')) as Record<string, unknown>;
}

interface StoredJob {
  readonly predictionId: string;
  readonly outputSha256: string;
  readonly sidecar: Record<string, unknown>;
  readonly checkpoint: Checkpoint;
}

/**
 * The job ended exactly once: succeeded in the ledger and in BullMQ, one prediction created and billed once at the
 * simulator, money settled at one image's price, the output stored byte-identical to what the simulator served, with a
 * sidecar whose sha256 matches.
 */
async function expectCompletedOnce(scene: Scene, workers: readonly WorkerProcess[]): Promise<StoredJob> {
  const { fixture, jobId, job } = scene;
  const counters = await waitForCounters(fixture.ledger, fixture.run, (c) => c.succeeded === 1, 45_000);
  expect(counters, workers.map((worker) => worker.describe()).join('\n')).toMatchObject({
    total: 1,
    succeeded: 1,
    failed: 0,
    running: 0,
  });
  // The ledger row is written just before the job's last fenced write and BullMQ's move to completed.
  await waitForCondition(
    'the job completing in BullMQ',
    async () => (await fixture.queue.getJobState(jobId)) === 'completed',
    {
      timeoutMs: 10_000,
    },
  );

  const row = await fixture.ledger.result(fixture.run, jobId);
  expect(row).toMatchObject({ status: 'succeeded', costMicros: fluxDepthPro.priceMicrosPerImage });
  const predictionId = row?.predictionId;
  if (predictionId === undefined) throw new Error('the succeeded row names no prediction');
  // One prediction across every attempt of the job: the resumed one found it again instead of creating another.
  expect(row?.predictionIds).toEqual([predictionId]);

  // This simulator served this one job only: its totals are the job's.
  const stats = scene.simulator.stats();
  expect(stats).toMatchObject({ creates: 1, billedPredictions: 1, billedImages: 1, inputsBilledMoreThanOnce: 0 });
  expect(await fixture.ledger.money(fixture.run)).toMatchObject({
    spent: fluxDepthPro.priceMicrosPerImage,
    reserved: 0,
    possiblyBilled: 0,
  });

  const bytes = await getObjectBytes(fixture.s3, job.output);
  expect(sha256(bytes)).toBe(sha256(await simulatorOutputBytes(scene, predictionId)));
  const sidecar = await readSidecar(scene);
  expect(sidecar).toMatchObject({
    prediction: { id: predictionId, allPredictionIds: [predictionId] },
    output: { key: job.output.key, sha256: sha256(bytes), size: bytes.length },
    seed: job.input.seed,
  });

  const checkpoint = await checkpointOf(scene);
  expect(checkpoint).toMatchObject({ recorded: true, predictionId, predictionIds: [predictionId] });
  return { predictionId, outputSha256: sha256(bytes), sidecar, checkpoint };
}

describe('a worker child SIGKILLed inside a job', () => {
  it('after reserve, before the create: the job resumes, creates once, and completes', async () => {
    const scene = await setUpScene({ s3Delay: slowControlImage });
    const victim = await startWorker({ env: scene.env, name: 'victim' });

    await waitForCondition(
      'the reservation being held while nothing was sent to the simulator',
      async () =>
        (await scene.fixture.ledger.money(scene.fixture.run)).reserved === fluxDepthPro.priceMicrosPerImage &&
        scene.simulator.stats().createRequests === 0 &&
        scene.s3Proxy.inFlight().length > 0,
      { timeoutMs: 20_000, workers: [victim] },
    );
    await victim.kill();
    expect(scene.simulator.stats().createRequests).toBe(0);
    scene.s3Proxy.setDelay(() => 0);

    const fresh = await startWorker({ env: scene.env, name: 'fresh' });
    await expectCompletedOnce(scene, [fresh]);
  });

  it('between the create and its checkpoint: the resumed job adopts the prediction instead of creating another', async () => {
    // The create holds (Prefer: wait) until the 5 s prediction ends, so the window between "the simulator has the
    // prediction" and "the checkpoint has its id" lasts seconds.
    const scene = await setUpScene({
      simulator: { latencyMs: { min: 5_000, max: 5_000 } },
      env: { DEPTHQ_CREATE_WAIT_SECONDS: '30' },
    });
    const victim = await startWorker({ env: scene.env, name: 'victim' });

    await waitForCondition(
      'a prediction created whose id the checkpoint does not have',
      async () => {
        if (scene.simulator.stats().creates !== 1) return false;
        const checkpoint = await checkpointOf(scene);
        return checkpoint.creating !== undefined && checkpoint.predictionId === undefined;
      },
      { timeoutMs: 20_000, workers: [victim] },
    );
    await victim.kill();
    const left = await checkpointOf(scene);
    expect(left.predictionId).toBeUndefined();
    expect(left.predictionIds).toEqual([]);

    const fresh = await startWorker({ env: scene.env, name: 'fresh' });
    await expectCompletedOnce(scene, [fresh]);
    expect(scene.simulator.stats().createRequests).toBe(1);
    await waitForLogLine(fresh, (line) => line.msg === 'adopted the prediction a previous attempt created', 5_000);
  });

  it('while awaiting the prediction: the resumed job waits for the same prediction', async () => {
    // The create returns after 1 s with the prediction still processing; the rest of the 6 s is polling.
    const scene = await setUpScene({
      simulator: { latencyMs: { min: 6_000, max: 6_000 } },
      env: { DEPTHQ_CREATE_WAIT_SECONDS: '1' },
    });
    const victim = await startWorker({ env: scene.env, name: 'victim' });

    let awaited: string | undefined;
    await waitForCondition(
      'the checkpoint holding a prediction id and no end',
      async () => {
        const checkpoint = await checkpointOf(scene);
        awaited = checkpoint.predictionId;
        return awaited !== undefined && checkpoint.finished === undefined;
      },
      { timeoutMs: 20_000, workers: [victim] },
    );
    await victim.kill();

    const fresh = await startWorker({ env: scene.env, name: 'fresh' });
    const stored = await expectCompletedOnce(scene, [fresh]);
    expect(stored.predictionId).toBe(awaited);
    expect(scene.simulator.stats().createRequests).toBe(1);
  });

  it('while the output is being uploaded: the resumed job stores it again, from the same prediction', async () => {
    // The PUT of the output object (not its sidecar) is held 3 s by the S3 proxy.
    const scene = await setUpScene({
      s3Delay: (job) => (request) =>
        request.method === 'PUT' && pathnameOf(request.path) === objectPath(job.output) ? 3_000 : 0,
    });
    const victim = await startWorker({ env: scene.env, name: 'victim' });

    const outputPath = objectPath(scene.job.output);
    await waitForCondition(
      'the output upload in flight',
      async () =>
        scene.s3Proxy
          .inFlight()
          .some((request) => request.method === 'PUT' && pathnameOf(request.path) === outputPath) &&
        (await checkpointOf(scene)).finished !== undefined,
      { timeoutMs: 20_000, workers: [victim] },
    );
    const finished = (await checkpointOf(scene)).finished;
    await victim.kill();
    expect((await checkpointOf(scene)).stored).toBeUndefined();
    scene.s3Proxy.setDelay(() => 0);

    const fresh = await startWorker({ env: scene.env, name: 'fresh' });
    const stored = await expectCompletedOnce(scene, [fresh]);
    expect(stored.predictionId).toBe(finished?.id);
    expect(scene.simulator.stats().createRequests).toBe(1);
    // The killed upload never reached s3rver; the fresh worker's did.
    const puts = scene.s3Proxy.requests().filter((r) => r.method === 'PUT' && pathnameOf(r.path) === outputPath);
    expect(puts.map((r) => r.state)).toEqual(['aborted', 'completed']);
  });
});

describe('the same job in two worker processes at once', () => {
  it('stopped right after reserving, past its lock: the other worker finishes it; on resuming it creates nothing', async () => {
    const scene = await setUpScene({ s3Delay: slowControlImage });
    const first = await startWorker({ env: scene.env, name: 'worker-a' });
    await waitForCondition(
      'worker A between its reservation and its create',
      async () =>
        (await scene.fixture.ledger.money(scene.fixture.run)).reserved > 0 &&
        scene.simulator.stats().createRequests === 0 &&
        scene.s3Proxy.inFlight().length > 0,
      { timeoutMs: 20_000, workers: [first] },
    );
    // An event loop blocked from outside: A keeps its sockets and its place in the job, but stops renewing its lock.
    first.pause();
    scene.s3Proxy.setDelay(() => 0);
    const second = await startWorker({ env: scene.env, name: 'worker-b' });
    const done = await expectCompletedOnce(scene, [second]);
    expect(done.sidecar).toMatchObject({ storedBy: { pid: second.pid } });

    first.resume();
    // A goes on where it was stopped: its next fenced write is "creating, with this input", refused before the create.
    await expectStoppedAtTheFence(first, scene.jobId);

    expect(scene.simulator.stats()).toMatchObject({ createRequests: 1, creates: 1, inputsBilledMoreThanOnce: 0 });
    expect(await checkpointOf(scene)).toEqual(done.checkpoint);
    await expectStoredUnchanged(scene, done, second);
    expect(await scene.fixture.queue.getJobState(scene.jobId)).toBe('completed');
  });

  it('stopped while awaiting its prediction, past its lock: the other worker finishes it; its checkpoint and output stand', async () => {
    const scene = await setUpScene({
      simulator: { latencyMs: { min: 4_000, max: 4_000 } },
      env: { DEPTHQ_CREATE_WAIT_SECONDS: '1' },
    });
    const first = await startWorker({ env: scene.env, name: 'worker-a' });
    await waitForCondition(
      'worker A awaiting its prediction',
      async () => {
        const checkpoint = await checkpointOf(scene);
        return checkpoint.predictionId !== undefined && checkpoint.finished === undefined;
      },
      { timeoutMs: 20_000, workers: [first] },
    );
    first.pause();
    const second = await startWorker({ env: scene.env, name: 'worker-b' });
    const done = await expectCompletedOnce(scene, [second]);
    expect(done.sidecar).toMatchObject({ storedBy: { pid: second.pid } });

    first.resume();
    // A's next poll finds the prediction succeeded; its checkpoint write of that is refused by the fence.
    await expectStoppedAtTheFence(first, scene.jobId);

    expect(scene.simulator.stats()).toMatchObject({ createRequests: 1, creates: 1, inputsBilledMoreThanOnce: 0 });
    expect(await checkpointOf(scene)).toEqual(done.checkpoint);
    await expectStoredUnchanged(scene, done, second);
    expect(await scene.fixture.queue.getJobState(scene.jobId)).toBe('completed');
  });
});

/** What the pipeline logs when a fenced checkpoint write was refused (src/pipeline/run-job.ts). */
const LOCK_LOST_MESSAGE = 'lost the job to another worker (its lock expired): stopped without side effects';

/**
 * The worker stopped the job at a fenced write, and BullMQ refused its final move of the job (no longer locked by it):
 * waits for both in its log.
 */
async function expectStoppedAtTheFence(worker: WorkerProcess, jobId: string): Promise<void> {
  const stopped = await waitForLogLine(
    worker,
    (line) => line.msg === LOCK_LOST_MESSAGE && line.jobId === jobId,
    15_000,
  );
  expect(stopped).toMatchObject({ level: 40 });
  await waitForLogLine(
    worker,
    (line) =>
      typeof line.err === 'string' &&
      (line.err.startsWith(`Missing lock for job ${jobId}.`) || line.err.startsWith(`Lock mismatch for job ${jobId}.`)),
    5_000,
  );
}

/** The output and its sidecar are still the ones the finishing worker wrote. */
async function expectStoredUnchanged(scene: Scene, done: StoredJob, writer: WorkerProcess): Promise<void> {
  const { fixture, job } = scene;
  expect(sha256(await getObjectBytes(fixture.s3, job.output))).toBe(done.outputSha256);
  const sidecar = await readSidecar(scene);
  expect(sidecar).toEqual(done.sidecar);
  expect(sidecar).toMatchObject({ storedBy: { pid: writer.pid } });
}
