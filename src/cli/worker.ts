import { type Command, InvalidArgumentError } from 'commander';
import { runRenderWorkerProcess } from '../../workers/render-worker.js';
import { loadConfig } from '../config/index.js';

function positiveInteger(flag: string) {
  return (value: string): number => {
    const parsed = Number(value);
    if (!Number.isSafeInteger(parsed) || parsed < 1) {
      throw new InvalidArgumentError(`${flag} takes a whole number of at least 1, got "${value}"`);
    }
    return parsed;
  };
}

export function registerWorkerCommand(program: Command): void {
  program
    .command('worker')
    .description('run a render worker: take render jobs from the queue until SIGTERM/SIGINT, then close gracefully')
    .option(
      '--concurrency <n>',
      'jobs in flight in this process (default: DEPTHQ_WORKER_CONCURRENCY or 16)',
      positiveInteger('--concurrency'),
    )
    .addHelpText(
      'after',
      '\nNeeds REDIS_URL, REPLICATE_API_TOKEN (and REPLICATE_BASE_URL for a simulator), S3 access to the buckets the\n' +
        'jobs name. It checks Redis, S3_BUCKET (when set) and the Replicate API at start and exits 2 with a message\n' +
        'when one is unreachable. Logs are JSON lines on stdout (LOG_LEVEL).',
    )
    .action(async (options: { concurrency?: number }) => {
      await runRenderWorkerProcess(
        loadConfig(),
        options.concurrency !== undefined ? { concurrency: options.concurrency } : {},
      );
    });
}
