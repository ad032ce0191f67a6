/**
 * What every run command needs: a producer connection to Redis, the run ledger and the render queue under the configured
 * prefix — opened once, closed once — and the one message for a run id that does not exist.
 */
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '../config/index.js';
import { UsageError } from '../core/errors.js';
import { parseRunId } from '../core/keys.js';
import { redactUrl } from '../core/redact.js';
import { RunLedger, type RunMeta } from '../ledger/run-ledger.js';
import { closeConnection, openProducerConnection } from '../queue/connections.js';
import { createRenderQueue, type RenderJobData } from '../queue/render-queue.js';
import { queueSettingsOf } from '../worker/settings.js';

/** The run id names no run in the ledger under this prefix. */
export class UnknownRunError extends UsageError {
  override readonly name: string = 'UnknownRunError';
  readonly run: string;

  constructor(run: string, prefix: string, redisUrl: string) {
    super(
      `there is no run ${JSON.stringify(run)} under DEPTHQ_PREFIX=${prefix} in ${redactUrl(redisUrl)} (REDIS_URL): ` +
        '`depthq runs` lists the runs there',
    );
    this.run = run;
  }
}

export interface RunContext {
  readonly config: Config;
  readonly redis: Redis;
  readonly ledger: RunLedger;
  readonly queue: Queue<RenderJobData>;
  /** The run's meta, or an UnknownRunError (a UsageError: exit code 2) that says how to list runs. */
  requireRun(run: string): Promise<RunMeta>;
  close(): Promise<void>;
}

export async function openRunContext(config: Config, name = 'depthq-runs'): Promise<RunContext> {
  const redis = await openProducerConnection(config.redisUrl, { name });
  const ledger = new RunLedger(redis, config.prefix);
  // The configured settings, not the defaults: a job `depthq retry` adds again gets the attempts a worker would.
  const queue = createRenderQueue(redis, config.prefix, queueSettingsOf(config));
  let closing: Promise<void> | undefined;
  return {
    config,
    redis,
    ledger,
    queue,
    async requireRun(run) {
      // A malformed id gets the rule in words (InvalidRunIdError) before any Redis key is built from it.
      parseRunId(run);
      const meta = await ledger.getRun(run);
      if (meta === undefined) throw new UnknownRunError(run, config.prefix, config.redisUrl);
      return meta;
    },
    close() {
      closing ??= (async () => {
        await queue.close();
        await closeConnection(redis);
      })();
      return closing;
    },
  };
}

/** Opens a context, runs `body`, and closes the context whatever happens. */
export async function withRunContext<T>(config: Config, body: (context: RunContext) => Promise<T>): Promise<T> {
  const context = await openRunContext(config);
  try {
    return await body(context);
  } finally {
    await context.close();
  }
}
