/**
 * `depthq demo` (`npm run demo`): flags, signals and exit codes around src/demo/run-demo.ts.
 *
 * Signals: the first SIGINT/SIGTERM/SIGHUP asks the demo to stop — workers first, then the embedded stack — and the
 * process then dies by that same signal, as a shell expects; a second one kills the workers instead of waiting for
 * them. The stack's own `stopOnSignals` is not used: it would stop Redis at once, under workers still closing.
 */
import type { Command } from 'commander';
import {
  DEMO_DEFAULT_IMAGES,
  DEMO_DEFAULT_OUT,
  DEMO_DEFAULT_WORKERS,
  DEMO_MAX_IMAGES,
  DEMO_MAX_WORKERS,
  DemoError,
  DemoInterruptedError,
  runDemo,
} from '../demo/run-demo.js';
import { WorkerStartError } from '../demo/worker-processes.js';
import { LocalStackError } from '../local/redis.js';
import { nonEmptyFlag, wholeNumberFlag } from './flags.js';

interface DemoFlags {
  out: string;
  images: string;
  workers: string;
  dashboard?: boolean;
  dashboardPort: string;
}

const HANDLED_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/** Turns signals into two abort signals (stop, then force) for as long as `body` runs; returns the first signal seen. */
async function withSignalsAsAborts<T>(
  body: (stop: AbortSignal, force: AbortSignal) => Promise<T>,
): Promise<{ readonly value?: T; readonly error?: unknown; readonly received: NodeJS.Signals | undefined }> {
  const stop = new AbortController();
  const force = new AbortController();
  let received: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (received === undefined) {
      received = signal;
      process.stderr.write(`\ndepthq demo: ${signal}: stopping the workers and the local stack …\n`);
      stop.abort();
    } else {
      process.stderr.write(`depthq demo: ${signal} again: killing the workers\n`);
      force.abort();
    }
  };
  for (const signal of HANDLED_SIGNALS) process.on(signal, onSignal);
  try {
    return { value: await body(stop.signal, force.signal), received };
  } catch (error) {
    return { error, received };
  } finally {
    for (const signal of HANDLED_SIGNALS) process.off(signal, onSignal);
  }
}

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description(
      'render a small run end to end on the embedded stack (local Redis, S3 and Replicate simulator) — no accounts',
    )
    .option('--out <dir>', 'folder to copy outputs, sidecars, control images and index.html into', DEMO_DEFAULT_OUT)
    .option(
      '--images <n>',
      `control images to draw, each rendered in 2 styles (1–${DEMO_MAX_IMAGES})`,
      String(DEMO_DEFAULT_IMAGES),
    )
    .option('--workers <n>', `worker processes (1–${DEMO_MAX_WORKERS})`, String(DEMO_DEFAULT_WORKERS))
    .option('--dashboard', 'serve the dashboard (read-only) on the run while it renders, and keep it up until Ctrl-C')
    .option('--dashboard-port <n>', 'port of the dashboard on 127.0.0.1 (0 picks a free one)', '3000')
    .addHelpText(
      'after',
      '\nStarts redis-server (installed with apt-get when missing and run as root), s3rver and the simulator on free\n' +
        "ports; draws control images; renders them in two styles with worker processes; prints each job's seed, cost\n" +
        'and output key and the total spend; copies everything into --out with an index.html contact sheet.\n' +
        'The --out folder is replaced on every run, so it must be new, empty, or a previous demo output.\n' +
        'Nothing is left running afterwards, also after Ctrl-C. Your REDIS_URL, S3 and Replicate settings are ignored.\n' +
        "With --dashboard it prints the address of the run's dashboard page, watchable while the run renders, and keeps\n" +
        'the dashboard and the stack up after the run until Ctrl-C.',
    )
    .action(async (flags: DemoFlags) => {
      const options = {
        outDir: nonEmptyFlag('--out', flags.out, 'a folder'),
        images: wholeNumberFlag('--images', flags.images, 1, DEMO_MAX_IMAGES),
        workers: wholeNumberFlag('--workers', flags.workers, 1, DEMO_MAX_WORKERS),
        ...(flags.dashboard === true
          ? { dashboardPort: wholeNumberFlag('--dashboard-port', flags.dashboardPort, 0, 65_535) }
          : {}),
      };
      // The AWS SDK's notice that its 2027 releases need Node 22 concerns deployments (README: Configuration), not a
      // demo on a local S3; on a fresh machine it reads like an error. Someone who set the variable keeps their choice.
      process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
      const outcome = await withSignalsAsAborts((stop, force) =>
        runDemo(options, { stdout: process.stdout, baseEnv: process.env, signal: stop, forceSignal: force }),
      );
      // With --dashboard a finished demo waits for Ctrl-C: that signal is its normal end, not an interruption.
      const finishedThenStopped = outcome.value?.dashboardUrl !== undefined;
      if (outcome.received !== undefined && !finishedThenStopped) {
        // Dying by the signal tells the shell (and `make`, CI) the truth: the demo was interrupted, not failed.
        process.kill(process.pid, outcome.received);
        return;
      }
      const { error, value: result } = outcome;
      if (error !== undefined) {
        if (
          error instanceof DemoError ||
          error instanceof DemoInterruptedError ||
          error instanceof LocalStackError ||
          error instanceof WorkerStartError
        ) {
          process.stderr.write(`depthq demo: ${error.message}\n`);
          process.exitCode = 1;
          return;
        }
        throw error;
      }
      if (result === undefined) return;
      const succeeded = result.rows.filter(({ row }) => row?.status === 'succeeded').length;
      process.stdout.write(
        `Took ${(result.elapsedMs / 1000).toFixed(1)} s; the workers and the local stack are stopped.\n` +
          `Outputs, sidecars and control images: ${result.outDir}\n` +
          `Contact sheet: ${result.outDir}/index.html\n`,
      );
      if (succeeded < result.rows.length) {
        process.stderr.write(
          `depthq demo: ${result.rows.length - succeeded} of ${result.rows.length} jobs did not succeed\n`,
        );
        process.exitCode = 1;
      }
    });
}
