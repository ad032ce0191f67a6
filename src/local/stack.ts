/**
 * The whole local stack in one call: an ephemeral redis-server, s3rver with a bucket, and the Replicate simulator.
 * Used by the demo, the integration tests and the benchmarks; `env()` hands the same endpoints to child processes.
 *
 * Signals: by default the stack installs no signal handler — a library that did would change how its host process
 * reacts to Ctrl-C and SIGTERM (a worker's graceful close, vitest's own teardown). Nothing is left behind anyway: the
 * simulator and s3rver live in this process, and redis-server dies with it (see redis.ts). What the default leaves on
 * a signal is the temp dirs; an entry point that owns its process (the demo) passes `stopOnSignals: true` to stop the
 * stack — dirs included — on SIGINT/SIGTERM/SIGHUP and then die by that same signal, unless it handles it itself.
 */
import { type RunningSimulator, startSimulator } from '../sim/index.js';
import { LocalStackError, type RedisServerOptions, type RunningRedis, startRedisServer } from './redis.js';
import { LOCAL_S3_REGION, type RunningS3, S3RVER_CREDENTIALS, type S3ServerOptions, startS3Server } from './s3.js';

export type LocalSimulatorOptions = NonNullable<Parameters<typeof startSimulator>[0]>;

/** The token the local simulator requires and `env()` hands out: a placeholder, never a real Replicate token. */
export const LOCAL_SIMULATOR_TOKEN = 'sim-local-token';

export interface LocalStackOptions {
  /** @defaultValue true */
  readonly redis?: boolean | RedisServerOptions;
  /** @defaultValue true */
  readonly s3?: boolean | S3ServerOptions;
  /** @defaultValue true, with `apiToken: 'sim-local-token'` */
  readonly simulator?: boolean | LocalSimulatorOptions;
  /**
   * Stop the stack on SIGINT, SIGTERM and SIGHUP, then re-raise the signal if nothing else listens for it (so the
   * process still dies by it). For entry points that own their process; libraries and tests leave it off.
   * @defaultValue false
   */
  readonly stopOnSignals?: boolean;
}

export interface LocalStack {
  readonly redis?: RunningRedis;
  readonly s3?: RunningS3;
  readonly simulator?: RunningSimulator;
  /** The variables a child process needs to use this stack (only for the parts that run). */
  env(): Record<string, string>;
  /** Stops every part, even when one of them fails to stop; the first call's outcome is shared by later calls. */
  stop(): Promise<void>;
}

