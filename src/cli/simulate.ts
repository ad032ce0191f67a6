/**
 * `depthq simulate`: runs the Replicate-compatible simulator (src/sim) in the foreground until SIGINT/SIGTERM. Flags
 * are checked here, one message per bad flag naming it (UsageError → exit code 2 via main.ts).
 */
import type { Command } from 'commander';
import { UsageError } from '../core/errors.js';
import {
  InvalidDurationError,
  type LatencyRange,
  parseDuration,
  type RunningSimulator,
  type SimulatorOptionsInput,
  simulatorOptionsSchema,
  startSimulator,
} from '../sim/index.js';
import { wholeNumberFlag as integerFlag } from './flags.js';

interface SimulateFlags {
  port: string;
  host: string;
  latencyMs: string;
  startDelayMs: string;
  retention: string;
  failureRate: string;
  flaggedRate: string;
  serverErrorRate: string;
  resetRate: string;
  faultSeed?: string;
  createsPerMinute: string;
  requestsPerMinute: string;
  apiToken?: string;
  outputMaxSide: string;
}

function rateFlag(flag: string, text: string): number {
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || value < 0 || value > 1) {
    throw new UsageError(`${flag} must be a share from 0 to 1 (e.g. 0.05 for 5%), got "${text}"`);
  }
  return value;
}

function positiveNumberFlag(flag: string, text: string): number {
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || value <= 0) {
    throw new UsageError(`${flag} must be a number above 0, got "${text}"`);
  }
  return value;
}

/** "800" → 800..800; "200-1500" → 200..1500. */
function latencyFlag(flag: string, text: string): LatencyRange {
  const match = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(text);
  const min = Number(match?.[1]);
  const max = match?.[2] === undefined ? min : Number(match[2]);
  if (!match || min > max) {
    throw new UsageError(`${flag} must be milliseconds or a range min-max (e.g. 800 or 200-1500), got "${text}"`);
  }
  return { min, max };
}

function durationFlag(flag: string, text: string): number {
  try {
    return parseDuration(text);
  } catch (error) {
    if (error instanceof InvalidDurationError) throw new UsageError(`${flag}: ${error.message}`, { cause: error });
    throw error;
  }
}

export function simulatorOptionsFromFlags(flags: SimulateFlags): SimulatorOptionsInput {
  const options: SimulatorOptionsInput = {
    host: flags.host,
    port: integerFlag('--port', flags.port, 0, 65_535),
    latencyMs: latencyFlag('--latency-ms', flags.latencyMs),
    startDelayMs: latencyFlag('--start-delay-ms', flags.startDelayMs),
    retentionMs: durationFlag('--retention', flags.retention),
    createsPerMinute: positiveNumberFlag('--creates-per-minute', flags.createsPerMinute),
    requestsPerMinute: positiveNumberFlag('--requests-per-minute', flags.requestsPerMinute),
    outputMaxSide: integerFlag('--output-max-side', flags.outputMaxSide, 16, 2048),
    faults: {
      failureRate: rateFlag('--failure-rate', flags.failureRate),
      flaggedRate: rateFlag('--flagged-rate', flags.flaggedRate),
      serverErrorRate: rateFlag('--server-error-rate', flags.serverErrorRate),
      connectionResetRate: rateFlag('--reset-rate', flags.resetRate),
      ...(flags.faultSeed === undefined
        ? {}
        : { seed: integerFlag('--fault-seed', flags.faultSeed, -2_147_483_648, 4_294_967_295) }),
    },
    ...(flags.apiToken === undefined ? {} : { apiToken: flags.apiToken }),
  };
  if (flags.host.trim() === '') throw new UsageError('--host must not be empty');
  if (flags.apiToken !== undefined && flags.apiToken.trim() === '')
    throw new UsageError('--api-token must not be empty');
  // The flags above already say what is wrong; this catches whatever the schema adds later, naming the option.
  const checked = simulatorOptionsSchema.safeParse(options);
  if (!checked.success) {
    const issue = checked.error.issues[0];
    throw new UsageError(`invalid simulator option ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`);
  }
  return options;
}

function waitForStopSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const stop = (signal: NodeJS.Signals): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve(signal);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

function describeStart(simulator: RunningSimulator, flags: SimulateFlags): string {
  const token = flags.apiToken === undefined ? '<any non-empty token>' : '<the --api-token value>';
  return [
    `depthq Replicate simulator listening on ${simulator.url}`,
    `  API base URL    ${simulator.baseUrl}`,
    `  stats           ${simulator.url}/_sim/stats`,
    `  webhook secret  GET ${simulator.baseUrl}/webhooks/default/secret`,
    '',
    'Point depthq (or the replicate client) at it:',
    `  export REPLICATE_BASE_URL=${simulator.baseUrl}`,
    `  export REPLICATE_API_TOKEN=${token}`,
    '',
    'Ctrl+C stops it.',
    '',
  ].join('\n');
}

export function registerSimulateCommand(program: Command): void {
  program
    .command('simulate')
    .description(
      'run a local Replicate-compatible API (FLUX.1 Depth models) with configurable latency, limits and faults',
    )
    .option('--port <port>', 'port to listen on (0 picks a free one)', '8787')
    .option('--host <host>', 'interface to listen on', '127.0.0.1')
    .option('--latency-ms <ms|min-max>', "time a prediction spends 'processing'", '300-1200')
    .option('--start-delay-ms <ms|min-max>', "time a prediction spends 'starting'", '50-200')
    .option('--retention <duration>', 'inputs, outputs and logs are removed this long after creation', '1h')
    .option('--failure-rate <0..1>', "share of predictions that end 'failed' (CUDA error)", '0')
    .option(
      '--flagged-rate <0..1>',
      'share of distinct inputs flagged as sensitive (E005), same input same verdict',
      '0',
    )
    .option('--server-error-rate <0..1>', 'share of API requests answered 500/502/503', '0')
    .option('--reset-rate <0..1>', 'share of API requests whose connection is dropped (creates: after creating)', '0')
    .option('--fault-seed <int>', 'seed for the fault PRNG, so faults repeat run after run')
    .option('--creates-per-minute <n>', 'prediction creates per minute before 429', '600')
    .option('--requests-per-minute <n>', 'other API requests per minute before 429', '3000')
    .option('--api-token <token>', 'accept only this bearer token (default: any non-empty token)')
    .option('--output-max-side <px>', 'longer side of rendered outputs (smaller is faster)', '1024')
    .action(async (flags: SimulateFlags) => {
      const options = simulatorOptionsFromFlags(flags);
      // Listen before starting: a signal that arrives while the server starts must still stop it cleanly.
      const stopSignal = waitForStopSignal();
      const simulator = await startSimulator(options);
      process.stdout.write(describeStart(simulator, flags));
      const signal = await stopSignal;
      process.stdout.write(`${signal}: stopping the simulator…\n`);
      await simulator.close();
      const stats = simulator.stats();
      process.stdout.write(
        `stopped: ${stats.creates} predictions created, ${stats.billedImages} images billed, ` +
          `${stats.throttled} requests throttled, ${stats.inputsBilledMoreThanOnce} inputs billed more than once\n`,
      );
    });
}
