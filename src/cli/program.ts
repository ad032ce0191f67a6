/**
 * `depthq`'s commands and how a command's end becomes an exit code. Thin by design: each command parses its flags and
 * calls the modules that do the work. User mistakes (bad flags, bad environment, bad input files) end with one clear
 * message and exit code 2; anything else is a bug and keeps its stack trace. main.ts runs it for the process; tests run
 * it in-process (`runCli`), so a user mistake is checked without starting a Node process per case.
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
  refuseRepeatedFlags(program);
  return program;
}

/**
 * A flag that takes one value and is given twice (`--run a … --run b`) is a mistake commander would settle silently by
 * keeping the last; depthq refuses it for every command, naming both values. Repeatable flags (`--set`) have their own
 * parser and are left alone.
 */
function refuseRepeatedFlags(command: Command): void {
  for (const option of command.options) {
    const takesValue = option.required || option.optional;
    if (!takesValue || option.variadic || option.parseArg !== undefined) continue;
    const name = option.attributeName();
    option.argParser((value: string, previous: unknown) => {
      if (command.getOptionValueSource(name) === 'cli') {
        throw new UsageError(
          `${option.long ?? option.flags} is given twice (${JSON.stringify(previous)}, then ${JSON.stringify(value)}): give it once`,
        );
      }
      return value;
    });
  }
  for (const subcommand of command.commands) refuseRepeatedFlags(subcommand);
}

/** Exit code for mistakes a user can fix (configuration, flags, input files), as opposed to 1 for failures. */
export const USER_ERROR_EXIT_CODE = 2;

/** A user can fix these without reading code: they get the message alone, no stack trace. */
function isUserError(error: Error): boolean {
  return error instanceof ConfigError || error instanceof UsageError;
}

/**
 * Runs one command line (`argv` as node gives it: node, script, arguments…) and returns its exit code; what the command
 * prints goes to process.stdout and process.stderr. Never throws.
 */
export async function runCli(argv: readonly string[]): Promise<number> {
  try {
    await buildProgram().parseAsync([...argv]);
    return 0;
  } catch (thrown) {
    if (thrown instanceof CommanderError) {
      // --help and --version end here too, with exit code 0; anything else is a usage mistake, already printed.
      return thrown.exitCode === 0 ? 0 : USER_ERROR_EXIT_CODE;
    }
    const error = coerceError(thrown);
    if (isUserError(error)) {
      process.stderr.write(`depthq: ${error.message}\n`);
      return USER_ERROR_EXIT_CODE;
    }
    process.stderr.write(`depthq: unexpected failure: ${error.stack ?? error.message}\n`);
    return 1;
  }
}
