/**
 * One side of a provider scenario, measured on a local stack of its own: the plain script (scripts/plain-script.ts) in
 * its own process, or depthq's worker processes fed by `enqueueRenderJobs`. Every figure comes from the simulator's
 * counters, /proc, or a clock read around the work; scripts/bench/provider-scenarios.ts runs the sides and tabulates.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../src/config/index.js';
import { fluxDepthPro } from '../../src/core/models.js';
import { buildRenderJob } from '../../src/core/render-job.js';
import { startWorkerProcesses } from '../../src/demo/worker-processes.js';
import { RunLedger } from '../../src/ledger/run-ledger.js';
import { makeControlImages } from '../../src/local/control-images/index.js';
import { type LocalStack, startLocalStack } from '../../src/local/stack.js';
import { closeConnection, connectProducer, createProducerConnection } from '../../src/queue/connections.js';
import { createRenderQueue, defaultRenderQueueSettings, enqueueRenderJobs } from '../../src/queue/render-queue.js';
import type { SimulatorStats } from '../../src/sim/stats.js';
import { putBytesObject } from '../../src/storage/s3.js';
import { cpuBetween, loadAverage, processCpuMs, totalCpuMs } from './machine.js';

const scriptsDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PLAIN_SCRIPT = path.join(scriptsDir, 'plain-script.ts');
const CONTROL_KEY = 'controls/bench.png';
/** Outputs of 256 px: the provider scenarios measure waiting on the provider, not image bytes. */
const OUTPUT_MAX_SIDE = 256;
/** How often the create counter is sampled, for the create rate of the first wave. */
const SAMPLE_MS = 50;

/** The account limits a scenario runs against; `none` is a simulator that never answers 429. */
export type ProviderLimits = 'none' | 'replicate';

/** Replicate's published limits: 600 creates a minute and 3,000 other requests, "short bursts" allowed. */
export const REPLICATE_LIMITS = { createsPerMinute: 600, requestsPerMinute: 3_000 } as const;

export interface ProviderScenario {
  readonly count: number;
  readonly concurrency: number;
  readonly latencyMs: number;
  readonly limits: ProviderLimits;
  /** depthq's worker processes, C/workers in flight each. @defaultValue 1 */
  readonly workers?: number;
}

export type Side = 'plain script' | 'depthq';

export interface SideMeasurement {
  readonly side: Side;
  readonly scenario: ProviderScenario;
  readonly makespanMs: number;
  readonly delivered: number;
  /** Every /v1 request the simulator received (creates, polls, lists, retries, 429s). */
  readonly requests: number;
  readonly createRequests: number;
  readonly creates: number;
  readonly throttled: number;
  /** Creates a minute from the first create to the min(N, C)-th: the first wave, when every slot wants one. */
  readonly firstWaveCreatesPerMinute: number | undefined;
  /** The simulator's counters every SAMPLE_MS, and when the side's clock started (depthq only): for diagnosis. */
  readonly timeline: readonly TimelineSample[];
  readonly clockStartedAt: number | undefined;
  readonly inputsBilledMoreThanOnce: number;
  /** CPU time of the client (the plain script's process, or the depthq worker process) during the makespan, ms. */
  readonly clientCpuMs: number | undefined;
  /** CPU time of redis-server during the makespan, ms. */
  readonly redisCpuMs: number | undefined;
  /** CPU time of the bench process, which hosts the simulator and s3rver, during the makespan, ms. */
  readonly stackCpuMs: number;
  /** The 1-minute load average before the side ran (the machine is shared). */
  readonly loadBefore: number;
  readonly note: string | undefined;
}

/** max(N·L/C, N/R): what no client of this provider can beat. */
export function boundMsOf(scenario: ProviderScenario): number {
  const latencyBound = (scenario.count * scenario.latencyMs) / scenario.concurrency;
  if (scenario.limits === 'none') return latencyBound;
  return Math.max(latencyBound, (scenario.count * 60_000) / REPLICATE_LIMITS.createsPerMinute);
}

async function startScenarioStack(scenario: ProviderScenario): Promise<LocalStack> {
  const limited = scenario.limits === 'replicate';
  const stack = await startLocalStack({
    simulator: {
      startDelayMs: { min: 0, max: 0 },
      latencyMs: { min: scenario.latencyMs, max: scenario.latencyMs },
      outputMaxSide: OUTPUT_MAX_SIDE,
      createsPerMinute: limited ? REPLICATE_LIMITS.createsPerMinute : 1_000_000_000,
      requestsPerMinute: limited ? REPLICATE_LIMITS.requestsPerMinute : 1_000_000_000,
      // Bursts at the simulator's default, a tenth of the per-minute rate, when limited; unlimited otherwise.
      ...(limited ? {} : { burst: { creates: 1_000_000, requests: 1_000_000 } }),
    },
  });
  try {
    const s3 = stack.s3;
    if (s3 === undefined) throw new Error('the local stack started no S3');
    const [control] = await makeControlImages({ count: 1, width: 256, height: 192 });
    if (control === undefined) throw new Error('no control image was made');
    const client = s3.client();
    await putBytesObject(client, { bucket: s3.bucket, key: CONTROL_KEY }, control.bytes, control.contentType);
    client.destroy();
    return stack;
  } catch (error) {
    await stack.stop();
    throw error;
  }
}