/** `false` → not started; `true`/absent → started with defaults; an object → started with those options. */
function optionsOf<T extends object>(choice: boolean | T | undefined, defaults: T): T | undefined {
  if (choice === false) return undefined;
  if (choice === true || choice === undefined) return defaults;
  return choice;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

async function stopAll(stops: ReadonlyArray<readonly [string, () => Promise<void>]>): Promise<void> {
  const outcomes = await Promise.allSettled(stops.map(([, stop]) => stop()));
  const failures = outcomes.flatMap((outcome, index) =>
    outcome.status === 'rejected' ? [{ part: stops[index]?.[0] ?? 'part', error: outcome.reason }] : [],
  );
  if (failures.length === 0) return;
  const first = failures[0];
  throw new LocalStackError(
    `could not stop the local stack: ${failures.map(({ part, error }) => `${part}: ${describe(error)}`).join('; ')}`,
    { cause: failures.length === 1 ? first?.error : new AggregateError(failures.map(({ error }) => error)) },
  );
}

const HANDLED_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

function stopOnSignals(stop: () => Promise<void>): () => void {
  const onSignal = (signal: NodeJS.Signals) => {
    removeHandlers();
    void stop()
      .catch((error: unknown) => {
        process.stderr.write(`depthq: ${describe(error)}\n`);
      })
      .finally(() => {
        // Another listener means the application handles this signal and decides when to exit.
        if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
      });
  };
  const removeHandlers = () => {
    for (const signal of HANDLED_SIGNALS) process.off(signal, onSignal);
  };
  for (const signal of HANDLED_SIGNALS) process.on(signal, onSignal);
  return removeHandlers;
}

/**
 * Starts the chosen parts concurrently. If any part fails to start, the parts that did start are stopped before the
 * LocalStackError (with the first failure as `cause`) is thrown.
 */
export async function startLocalStack(options: LocalStackOptions = {}): Promise<LocalStack> {
  const redisOptions = optionsOf<RedisServerOptions>(options.redis, {});
  const s3Options = optionsOf<S3ServerOptions>(options.s3, {});
  const simulatorOptions = optionsOf<LocalSimulatorOptions>(options.simulator, {});

  const [redis, s3, simulator] = await Promise.allSettled([
    redisOptions === undefined ? undefined : startRedisServer(redisOptions),
    s3Options === undefined ? undefined : startS3Server(s3Options),
    simulatorOptions === undefined
      ? undefined
      : startSimulator({ apiToken: LOCAL_SIMULATOR_TOKEN, ...simulatorOptions }),
  ]);

  const stops: Array<readonly [string, () => Promise<void>]> = [];
  const runningRedis = redis.status === 'fulfilled' ? redis.value : undefined;
  const runningS3 = s3.status === 'fulfilled' ? s3.value : undefined;
  const runningSimulator = simulator.status === 'fulfilled' ? simulator.value : undefined;
  if (runningRedis !== undefined) stops.push(['redis-server', () => runningRedis.stop()]);
  if (runningS3 !== undefined) stops.push(['s3rver', () => runningS3.stop()]);
  if (runningSimulator !== undefined) stops.push(['simulator', () => runningSimulator.close()]);

  const failures = [
    ['redis-server', redis],
    ['s3rver', s3],
    ['simulator', simulator],
  ] as const;
  const failed = failures.flatMap(([part, outcome]) =>
    outcome.status === 'rejected' ? [{ part, error: outcome.reason as unknown }] : [],
  );
  if (failed.length > 0) {
    let cleanup = '';
    try {
      await stopAll(stops);
    } catch (error) {
      cleanup = ` (and cleaning up failed: ${describe(error)})`;
    }
    throw new LocalStackError(
      `could not start the local stack: ${failed.map(({ part, error }) => `${part}: ${describe(error)}`).join('; ')}${cleanup}`,
      { cause: failed[0]?.error },
    );
  }

  const simulatorToken =
    typeof options.simulator === 'object' && options.simulator.apiToken !== undefined
      ? options.simulator.apiToken
      : LOCAL_SIMULATOR_TOKEN;

  let stopping: Promise<void> | undefined;
  let removeSignalHandlers: (() => void) | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      removeSignalHandlers?.();
      await stopAll(stops);
    })();
    return stopping;
  };
  if (options.stopOnSignals === true) removeSignalHandlers = stopOnSignals(stop);

  const env = (): Record<string, string> => {
    const variables: Record<string, string> = {};
    if (runningRedis !== undefined) variables.REDIS_URL = runningRedis.url;
    if (runningS3 !== undefined) {
      variables.S3_ENDPOINT = runningS3.endpoint;
      variables.S3_BUCKET = runningS3.bucket;
      variables.S3_FORCE_PATH_STYLE = 'true';
      variables.AWS_REGION = LOCAL_S3_REGION;
      variables.AWS_ACCESS_KEY_ID = S3RVER_CREDENTIALS.accessKeyId;
      variables.AWS_SECRET_ACCESS_KEY = S3RVER_CREDENTIALS.secretAccessKey;
    }
    if (runningSimulator !== undefined) {
      variables.REPLICATE_BASE_URL = runningSimulator.baseUrl;
      variables.REPLICATE_API_TOKEN = simulatorToken;
    }
    return variables;
  };

  return {
    ...(runningRedis === undefined ? {} : { redis: runningRedis }),
    ...(runningS3 === undefined ? {} : { s3: runningS3 }),
    ...(runningSimulator === undefined ? {} : { simulator: runningSimulator }),
    env,
    stop,
  };
}
