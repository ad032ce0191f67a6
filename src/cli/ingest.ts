/**
 * `depthq ingest <manifest.csv> --run <id>` (and scripts/ingest-manifest.ts): flags → src/ingest/ingest-manifest.ts →
 * a summary. Every mistake in the manifest is listed on stderr at once, file:line:column first, and the command exits 2
 * with nothing enqueued; `--skip-invalid` lists the invalid rows and enqueues the others.
 */
import { type Command, Option } from 'commander';
import { type Config, loadConfig } from '../config/index.js';
import { formatManifestProblem } from '../core/manifest/index.js';
import { formatUsd, type Micros } from '../core/money.js';
import {
  type IngestOutcome,
  type IngestProgress,
  ingestManifest,
  ManifestInvalidError,
} from '../ingest/ingest-manifest.js';
import { DEFAULT_MAX_ROWS, type IngestRequest, ingestSettingsOf } from '../ingest/ingest-settings.js';
import { DEFAULT_PREFLIGHT_CONCURRENCY } from '../ingest/preflight.js';
import { RunLedger } from '../ledger/run-ledger.js';
import { closeConnection, openProducerConnection } from '../queue/connections.js';
import { s3ClientForConfig } from '../storage/s3-client.js';
import { queueSettingsOf } from '../worker/settings.js';
import { dollarsFlag, wholeNumberFlag } from './flags.js';

interface IngestFlags {
  readonly run: string;
  readonly styles?: string;
  readonly set?: string[];
  readonly model?: string;
  readonly budget?: string;
  readonly outputPrefix?: string;
  readonly outputKeyTemplate?: string;
  readonly dryRun?: boolean;
  readonly skipInvalid?: boolean;
  readonly preflight: boolean;
  readonly preflightConcurrency?: string;
  readonly yes?: boolean;
  readonly maxRows?: string;
}

/** Repeatable flag; no commander default, so `--help` shows no `(default: [])`. */
function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function optionalWholeNumberFlag(flag: string, text: string | undefined, min: number, max: number): number | undefined {
  return text === undefined ? undefined : wholeNumberFlag(flag, text, min, max);
}

function budgetFlag(text: string | undefined): Micros | undefined {
  return text === undefined ? undefined : dollarsFlag('--budget', text);
}

/** The flags as an ingest request; every bad value is a UsageError naming its flag. */
export function ingestRequestOf(manifestPath: string, flags: IngestFlags): IngestRequest {
  const request: { -readonly [K in keyof IngestRequest]: IngestRequest[K] } = {
    manifestPath,
    run: flags.run,
    set: flags.set ?? [],
    preflight: flags.preflight,
    dryRun: flags.dryRun === true,
    skipInvalid: flags.skipInvalid === true,
    yes: flags.yes === true,
  };
  if (flags.styles !== undefined) request.stylesPath = flags.styles;
  if (flags.model !== undefined) request.model = flags.model;
  if (flags.outputPrefix !== undefined) request.outputPrefix = flags.outputPrefix;
  if (flags.outputKeyTemplate !== undefined) request.outputKeyTemplate = flags.outputKeyTemplate;
  const budget = budgetFlag(flags.budget);
  if (budget !== undefined) request.budgetMicros = budget;
  const concurrency = optionalWholeNumberFlag('--preflight-concurrency', flags.preflightConcurrency, 1, 1000);
  if (concurrency !== undefined) request.preflightConcurrency = concurrency;
  const maxRows = optionalWholeNumberFlag('--max-rows', flags.maxRows, 1, 100_000_000);
  if (maxRows !== undefined) request.maxRows = maxRows;
  return request;
}

function count(value: number): string {
  return value.toLocaleString('en-US');
}

function countOf(value: number, noun: string): string {
  return `${count(value)} ${noun}${value === 1 ? '' : 's'}`;
}

/** The summary printed after an ingest (or a dry run). */
export function formatIngestSummary(outcome: IngestOutcome): string {
  const lines: string[] = [];
  const title = outcome.dryRun ? 'dry run' : outcome.runCreated ? 'new run' : 'existing run';
  lines.push(`${outcome.manifest.name} → run "${outcome.run}" (${title}, ${outcome.model})`);
  const skipped = outcome.invalidRows > 0 ? ` (${count(outcome.invalidRows)} invalid, skipped)` : '';
  lines.push(`  rows       ${count(outcome.rows)}${skipped}`);
  lines.push(
    `  jobs       ${count(outcome.jobs.total)} (${count(outcome.jobs.new)} new, ${count(outcome.jobs.existing)} already in the run)`,
  );
  lines.push(`  price      ${formatUsd(outcome.estimate.priceMicrosPerImage)} per image`);
  lines.push(
    `  estimate   ${formatUsd(outcome.estimate.totalMicros)} for ${count(outcome.estimate.images)} images; ` +
      `new jobs: ${formatUsd(outcome.estimate.newMicros)} for ${count(outcome.estimate.newImages)} images`,
  );
  const budget =
    outcome.budgetMicros === null
      ? 'none (unlimited: set one with --budget)'
      : `${formatUsd(outcome.budgetMicros)}${outcome.overBudget ? ' — the estimate is above it (--yes given)' : ''}`;
  lines.push(`  budget     ${budget}`);
  lines.push(
    `  preflight  ${outcome.preflighted === undefined ? 'off (--no-preflight)' : `${count(outcome.preflighted)} control images checked`}`,
  );
  lines.push(`  manifest   sha256 ${outcome.manifest.sha256}`);
  if (outcome.normalisedCells > 0) {
    lines.push(
      `  note       ${count(outcome.normalisedCells)} cells were written in a spelling depthq normalised ("1.0" → 1, "TRUE" → true, " 20 " → 20)`,
    );
  }
  lines.push(
    outcome.dryRun
      ? `Dry run: nothing was enqueued and the run was not changed; ${countOf(outcome.jobs.new, 'job')} would be added.`
      : `Enqueued ${countOf(outcome.added, 'new job')}.`,
  );
  return `${lines.join('\n')}\n`;
}

