/**
 * The run commands: `runs`, `status`, `report`, `retry`, `cancel`, `pause`, `resume`, `budget`, `sheet`, `verify`. Thin: parse the
 * flags (src/cli/flags.ts), open the ledger and queue (src/runs/run-context.ts), call src/runs, print. A run id that
 * names no run, a bad flag or a bad amount is a UsageError (exit code 2) with the fix in the message.
 */
import { createWriteStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { type Command, Option } from 'commander';
import { loadConfig } from '../config/index.js';
import { UsageError } from '../core/errors.js';
import { parseRunId } from '../core/keys.js';
import { formatUsd, type Micros } from '../core/money.js';
import { providerForConfig } from '../providers/provider-for-config.js';
import { cancelRun } from '../runs/cancel-run.js';
import { retryRunJobs } from '../runs/retry-jobs.js';
import { withRunContext } from '../runs/run-context.js';
import { changeBudget, describeBudget, pauseRun, resumeRun } from '../runs/run-controls.js';
import { formatRunTable, listRunSummaries, runSummaryJson } from '../runs/run-list.js';
import { REPORT_FORMATS, type ReportFormat, writeRunReport } from '../runs/run-report.js';
import { GRID_MAX_ROWS, writeRunSheet } from '../runs/run-sheet.js';
import { formatRunStatus, readRunStatus, runStatusJson } from '../runs/run-status.js';
import { formatVerifyReport, verifyRun } from '../runs/verify-run.js';
import { watchRunStatus } from '../runs/watch-status.js';
import { s3ClientForConfig } from '../storage/s3-client.js';
import { dollarsFlag, nonEmptyFlag, numberFlag, wholeNumberFlag } from './flags.js';

const CONFIG_HINT = '\nREDIS_URL and DEPTHQ_PREFIX say which ledger is read (`depthq config` shows them).';

function say(text: string): void {
  process.stdout.write(`${text}\n`);
}

/** `unlimited` (or `none`) removes the budget; anything else is dollars, exactly (see usdToMicros). */
export function parseBudgetArgument(text: string): Micros | null {
  if (/^\s*(unlimited|none)\s*$/i.test(text)) return null;
  return dollarsFlag('<usd>', text, ', or "unlimited" to remove the budget');
}

/** Runs `body` with an AbortSignal that the first Ctrl-C (or SIGTERM) aborts. */
async function untilInterrupted<T>(body: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const onSignal = () => controller.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    return await body(controller.signal);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

async function writeReportTo(out: string, write: (stream: Writable) => Promise<number>): Promise<number> {
  if (out === '-') return write(process.stdout);
  const target = path.resolve(out);
  const folder = await stat(path.dirname(target)).catch(() => undefined);
  if (folder === undefined || !folder.isDirectory()) {
    throw new UsageError(`--out ${out}: the folder ${path.dirname(target)} does not exist`);
  }
  // Written beside the target and renamed at the end: a reader never sees half a report, and a failure leaves none.
  const partial = `${target}.partial-${process.pid}`;
  const stream = createWriteStream(partial);
  try {
    const rows = await write(stream);
    stream.end();
    await finished(stream);
    await rename(partial, target);
    return rows;
  } catch (error) {
    stream.destroy();
    await rm(partial, { force: true });
    throw error;
  }
}

export function registerRunCommands(program: Command): void {
  program
    .command('runs')
    .description('list every run: created, model, state, jobs, done, failed, spent/budget (newest first)')
    .option('--json', 'one JSON object per run, one per line')
    .addHelpText('after', CONFIG_HINT)
    .action(async (flags: { json?: boolean }) => {
      await withRunContext(loadConfig(), async ({ ledger, config }) => {
        const summaries = await listRunSummaries(ledger);
        if (flags.json) {
          for (const summary of summaries) say(JSON.stringify(runSummaryJson(summary)));
        } else if (summaries.length === 0) {
          say(`no runs under DEPTHQ_PREFIX=${config.prefix}: \`depthq ingest\` creates one`);
        } else {
          say(formatRunTable(summaries));
        }
      });
    });

  program
    .command('status')
    .description('where a run stands: jobs by state, spent/reserved/budget, images per minute, ETA')
    .argument('<run>', 'the run id (`depthq runs` lists them)', parseRunId)
    .option('--watch', 'redraw until every job has ended (a progress block on a terminal, a line per change otherwise)')
    .option('--json', 'print JSON (with --watch: one JSON object per line, on each change)')
    .option('--interval <seconds>', 'how often --watch reads the ledger', '1')
    .addHelpText(
      'after',
      '\nStates: waiting (queued), running, succeeded, failed, flagged (refused by the content filter), parked (over\n' +
        'budget or paused), canceled. Images per minute: over the last 5 minutes (over the whole run once it ended).\n' +
        'ETA leaves out jobs parked for budget. Exit code 130 when --watch is interrupted.' +
        CONFIG_HINT,
    )
    .action(async (run: string, flags: { watch?: boolean; json?: boolean; interval: string }) => {
      const intervalMs = numberFlag('--interval', flags.interval, 0.2, 3600, 'seconds') * 1000;
      await withRunContext(loadConfig(), async (context) => {
        const meta = await context.requireRun(run);
        if (flags.watch) {
          const outcome = await untilInterrupted((signal) =>
            watchRunStatus(context.ledger, run, meta, {
              stream: process.stdout,
              intervalMs,
              json: flags.json === true,
              signal,
            }),
          );
          if (outcome === 'interrupted') process.exitCode = 130;
          return;
        }
        const status = await readRunStatus(context.ledger, run, meta);
        say(flags.json ? JSON.stringify(runStatusJson(status), null, 2) : formatRunStatus(status));
      });
    });

  program
    .command('report')
    .description(
      'one row per job (row id, style, status, output key, seed, prediction ids, cost, attempts, timings, error, prompt, metadata)',
    )
    .argument('<run>', 'the run id', parseRunId)
    .addOption(new Option('--format <format>', 'csv or JSON lines').choices(REPORT_FORMATS).default('csv'))
    .option('--out <file>', "where to write it; '-' is standard output", '-')
    .addHelpText(
      'after',
      '\nRead from the run ledger, so it works after BullMQ removed finished jobs. Sorted by row id, then style.\n' +
        "CSV: a cell that starts with =, +, -, @, a tab or a carriage return gets a leading ' so spreadsheets show it\n" +
        'as text instead of running it as a formula (formula injection); remove the quote to get the exact value, or\n' +
        'use --format jsonl, which is written unchanged. Metadata columns are named meta.<column>.' +
        CONFIG_HINT,
    )
    .action(async (run: string, flags: { format: ReportFormat; out: string }) => {
      await withRunContext(loadConfig(), async ({ ledger, requireRun }) => {
        await requireRun(run);
        const rows = await writeReportTo(flags.out, async (stream) => {
          const written = await writeRunReport(ledger, run, stream, { format: flags.format });
          return written.rows;
        });
        if (flags.out !== '-') process.stderr.write(`wrote ${rows} rows to ${flags.out}\n`);
      });
    });

  program
    .command('retry')
    .description('requeue jobs that failed (same seed) or were flagged (with --reseed: a new, recorded seed)')
    .argument('<run>', 'the run id', parseRunId)
    .option('--failed', 'jobs that failed (the default when no selection is given)')
    .option('--flagged', 'jobs the content filter refused; needs --reseed')
    .option('--reseed', "give each flagged job its next derived seed (recorded in the ledger and the output's sidecar)")
    .addHelpText(
      'after',
      '\nA job that succeeded is never retried. Each requeued job keeps its id, starts a fresh set of attempts, and\n' +
        'keeps the ids of every prediction made for it so far. A job whose BullMQ job was removed (after 7 days) is\n' +
        'rebuilt from the payload the ledger kept and added again under its id.' +
        CONFIG_HINT,
    )
    .action(async (run: string, flags: { failed?: boolean; flagged?: boolean; reseed?: boolean }) => {
      const selection = {
        failed: flags.failed === true || (flags.flagged !== true && flags.reseed !== true),
        flagged: flags.flagged === true,
        reseed: flags.reseed === true,
      };
      const config = loadConfig();
      await withRunContext(config, async ({ ledger, queue, requireRun }) => {
        const meta = await requireRun(run);
        const outcome = await retryRunJobs(queue, ledger, run, meta, selection, {
          retentionMs: config.replicate.retentionMs,
          marginMs: config.replicate.retentionMarginMs,
        });
        for (const job of outcome.requeued) {
          const seed = job.previousSeed === undefined ? `seed ${job.seed}` : `seed ${job.previousSeed} → ${job.seed}`;
          say(`requeued ${job.jobId} (${job.status}, ${seed})`);
        }
        for (const job of outcome.skipped) say(`skipped ${job.jobId}: ${job.why}`);
        say(`${outcome.requeued.length} jobs requeued, ${outcome.skipped.length} skipped`);
      });
    });

  program
    .command('cancel')
    .description(
      'stop spending on a run: waiting jobs removed, in-flight predictions canceled, every job recorded canceled',
    )
    .argument('<run>', 'the run id', parseRunId)
    .addHelpText(
      'after',
      '\nFinal: a canceled run cannot be resumed. Needs REPLICATE_API_TOKEN (and REPLICATE_BASE_URL for a simulator)\n' +
        'to cancel predictions in flight. Jobs a worker is running are recorded canceled by that worker once their\n' +
        'prediction ends; a prediction that had started may still be billed (the ledger keeps it as possiblyBilled).\n' +
        'A job this command cannot decide (the provider did not answer its cancel or its lookup) stays queued with its\n' +
        'money held; the next worker that takes it cancels and records it. Exit code 1 when there were such problems.' +
        CONFIG_HINT,
    )
    .action(async (run: string) => {
      const config = loadConfig();
      const provider = providerForConfig(config);
      await withRunContext(config, async ({ ledger, queue, requireRun }) => {
        await requireRun(run);
        const outcome = await cancelRun(queue, ledger, provider, run, {
          providerRetentionMs: config.replicate.retentionMs,
        });
        say(
          `run ${run} ${outcome.alreadyCanceled ? 'was already canceled' : 'canceled'}: ` +
            `${outcome.ended} jobs removed and recorded canceled, ${outcome.predictionsCanceled} predictions canceled, ` +
            `${outcome.leftToWorkers} jobs left to the workers (in flight, or undecided here), which cancel and record them` +
            (outcome.finishing > 0 ? `, ${outcome.finishing} finished (paid) predictions will be stored` : ''),
        );
        for (const problem of outcome.problems) process.stderr.write(`depthq cancel: ${problem}\n`);
        if (outcome.problems.length > 0) process.exitCode = 1;
      });
    });

  program
    .command('pause')
    .description("stop starting a run's jobs (other runs on the queue go on); predictions under way finish")
    .argument('<run>', 'the run id', parseRunId)
    .addHelpText('after', CONFIG_HINT)
    .action(async (run: string) => {
      await withRunContext(loadConfig(), async ({ ledger, requireRun }) => {
        await requireRun(run);
        const change = await pauseRun(ledger, run);
        say(
          `run ${run} ${change.previous === 'paused' ? 'was already paused' : 'paused'}: \`depthq resume ${run}\` goes on`,
        );
      });
    });

  program
    .command('resume')
    .description('start a paused run again; its parked jobs are released at once')
    .argument('<run>', 'the run id', parseRunId)
    .addHelpText(
      'after',
      '\nA run pauses itself when Replicate refuses the account (a bad token, no credit, a model gone; `depthq status`\n' +
        'says which): fix that, then resume. If it is not fixed, the run pauses again at the next refused request.' +
        CONFIG_HINT,
    )
    .action(async (run: string) => {
      await withRunContext(loadConfig(), async ({ ledger, queue, requireRun }) => {
        await requireRun(run);
        const change = await resumeRun(queue, ledger, run);
        say(
          `run ${run} ${change.previous === 'active' ? 'was not paused' : 'resumed'}: ${change.released} parked jobs released`,
        );
        if (change.clearedCause !== undefined) {
          say(`it had paused itself (${change.clearedCause.reason}): ${change.clearedCause.message}`);
        }
      });
    });

  program
    .command('budget')
    .description("raise or lower a run's budget; jobs parked over budget are released as far as the money allows")
    .argument('<run>', 'the run id', parseRunId)
    .argument('<usd>', 'the new budget in dollars (e.g. 25 or 1200.50), or "unlimited"')
    .addHelpText(
      'after',
      '\nA budget below what is spent and reserved is allowed: nothing new is reserved until it is raised again.' +
        CONFIG_HINT,
    )
    .action(async (run: string, usd: string) => {
      const budget = parseBudgetArgument(usd);
      await withRunContext(loadConfig(), async ({ ledger, queue, requireRun }) => {
        await requireRun(run);
        const change = await changeBudget(queue, ledger, run, budget);
        const committed = change.money.spent + change.money.reserved + change.money.possiblyBilled;
        say(
          `run ${run}: budget ${describeBudget(change.previous)} → ${describeBudget(change.money.budget)} ` +
            `(spent ${formatUsd(change.money.spent)}, reserved ${formatUsd(change.money.reserved)}); ` +
            (change.paused
              ? 'the run is paused: parked jobs are released by `depthq resume`'
              : `${change.released} parked jobs released`),
        );
        if (change.money.budget !== null && change.money.budget < committed) {
          process.stderr.write(
            `depthq budget: the budget is below what is committed (${formatUsd(committed)}): no job starts until it is raised\n`,
          );
        }
      });
    });

  program
    .command('sheet')
    .description('a contact sheet of a run: index.html and grid.png with each control image beside its outputs')
    .argument('<run>', 'the run id', parseRunId)
    .option('--out <dir>', 'the folder to write (replaced if it holds a previous sheet)', undefined)
    .addHelpText(
      'after',
      `\nOne row per control image, one column per style; cells captioned with seed and cost; failed and flagged cells\n` +
        `marked with the reason. Thumbnails are made with sharp and stored in the folder, so the page works offline.\n` +
        `The PNG grid shows the first ${GRID_MAX_ROWS} control images. Default folder: ./sheet-<run>.\n` +
        'Reads outputs and sidecars from S3 (S3_ENDPOINT, AWS credentials).' +
        CONFIG_HINT,
    )
    .action(async (run: string, flags: { out?: string }) => {
      const config = loadConfig();
      const outDir = nonEmptyFlag('--out', flags.out ?? `sheet-${run}`, 'a folder');
      const s3 = s3ClientForConfig(config);
      try {
        await withRunContext(config, async ({ ledger, queue, requireRun }) => {
          const meta = await requireRun(run);
          const result = await writeRunSheet({ ledger, queue, s3, run, meta, options: { outDir } });
          say(
            `contact sheet of ${result.rows} control images and ${result.images} outputs: ${result.htmlPath}\n` +
              `PNG grid: ${result.gridPath}` +
              (result.gridRowsOmitted > 0 ? ` (first ${GRID_MAX_ROWS} control images)` : ''),
          );
          for (const problem of result.problems) process.stderr.write(`depthq sheet: ${problem}\n`);
        });
      } finally {
        s3.destroy();
      }
    });

  program
    .command('verify')
    .description(
      'audit a run, read-only: jobs accounted, outputs and sidecars in S3, ledger recounted, no paid orphans',
    )
    .argument('<run>', 'the run id', parseRunId)
    .option('--json', 'print the report as JSON (problems with a stable `kind`, and the figures checked)')
    .option('--no-provider', "skip listing the provider's predictions (no orphan check)")
    .option('--concurrency <n>', 'S3 reads and BullMQ lookups in flight at once', '8')
    .option('--max-predictions <n>', "stop listing the provider's predictions after this many", '50000')
    .addHelpText(
      'after',
      "\nChecks: every job ended or held by BullMQ; every succeeded output and sidecar in S3, the output's sha256 and\n" +
        "size equal to its sidecar's, the sidecar's seed, input and prediction id equal to the ledger's; the counters,\n" +
        "spent and reserved equal to a recount of rows, settlements and reservations; and, inside the provider's\n" +
        "retention, no prediction of the run's inputs billed without a row that knows it, none listed twice.\n" +
        'Exit code 0 when all holds, 1 with the list of problems, 2 for a mistake (an unknown run). See docs/verify.md.' +
        CONFIG_HINT,
    )
    .action(
      async (
        run: string,
        flags: { json?: boolean; provider: boolean; concurrency: string; maxPredictions: string },
      ) => {
        const concurrency = wholeNumberFlag('--concurrency', flags.concurrency, 1, 256);
        const maxPredictions = wholeNumberFlag('--max-predictions', flags.maxPredictions, 1, 10_000_000);
        await withRunContext(loadConfig(), async (context) => {
          const report = await verifyRun(context, run, {
            concurrency,
            maxPredictions,
            ...(flags.provider ? {} : { provider: null }),
          });
          say(flags.json ? JSON.stringify(report, null, 2) : formatVerifyReport(report));
          if (!report.ok) process.exitCode = 1;
        });
      },
    );
}
