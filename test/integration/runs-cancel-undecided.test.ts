/**
 * `depthq cancel` when it cannot know what a job spent: the provider unreachable while it looks up a lost create or
 * cancels a running prediction, and a job BullMQ no longer has. The money rule decides — uncertain is
 * `possiblyBilled`, never released — and what the command cannot decide it leaves in the queue for the workers, whose
 * gate step cancels and settles it once the provider answers again.
 *
 * The jobs get into each state for real: an in-process worker sends creates through a proxy in front of the simulator
 * (test/helpers/latency-proxy.ts) and is closed mid-create or mid-prediction — a deploy — which returns its jobs to
 * waiting with their checkpoints; the proxy going down is the provider's outage. Each scenario has its own simulator,
 * proxy, key prefix and run. Every wait is on an observed condition with a timeout.
 */
import { describe, expect, it } from 'vitest';
import { readCheckpoint } from '../../src/core/checkpoint.js';
import { fluxDepthPro } from '../../src/core/models.js';
import { costOf } from '../../src/core/money.js';
import { renderJobIdOf, reservationOfJob } from '../../src/core/render-job.js';
import { LOCAL_SIMULATOR_TOKEN, type LocalSimulatorOptions } from '../../src/local/stack.js';
import { ReplicateProvider } from '../../src/providers/replicate.js';
import { cancelRun } from '../../src/runs/cancel-run.js';
import { type RunningSimulator, startSimulator } from '../../src/sim/index.js';
import { type RunningRenderWorker, startRenderWorker } from '../../src/worker/start.js';
import { type LatencyProxy, startLatencyProxy } from '../helpers/latency-proxy.js';
import { prepareRenderRun, type RenderRunFixture, waitForCounters } from '../helpers/render-run.js';
import { useLocalStack } from '../helpers/stack.js';
import { useWorkerProcesses, waitForCondition } from '../helpers/worker-process.js';

const stack = useLocalStack({ simulator: false });
// No worker children here: used for its per-test cleanup, which closes what a test registered in reverse order.
const { deferCleanup } = useWorkerProcesses();

const price = fluxDepthPro.priceMicrosPerImage;

interface Scene {
  readonly fixture: RenderRunFixture;
  readonly simulator: RunningSimulator;
  /** The provider's address for the workers and for `depthq cancel`. */
  readonly proxy: LatencyProxy;
  /** What `depthq cancel` calls, through the proxy, with few and short retries. */
  readonly provider: ReplicateProvider;
  /** The reservation each job holds once it got past its reserve step. */
  readonly reservation: number;
}

async function setUpScene(jobs: number, simulatorOptions: LocalSimulatorOptions): Promise<Scene> {
  const simulator = await startSimulator({
    apiToken: LOCAL_SIMULATOR_TOKEN,
    startDelayMs: { min: 5, max: 15 },
    outputMaxSide: 64,
    createsPerMinute: 100_000,
    requestsPerMinute: 100_000,
    ...simulatorOptions,
  });
  deferCleanup(() => simulator.close());
  const proxy = await startLatencyProxy({ target: simulator.url });
  deferCleanup(() => proxy.close());
  const fixture = await prepareRenderRun(stack(), {
    images: jobs,
    styles: ['day'],
    env: {
      REPLICATE_BASE_URL: `${proxy.url}/v1`,
      REPLICATE_API_TOKEN: LOCAL_SIMULATOR_TOKEN,
      DEPTHQ_CREATES_PER_MINUTE: '100000',
    },
  });
  deferCleanup(() => fixture.close());
  const provider = new ReplicateProvider({
    apiToken: LOCAL_SIMULATOR_TOKEN,
    baseUrl: `${proxy.url}/v1`,
    transport: { policy: { maxAttempts: 2, baseDelayMs: 20, maxDelayMs: 50 } },
  });
  const first = fixture.jobs[0];
  if (first === undefined) throw new Error('no jobs');
  return { fixture, simulator, proxy, provider, reservation: reservationOfJob(first) };
}

async function startWorkerFor(scene: Scene, concurrency: number): Promise<RunningRenderWorker> {
  const worker = await startRenderWorker(scene.fixture.config, { concurrency });
  deferCleanup(() => worker.close(2_000));
  return worker;
}

/** The jobs' checkpoints as BullMQ holds them (a job BullMQ no longer has is left out). */
async function checkpoints(scene: Scene) {
  const found = [];
  for (const job of scene.fixture.jobs) {
    const queued = await scene.fixture.queue.getJob(renderJobIdOf(job));
    if (queued !== undefined) found.push(readCheckpoint(queued.data.checkpoint));
  }
  return found;
}