function progressWriter(stream: NodeJS.WriteStream): ((progress: IngestProgress) => void) | undefined {
  if (!stream.isTTY) return undefined;
  return (progress) => {
    const text =
      progress.phase === 'read'
        ? `read ${count(progress.rows)} rows`
        : progress.phase === 'preflight'
          ? `preflight ${count(progress.checked)}/${count(progress.total)} control images`
          : `enqueued ${count(progress.enqueued)}/${count(progress.total)} jobs`;
    stream.write(`\r${text}\u001B[K`);
  };
}

/** Runs one ingest with the configuration's Redis and S3, printing the summary; throws user errors for main to print. */
export async function runIngestCommand(
  request: IngestRequest,
  config: Config,
  io: { readonly stdout: NodeJS.WritableStream; readonly stderr: NodeJS.WriteStream },
): Promise<IngestOutcome> {
  // Flags and S3_BUCKET are checked before Redis is dialled: a typo should not wait for a connection timeout.
  ingestSettingsOf(request, { bucket: config.s3.bucket, canPreflight: true });
  const redis = await openProducerConnection(config.redisUrl, { name: 'depthq-ingest' });
  const s3 = s3ClientForConfig(config);
  const onProgress = progressWriter(io.stderr);
  try {
    const outcome = await ingestManifest(request, {
      redis,
      ledger: new RunLedger(redis, config.prefix),
      prefix: config.prefix,
      bucket: config.s3.bucket,
      s3,
      queueSettings: queueSettingsOf(config),
      ...(onProgress === undefined ? {} : { onProgress }),
    });
    if (onProgress !== undefined) io.stderr.write('\r\u001B[K');
    if (outcome.problems.length > 0) {
      io.stderr.write(
        `Skipped ${count(outcome.invalidRows)} invalid rows (--skip-invalid):\n${outcome.problems.map(formatManifestProblem).join('\n')}\n`,
      );
    }
    io.stdout.write(formatIngestSummary(outcome));
    return outcome;
  } catch (error) {
    if (onProgress !== undefined) io.stderr.write('\r\u001B[K');
    if (error instanceof ManifestInvalidError) io.stderr.write(`${error.listing()}\n`);
    throw error;
  } finally {
    s3.destroy();
    await closeConnection(redis);
  }
}

/** Adds the ingest arguments, flags and action to `command` (the `ingest` subcommand, or a standalone script's root). */
export function configureIngestCommand(command: Command): Command {
  return command
    .description('validate a manifest CSV completely, preflight its control images, estimate, and enqueue its jobs')
    .argument('<manifest.csv>', 'the manifest: id, control_image, prompt, style, output_key, model inputs, metadata')
    .requiredOption('--run <id>', 'the run to add the jobs to (created on first ingest)')
    .option('--styles <styles.csv>', 'render every row once per style: style, prompt ({prompt}, {<column>}), inputs')
    .option('--set <key=value>', 'a default for any model input, e.g. --set steps=30 (repeatable)', collect)
    .option('--model <owner/name>', 'the model (default: black-forest-labs/flux-depth-pro)')
    .option('--budget <usd>', "set the run's budget in dollars, e.g. 250 or 12.50")
    .option('--output-prefix <prefix>', 'prefix of every output key in S3_BUCKET (default: the bucket root)')
    .option('--output-key-template <template>', 'output keys: {run} {id} {style} {seed} {ext} {model} {meta.<column>}')
    .option('--dry-run', 'do everything but enqueue: the run is not created or changed')
    .option('--skip-invalid', 'enqueue the valid rows and list the invalid ones, instead of enqueueing nothing')
    .option('--no-preflight', 'do not check the control images in S3 first')
    .option('--preflight-concurrency <n>', `control images checked at once (default ${DEFAULT_PREFLIGHT_CONCURRENCY})`)
    .option('--yes', 'enqueue even when the estimate is above the budget')
    .addOption(
      new Option(
        '--max-rows <n>',
        `refuse manifests with more rows (default ${DEFAULT_MAX_ROWS.toLocaleString('en-US')})`,
      ),
    )
    .addHelpText(
      'after',
      '\nEvery problem is listed at once as file:line:column (column name): message, and nothing is enqueued (exit 2)\n' +
        'unless --skip-invalid. Ingesting the same manifest again enqueues nothing; a grown manifest adds only its new\n' +
        'rows; a row whose content changed after it was enqueued is an error. Needs REDIS_URL and S3_BUCKET (outputs,\n' +
        'and bare control-image keys); S3_ENDPOINT for S3-compatible storage.',
    )
    .action(async (manifestPath: string, flags: IngestFlags) => {
      const request = ingestRequestOf(manifestPath, flags);
      await runIngestCommand(request, loadConfig(), { stdout: process.stdout, stderr: process.stderr });
    });
}

export function registerIngestCommand(program: Command): void {
  configureIngestCommand(program.command('ingest'));
}
