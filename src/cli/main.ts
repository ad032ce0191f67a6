/**
 * `depthq` — the command-line entry point. Thin by design: each command parses its flags and calls the modules that do
 * the work. User mistakes (bad flags, bad environment, bad input files) end with one clear message and exit code 2;
 * anything else is a bug and keeps its stack trace.
 */
import { Command, CommanderError } from 'commander';
import { ConfigError, coerceError, UsageError } from '../core/errors.js';
import { registerConfigCommand } from './config.js';
import { registerDashboardCommand } from './dashboard.js';
import { registerDemoCommand } from './demo.js';
import { registerIngestCommand } from './ingest.js';
import { registerRunCommands } from './runs.js';
import { registerSimulateCommand } from './simulate.js';
import { registerWorkerCommand } from './worker.js';

export function buildProgram(): Command {
  const program = new Command('depthq')
    .description(
      'Re-render thousands of control images with FLUX.1 Depth on Replicate as one durable, resumable, budgeted run.',
    )
    .addHelpText('after', '\nConfiguration comes from the environment: `depthq config --help` lists the variables.\n')
    .showHelpAfterError('(run with --help for usage)')
    // Commander prints its own message for a bad flag; main() turns it into exit code 2 like every user mistake.
    .exitOverride()
    .configureHelp({ sortSubcommands: true });
  registerConfigCommand(program);
  registerDashboardCommand(program);
  registerDemoCommand(program);
  registerIngestCommand(program);
  registerRunCommands(program);
  registerSimulateCommand(program);
  registerWorkerCommand(program);
  return program;
}

/** Exit code for mistakes a user can fix (configuration, flags, input files), as opposed to 1 for failures. */
export const USER_ERROR_EXIT_CODE = 2;

/** A user can fix these without reading code: they get the message alone, no stack trace. */
function isUserError(error: Error): boolean {
  return error instanceof ConfigError || error instanceof UsageError;
}

async function main(argv: readonly string[]): Promise<void> {
  try {
    await buildProgram().parseAsync([...argv]);
  } catch (thrown) {
    if (thrown instanceof CommanderError) {
      // --help and --version end here too, with exit code 0; anything else is a usage mistake, already printed.
      process.exitCode = thrown.exitCode === 0 ? 0 : USER_ERROR_EXIT_CODE;
      return;
    }
    const error = coerceError(thrown);
    if (isUserError(error)) {
      process.stderr.write(`depthq: ${error.message}\n`);
      process.exitCode = USER_ERROR_EXIT_CODE;
      return;
    }
    process.stderr.write(`depthq: unexpected failure: ${error.stack ?? error.message}\n`);
    process.exitCode = 1;
  }
}

await main(process.argv);
