/**
 * The manifest CSV ingestion script: `npx tsx scripts/ingest-manifest.ts <manifest.csv> --run <id> [flags]`.
 * The same command as `depthq ingest` (src/cli/ingest.ts → src/ingest/ingest-manifest.ts), for pipelines that call a
 * script rather than the CLI. Exit codes: 0 done, 2 a mistake to fix (manifest, flags, environment; nothing enqueued),
 * 1 anything else.
 */
import { Command, CommanderError } from 'commander';
import { configureIngestCommand } from '../src/cli/ingest.js';
import { ConfigError, coerceError, UsageError } from '../src/core/errors.js';

const USER_ERROR_EXIT_CODE = 2;

const program = configureIngestCommand(new Command('ingest-manifest'))
  .exitOverride()
  .showHelpAfterError('(run with --help for usage)');

try {
  await program.parseAsync(process.argv);
} catch (thrown) {
  if (thrown instanceof CommanderError) {
    process.exitCode = thrown.exitCode === 0 ? 0 : USER_ERROR_EXIT_CODE;
  } else {
    const error = coerceError(thrown);
    if (error instanceof UsageError || error instanceof ConfigError) {
      process.stderr.write(`ingest-manifest: ${error.message}\n`);
      process.exitCode = USER_ERROR_EXIT_CODE;
    } else {
      process.stderr.write(`ingest-manifest: unexpected failure: ${error.stack ?? error.message}\n`);
      process.exitCode = 1;
    }
  }
}
