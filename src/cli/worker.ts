import type { Command } from 'commander';
import { loadConfig } from '../config/index.js';
import { runRenderWorkerProcess } from '../worker/start.js';
import { wholeNumberFlag } from './flags.js';

/** The most jobs one process may run at once: DEPTHQ_WORKER_CONCURRENCY's bound. */
const MAX_WORKER_CONCURRENCY = 1000;

export function registerWorkerCommand(program: Command): void {
  program
    .command('worker')
    .description('run a render worker: take render jobs from the queue until SIGTERM/SIGINT, then close gracefully')
    .option(
      '--concurrency <n>',
      `jobs in flight in this process, 1 to ${MAX_WORKER_CONCURRENCY} (default: DEPTHQ_WORKER_CONCURRENCY or 16)`,
    )
    .addHelpText(
      'after',
      '\nNeeds REDIS_URL, REPLICATE_API_TOKEN (and REPLICATE_BASE_URL for a simulator), S3 access to the buckets the\n' +
        'jobs name. It checks Redis, S3_BUCKET (when set) and the Replicate API at start and exits 2 with a message\n' +
        'when one is unreachable. Logs are JSON lines on stdout (LOG_LEVEL).',
    )
    .action(async (flags: { concurrency?: string }) => {
      const concurrency =
        flags.concurrency === undefined
          ? undefined
          : wholeNumberFlag('--concurrency', flags.concurrency, 1, MAX_WORKER_CONCURRENCY);
      await runRenderWorkerProcess(loadConfig(), concurrency === undefined ? {} : { concurrency });
    });
}