function simulatorOf(stack: LocalStack) {
  const simulator = stack.simulator;
  if (simulator === undefined) throw new Error('the local stack started no simulator');
  return simulator;
}

/** The simulator's counters at one instant of a side's run (performance.now()). */
export interface TimelineSample {
  readonly at: number;
  readonly creates: number;
  readonly succeeded: number;
}

/** Samples the simulator's create counter, for the first wave's create rate. */
function sampleCreates(stats: () => SimulatorStats, firstWave: number) {
  const samples: TimelineSample[] = [];
  const sample = () => {
    const now = stats();
    samples.push({ at: performance.now(), creates: now.creates, succeeded: now.predictions.succeeded });
  };
  sample();
  const timer = setInterval(sample, SAMPLE_MS);
  return {
    samples,
    /** Creates a minute over the first wave; Infinity when it all landed between two samples (one burst). */
    stop(): number | undefined {
      clearInterval(timer);
      sample();
      const first = samples.find((entry) => entry.creates >= 1);
      const wave = samples.find((entry) => entry.creates >= firstWave);
      if (first === undefined || wave === undefined || firstWave < 2) return undefined;
      if (wave.at <= first.at) return Number.POSITIVE_INFINITY;
      return ((wave.creates - first.creates) * 60_000) / (wave.at - first.at);
    },
  };
}

function baseEnvironment(stack: LocalStack): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    ...stack.env(),
  };
}

interface PlainScriptOutput {
  readonly makespanMs: number;
  readonly delivered: number;
  readonly failed: number;
  readonly firstError?: string;
  readonly cpuMs: number;
}

function runPlainScript(stack: LocalStack, scenario: ProviderScenario): Promise<PlainScriptOutput> {
  const args = [
    '--import',
    'tsx',
    PLAIN_SCRIPT,
    '--count',
    String(scenario.count),
    '--concurrency',
    String(scenario.concurrency),
    '--control',
    CONTROL_KEY,
    '--prefix',
    'plain',
  ];
  const child = spawn(process.execPath, args, { env: baseEnvironment(stack), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString('utf8');
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString('utf8')).slice(-4_000);
  });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      const line = stdout.trim().split('\n').at(-1) ?? '';
      if (code !== 0 || !line.startsWith('{')) {
        reject(new Error(`the plain script exited ${code}: ${stderr.trim() || stdout.trim()}`));
        return;
      }
      resolve(JSON.parse(line) as PlainScriptOutput);
    });
  });
}