describe('depthq cancel leaves what it cannot decide to the workers, and never releases money that may be billed', () => {
  it('lost creates whose lookup fails (provider down) stay queued with their money held; the workers settle them possibly billed', async () => {
    const scene = await setUpScene(3, { latencyMs: { min: 20, max: 60 } });
    const { fixture, simulator, proxy } = scene;
    const { ledger, queue, run } = fixture;
    // Creates are held at the proxy, so the worker is inside its create — `creating` written, no answer — when it closes.
    proxy.setDelay((request) => (request.method === 'POST' && request.path.endsWith('/predictions') ? 120_000 : 0));
    const first = await startWorkerFor(scene, 3);
    await waitForCondition(
      'three creates held at the proxy',
      () => proxy.inFlight().filter((request) => request.method === 'POST').length === 3,
      { timeoutMs: 20_000 },
    );
    // A deploy: the worker closes, its jobs return to waiting with their `creating` marks.
    await first.close(1_000);
    const marks = await checkpoints(scene);
    expect(marks).toHaveLength(3);
    for (const checkpoint of marks) {
      expect(checkpoint.creating).toBeDefined();
      expect(checkpoint.predictionId).toBeUndefined();
    }
    expect(await queue.getJobCounts('waiting', 'active')).toMatchObject({ waiting: 3, active: 0 });
    const held = 3 * scene.reservation;
    expect(await ledger.money(run)).toEqual({ budget: null, reserved: held, spent: 0, possiblyBilled: 0 });

    // The provider is unreachable while the run is canceled: no lookup can say whether those creates ran.
    proxy.setDown(true);
    const outcome = await cancelRun(queue, ledger, scene.provider, run);
    expect(outcome).toMatchObject({ ended: 0, leftToWorkers: 3, predictionsCanceled: 0 });
    expect(outcome.problems).toHaveLength(3);
    for (const problem of outcome.problems) expect(problem).toContain('left in the queue for a worker');
    // Nothing removed, nothing settled, nothing released.
    expect(await queue.getJobCounts('waiting')).toEqual({ waiting: 3 });
    expect(await ledger.counters(run)).toMatchObject({ queued: 3, canceled: 0 });
    expect(await ledger.money(run)).toEqual({ budget: null, reserved: held, spent: 0, possiblyBilled: 0 });

    // The provider is back: a worker takes each job, its gate ends it canceled, by the money rule.
    proxy.setDown(false);
    await startWorkerFor(scene, 3);
    const counters = await waitForCounters(ledger, run, (c) => c.canceled === 3, 20_000);
    expect(counters).toMatchObject({ total: 3, canceled: 3, queued: 0, running: 0 });
    const stats = simulator.stats();
    expect(stats.creates).toBe(0);
    expect(stats.billedImages).toBe(0);
    expect(stats.inputsBilledMoreThanOnce).toBe(0);
    // A create whose outcome nobody saw may have run: possibly billed, to the micro-dollar, never handed back.
    expect(await ledger.money(run)).toEqual({ budget: null, reserved: 0, spent: 0, possiblyBilled: held });
  }, 60_000);

  it('cancel calls that fail (provider down) leave running predictions to the workers, which cancel them and count them possibly billed', async () => {
    const scene = await setUpScene(3, { latencyMs: { min: 30_000, max: 31_000 } });
    const { fixture, simulator, proxy } = scene;
    const { ledger, queue, run } = fixture;
    const first = await startWorkerFor(scene, 3);
    await waitForCondition(
      'three predictions running',
      async () => (await checkpoints(scene)).filter((checkpoint) => checkpoint.predictionId !== undefined).length === 3,
      { timeoutMs: 20_000 },
    );
    await first.close(1_000);
    expect(await queue.getJobCounts('waiting', 'active')).toMatchObject({ waiting: 3, active: 0 });

    proxy.setDown(true);
    const outcome = await cancelRun(queue, ledger, scene.provider, run);
    expect(outcome).toMatchObject({ ended: 0, leftToWorkers: 3, predictionsCanceled: 0 });
    expect(outcome.problems).toHaveLength(3);
    expect(await queue.getJobCounts('waiting')).toEqual({ waiting: 3 });
    const held = 3 * scene.reservation;
    expect(await ledger.money(run)).toEqual({ budget: null, reserved: held, spent: 0, possiblyBilled: 0 });

    proxy.setDown(false);
    await startWorkerFor(scene, 3);
    await waitForCounters(ledger, run, (c) => c.canceled === 3, 20_000);
    const stats = simulator.stats();
    expect(stats.creates).toBe(3);
    expect(stats.canceledWhileRunning).toBe(3);
    expect(stats.billedImages).toBe(0);
    expect(stats.inputsBilledMoreThanOnce).toBe(0);
    expect(await ledger.money(run)).toEqual({
      budget: null,
      reserved: 0,
      spent: costOf(price, stats.billedImages),
      possiblyBilled: costOf(price, stats.canceledWhileRunning),
    });
  }, 60_000);

  it('a job BullMQ no longer has, holding money for a running prediction: its prediction is canceled and counted possibly billed, not released', async () => {
    const scene = await setUpScene(2, { latencyMs: { min: 30_000, max: 31_000 } });
    const { fixture, simulator } = scene;
    const { ledger, queue, run } = fixture;
    const first = await startWorkerFor(scene, 2);
    await waitForCondition(
      'two predictions running',
      async () => (await checkpoints(scene)).filter((checkpoint) => checkpoint.predictionId !== undefined).length === 2,
      { timeoutMs: 20_000 },
    );
    await first.close(1_000);
    // One job is removed from BullMQ (by hand, or by its retention): only the ledger knows it any more.
    const gone = fixture.jobs[0];
    if (gone === undefined) throw new Error('no jobs');
    expect(await queue.remove(renderJobIdOf(gone))).toBe(1);
    expect((await ledger.result(run, renderJobIdOf(gone)))?.predictionIds).toHaveLength(1);

    const outcome = await cancelRun(queue, ledger, scene.provider, run);
    expect(outcome).toMatchObject({ ended: 2, leftToWorkers: 0, predictionsCanceled: 2, problems: [] });
    expect(await ledger.counters(run)).toMatchObject({ total: 2, canceled: 2 });
    const stats = simulator.stats();
    expect(stats.creates).toBe(2);
    expect(stats.canceledWhileRunning).toBe(2);
    expect(stats.inputsBilledMoreThanOnce).toBe(0);
    expect(await ledger.money(run)).toEqual({
      budget: null,
      reserved: 0,
      spent: costOf(price, stats.billedImages),
      possiblyBilled: costOf(price, stats.canceledWhileRunning),
    });
  }, 60_000);
});
