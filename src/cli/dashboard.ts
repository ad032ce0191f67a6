/**
 * `depthq dashboard`: serves the web dashboard (src/dashboard/) until SIGINT/SIGTERM, then closes its streams, socket
 * and connections. Refuses (exit code 2, one message) to listen on anything but loopback without DASHBOARD_USER and
 * DASHBOARD_PASSWORD.
 */
import type { Command } from 'commander';
import { loadConfig } from '../config/index.js';
import { createLogger } from '../logging/logger.js';
import { nonEmptyFlag, wholeNumberFlag } from './flags.js';

interface DashboardFlags {
  port: string;
  host: string;
  allowActions?: boolean;
}

export function registerDashboardCommand(program: Command): void {
  program
    .command('dashboard')
    .description('serve the web dashboard: every run live, a page per run with failures and outputs, bull-board')
    .option('--port <n>', 'TCP port (0 picks a free one)', '3000')
    .option(
      '--host <address>',
      'address to listen on; anything but loopback needs DASHBOARD_USER/PASSWORD',
      '127.0.0.1',
    )
    .option('--allow-actions', 'enable pause, resume, cancel, budget and retry from the pages (and bull-board actions)')
    .addHelpText(
      'after',
      '\nPages: / (every run, newest first), /runs/<run> (failures, throughput, latest outputs), /queues (bull-board).\n' +
        'They read the run ledger (REDIS_URL, DEPTHQ_PREFIX), so they show runs after BullMQ pruned their jobs;\n' +
        'thumbnails come from S3 (S3_ENDPOINT, AWS credentials). With DASHBOARD_USER and DASHBOARD_PASSWORD set every\n' +
        'page asks for them (basic auth; /healthz excepted). Cancel needs REPLICATE_API_TOKEN, as `depthq cancel` does.',
    )
    .action(async (flags: DashboardFlags) => {
      const port = wholeNumberFlag('--port', flags.port, 0, 65_535);
      const host = nonEmptyFlag('--host', flags.host, 'an address such as 127.0.0.1 or 0.0.0.0');
      const config = loadConfig();
      const logger = createLogger(config, { component: 'dashboard' });
      // Loaded here, not at the top: bull-board, Hono and sharp would slow the start of every other command.
      const { startDashboardServer } = await import('../dashboard/server.js');
      const dashboard = await startDashboardServer({
        config,
        host,
        port,
        allowActions: flags.allowActions === true,
        logger,
      });
      const mode = flags.allowActions
        ? 'actions enabled'
        : 'read-only; --allow-actions enables pause, resume, cancel, budget and retry';
      process.stdout.write(`depthq dashboard: ${dashboard.url} (${mode}); Ctrl-C stops it\n`);
      await new Promise<void>((resolve) => {
        const stop = () => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          resolve();
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
      await dashboard.close();
    });
}