async function measurePlainScript(
  stack: LocalStack,
  scenario: ProviderScenario,
): Promise<Omit<SideMeasurement, 'loadBefore'>> {
  const simulator = simulatorOf(stack);
  const sampler = sampleCreates(simulator.stats, Math.min(scenario.count, scenario.concurrency));
  const redisPid = stack.redis?.pid;
  const redisBefore = redisPid === undefined ? undefined : await processCpuMs(redisPid);
  const stackBefore = process.cpuUsage();
  const output = await runPlainScript(stack, scenario);
  const stackCpu = process.cpuUsage(stackBefore);
  const redisAfter = redisPid === undefined ? undefined : await processCpuMs(redisPid);
  const firstWave = sampler.stop();
  const stats = simulator.stats();
  return {
    side: 'plain script',
    scenario,
    makespanMs: output.makespanMs,
    delivered: output.delivered,
    requests: stats.requests,
    createRequests: stats.createRequests,
    creates: stats.creates,
    throttled: stats.throttled,
    firstWaveCreatesPerMinute: firstWave,
    timeline: sampler.samples,
    clockStartedAt: undefined,
    clientCpuMs: output.cpuMs,
    redisCpuMs: cpuBetween(redisBefore, redisAfter),
    // The plain script's start-up is in this figure too (the bench process cannot tell it apart): a little high.
    stackCpuMs: (stackCpu.user + stackCpu.system) / 1000,
    inputsBilledMoreThanOnce: stats.inputsBilledMoreThanOnce,
    note: output.failed > 0 ? `${output.failed} failed, first: ${output.firstError ?? 'no message'}` : undefined,
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function measureDepthq(
  stack: LocalStack,
  scenario: ProviderScenario,
): Promise<Omit<SideMeasurement, 'loadBefore'>> {
  const simulator = simulatorOf(stack);
  const env: Record<string, string> = {
    ...baseEnvironment(stack),
    LOG_LEVEL: 'warn',
    DEPTHQ_GLOBAL_CONCURRENCY: String(scenario.concurrency),
    // Configured at the account's limit, as an operator would; without limits, the highest the config takes.
    DEPTHQ_CREATES_PER_MINUTE: String(scenario.limits === 'none' ? 100_000 : REPLICATE_LIMITS.createsPerMinute),
  };
  const config = loadConfig(env);
  const bucket = config.s3.bucket;
  if (bucket === undefined) throw new Error('the local stack gave no bucket');
  const redis = createProducerConnection(config.redisUrl);
  await connectProducer(redis);
  const ledger = new RunLedger(redis, config.prefix);
  const queue = createRenderQueue(redis, config.prefix, defaultRenderQueueSettings);
  const run = 'bench-depthq';
  await ledger.createRun(run, {
    model: fluxDepthPro.id,
    budgetMicros: null,
    manifest: { name: 'bench.csv', sha256: '0'.repeat(64) },
    output: { bucket, prefix: run, keyTemplate: '{run}/{style}/{id}.{ext}' },
    defaults: {},
  });
  const jobs = Array.from({ length: scenario.count }, (_, index) =>
    buildRenderJob({
      run,
      rowId: `row-${index}`,
      style: 'bench',
      model: fluxDepthPro.id,
      controlImage: { bucket, key: CONTROL_KEY },
      input: { prompt: `benchmark facade ${index}`, steps: 15 },
      output: { bucket, prefix: run },
    }),
  );
  const workers = scenario.workers ?? 1;
  const fleet = await startWorkerProcesses({
    count: workers,
    env,
    concurrency: Math.ceil(scenario.concurrency / workers),
  });
  try {
    const ready = (async () => {
      while ((await queue.getWorkersCount()) < workers) await sleep(100);
    })();
    const crashed = fleet.unexpectedExit.then((exit) => {
      throw new Error(`the depthq worker exited (${exit.code ?? exit.signal}) before it was ready: ${exit.output}`);
    });
    await Promise.race([ready, crashed]);

    const sampler = sampleCreates(simulator.stats, Math.min(scenario.count, scenario.concurrency));
    const workerPids = fleet.workers.map((worker) => worker.pid);
    const redisPid = stack.redis?.pid;
    const [workerBefore, redisBefore] = await Promise.all([
      totalCpuMs(workerPids),
      redisPid === undefined ? undefined : processCpuMs(redisPid),
    ]);
    const stackBefore = process.cpuUsage();
    // The clock runs from the enqueue (rows in the ledger, jobs in the queue) to the last job's end.
    const startedAt = performance.now();
    await enqueueRenderJobs(queue, ledger, run, jobs);
    const deadline = startedAt + Math.max(20 * boundMsOf(scenario), 300_000);
    let counters = await ledger.counters(run);
    while (counters.succeeded + counters.failed + counters.flagged < scenario.count) {
      if (performance.now() > deadline) break;
      await sleep(20);
      counters = await ledger.counters(run);
    }
    const makespanMs = performance.now() - startedAt;
    const stackCpu = process.cpuUsage(stackBefore);
    const [workerAfter, redisAfter] = await Promise.all([
      totalCpuMs(workerPids),
      redisPid === undefined ? undefined : processCpuMs(redisPid),
    ]);
    const firstWave = sampler.stop();
    const stats = simulator.stats();
    const ended = counters.succeeded + counters.failed + counters.flagged;
    return {
      side: 'depthq',
      scenario,
      makespanMs,
      delivered: counters.succeeded,
      requests: stats.requests,
      createRequests: stats.createRequests,
      creates: stats.creates,
      throttled: stats.throttled,
      firstWaveCreatesPerMinute: firstWave,
      timeline: sampler.samples,
      clockStartedAt: startedAt,
      clientCpuMs: cpuBetween(workerBefore, workerAfter),
      redisCpuMs: cpuBetween(redisBefore, redisAfter),
      stackCpuMs: (stackCpu.user + stackCpu.system) / 1000,
      inputsBilledMoreThanOnce: stats.inputsBilledMoreThanOnce,
      note:
        ended < scenario.count
          ? `${scenario.count - ended} jobs had not ended at the deadline`
          : counters.failed + counters.flagged > 0
            ? `${counters.failed} failed, ${counters.flagged} flagged`
            : undefined,
    };
  } finally {
    await fleet.stop(15_000);
    await queue.close();
    await closeConnection(redis);
  }
}

/** One side of one scenario on a stack of its own, so neither side inherits the other's token buckets or keys. */
export async function measureSide(side: Side, scenario: ProviderScenario): Promise<SideMeasurement> {
  const stack = await startScenarioStack(scenario);
  try {
    const loadBefore = await loadAverage();
    const measured =
      side === 'depthq' ? await measureDepthq(stack, scenario) : await measurePlainScript(stack, scenario);
    return { ...measured, loadBefore };
  } finally {
    await stack.stop();
  }
}
