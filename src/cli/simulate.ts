/**
 * `depthq simulate`: runs the Replicate-compatible simulator (src/sim) in the foreground until SIGINT/SIGTERM. Each flag
 * is parsed by src/cli/flags.ts (a FlagError naming it → exit code 2 via main.ts).
 */
import type { Command } from 'commander';
import { UsageError } from '../core/errors.js';
import {
  type RunningSimulator,
  type SimulatorOptionsInput,
  simulatorOptionsSchema,
  startSimulator,
} from '../sim/index.js';
import {
  durationFlag,
  millisecondsRangeFlag,
  nonEmptyFlag,
  positiveNumberFlag,
  shareFlag,
  wholeNumberFlag,
} from './flags.js';

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

export function simulatorOptionsFromFlags(flags: SimulateFlags): SimulatorOptionsInput {
  const options: SimulatorOptionsInput = {
    host: nonEmptyFlag('--host', flags.host, 'an interface to listen on (e.g. 127.0.0.1 or 0.0.0.0)'),
    port: wholeNumberFlag('--port', flags.port, 0, 65_535),
    latencyMs: millisecondsRangeFlag('--latency-ms', flags.latencyMs),
    startDelayMs: millisecondsRangeFlag('--start-delay-ms', flags.startDelayMs),
    retentionMs: durationFlag('--retention', flags.retention),
    createsPerMinute: positiveNumberFlag('--creates-per-minute', flags.createsPerMinute),
    requestsPerMinute: positiveNumberFlag('--requests-per-minute', flags.requestsPerMinute),
    outputMaxSide: wholeNumberFlag('--output-max-side', flags.outputMaxSide, 16, 2048),
    faults: {
      failureRate: shareFlag('--failure-rate', flags.failureRate),
      flaggedRate: shareFlag('--flagged-rate', flags.flaggedRate),
      serverErrorRate: shareFlag('--server-error-rate', flags.serverErrorRate),
      connectionResetRate: shareFlag('--reset-rate', flags.resetRate),
      ...(flags.faultSeed === undefined
        ? {}
        : { seed: wholeNumberFlag('--fault-seed', flags.faultSeed, -2_147_483_648, 4_294_967_295) }),
    },
    ...(flags.apiToken === undefined
      ? {}
      : { apiToken: nonEmptyFlag('--api-token', flags.apiToken, 'a non-empty token') }),
  };
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
