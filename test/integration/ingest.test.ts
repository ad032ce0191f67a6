/**
 * Manifest ingestion against a real redis-server (and s3rver for the output bucket's name): every class of bad input is
 * refused with its line, column and an actionable message and leaves Redis untouched; valid manifests in the forms
 * spreadsheets write are read exactly; re-ingests are idempotent. Preflight has its own file (ingest-preflight).
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UsageError } from '../../src/core/errors.js';
import { renderJobId } from '../../src/core/keys.js';
import type { ManifestProblem } from '../../src/core/manifest/index.js';
import { deriveSeed } from '../../src/core/seed.js';
import {
  BudgetConfirmationError,
  type IngestOutcome,
  ingestManifest,
  ManifestInvalidError,
} from '../../src/ingest/ingest-manifest.js';
import type { IngestRequest } from '../../src/ingest/ingest-settings.js';
import { RunSources } from '../../src/ingest/job-sources.js';
import { RunLedger, RunMetaConflictError } from '../../src/ledger/run-ledger.js';
import { closeConnection, connectProducer, createProducerConnection } from '../../src/queue/connections.js';
import { RENDER_QUEUE_NAME, type RenderJobData } from '../../src/queue/render-queue.js';
import { uniqueName, useLocalStack } from '../helpers/stack.js';

const stack = useLocalStack({ simulator: false });
let redis: Redis;
let bucket: string;
let workDirectory: string;
const queues: Queue<RenderJobData>[] = [];

beforeAll(async () => {
  const running = stack();
  if (running.redis === undefined || running.s3 === undefined) throw new Error('the stack lacks Redis or S3');
  redis = createProducerConnection(running.redis.url);
  await connectProducer(redis);
  bucket = running.s3.bucket;
  workDirectory = await mkdtemp(path.join(os.tmpdir(), 'depthq-ingest-test-'));
});

afterAll(async () => {
  await Promise.all(queues.map((queue) => queue.close()));
  await closeConnection(redis);
  await rm(workDirectory, { recursive: true, force: true });
});

interface Namespace {
  readonly prefix: string;
  readonly ledger: RunLedger;
  readonly sources: RunSources;
  readonly queue: () => Queue<RenderJobData>;
}

function namespace(): Namespace {
  const prefix = uniqueName('ing');
  return {
    prefix,
    ledger: new RunLedger(redis, prefix),
    sources: new RunSources(redis, prefix),
    queue: () => {
      const queue = new Queue<RenderJobData>(RENDER_QUEUE_NAME, { connection: redis, prefix });
      queues.push(queue);
      return queue;
    },
  };
}

async function writeCsv(content: string | Buffer, name = 'manifest.csv'): Promise<string> {
  const directory = await mkdtemp(path.join(workDirectory, 'case-'));
  const file = path.join(directory, name);
  await writeFile(file, content);
  return file;
}

async function ingest(
  space: Namespace,
  manifest: string | Buffer,
  request: Partial<IngestRequest> = {},
  name = 'manifest.csv',
): Promise<IngestOutcome> {
  const manifestPath = await writeCsv(manifest, name);
  return ingestManifest(
    { manifestPath, run: 'run-1', preflight: false, ...request },
    { redis, ledger: space.ledger, prefix: space.prefix, bucket },
  );
}

async function refusal(promise: Promise<unknown>): Promise<ManifestInvalidError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(ManifestInvalidError);
  if (!(error instanceof ManifestInvalidError)) throw new Error('unreachable');
  return error;
}

/** Every key under the namespace: none at all means no run, no job, no ledger row, no source was written. */
async function keysOf(space: Namespace): Promise<string[]> {
  return (await redis.keys(`${space.prefix}:*`)).sort();
}

/** What a second ingest must leave exactly as it was. */
async function stateOf(space: Namespace, run = 'run-1') {
  const queue = space.queue();
  return {
    keys: await keysOf(space),
    counters: await space.ledger.counters(run),
    jobs: await queue.getJobCounts('waiting', 'delayed', 'prioritized'),
    ingests: (await space.sources.ingests(run)).length,
  };
}

const header = 'id,control_image,prompt,steps,room';

describe('valid manifests', () => {
  it('reads a BOM, CRLF, quoted commas and newlines, blank lines, unicode and odd spellings exactly', async () => {
    const space = namespace();
    const text =
      '\uFEFFid,control_image,prompt,steps,prompt_upsampling,output_format,room\r\n' +
      'kitchen-1,controls/k1.png,"A kitchen, oak floor",20,TRUE,JPG,kitchen\r\n' +
      '\r\n' +
      'stube-ü,s3://other-bucket/ctl/stübe.png,"Eine Stube\r\nmit Kachelofen, 🏠", 1.5e1 ,no,png,"Wohn ""Stube"""\r\n' +
      ',,,,,,\r\n' +
      'hall_2,controls/h2.png,A hall, 30.0 ,1,png,hall\r\n';
    const bad = await refusal(ingest(space, text));
    // The exponent is the one spelling refused: everything else in this file is valid.
    expect(bad.manifestProblems.map((problem) => [problem.line, problem.column?.name])).toEqual([[4, 'steps']]);
    expect(await keysOf(space)).toEqual([]);

    const fixed = text.replace(' 1.5e1 ', ' 15 ');
    const outcome = await ingest(space, fixed);
    expect(outcome).toMatchObject({ rows: 3, invalidRows: 0, added: 3, jobs: { total: 3, new: 3, existing: 0 } });
    expect(outcome.normalisedCells).toBe(6);
    expect(outcome.manifest.sha256).toBe(createHash('sha256').update(fixed, 'utf8').digest('hex'));

    const queue = space.queue();
    const stube = await queue.getJob(renderJobId({ run: 'run-1', rowId: 'stube-ü', style: null }));
    expect(stube?.data).toMatchObject({
      rowId: 'stube-ü',
      controlImage: { bucket: 'other-bucket', key: 'ctl/stübe.png' },
      input: {
        prompt: 'Eine Stube\r\nmit Kachelofen, 🏠',
        steps: 15,
        prompt_upsampling: false,
        output_format: 'png',
        seed: deriveSeed({ run: 'run-1', rowId: 'stube-ü', style: null, reseed: 0 }),
      },
      output: { bucket, key: 'run-1/stube-ü.png' },
      metadata: { room: 'Wohn "Stube"' },
    });
    const kitchen = await queue.getJob(renderJobId({ run: 'run-1', rowId: 'kitchen-1', style: null }));
    expect(kitchen?.data.input).toMatchObject({ steps: 20, prompt_upsampling: true, output_format: 'jpg' });

    // Metadata columns reach the ledger's rows from the start, so reports show them for jobs that never ran too.
    const stubeRow = await space.ledger.result('run-1', renderJobId({ run: 'run-1', rowId: 'stube-ü', style: null }));
    expect(stubeRow).toMatchObject({
      status: 'queued',
      metadata: { room: 'Wohn "Stube"' },
      outputKey: 'run-1/stube-ü.png',
    });

    const meta = await space.ledger.getRun('run-1');
    expect(meta?.manifest).toEqual({ name: 'manifest.csv', sha256: outcome.manifest.sha256 });
    expect((await space.ledger.counters('run-1')).queued).toBe(3);
    const [record] = await space.sources.ingests('run-1');
    expect(record).toMatchObject({ manifest: { name: 'manifest.csv', sha256: outcome.manifest.sha256 }, added: 3 });
  });

  it('enqueues nothing when the same manifest is ingested again', async () => {
    const space = namespace();
    const text = `${header}\na,controls/a.png,A,20,x\nb,controls/b.png,B,20,y\n`;
    expect((await ingest(space, text)).added).toBe(2);
    const before = await stateOf(space);
    const again = await ingest(space, text);
    expect(again).toMatchObject({ added: 0, runCreated: false, jobs: { total: 2, new: 0, existing: 2 } });
    const after = await stateOf(space);
    expect({ ...after, ingests: before.ingests }).toEqual(before);
    expect(after.ingests).toBe(2);
  });

  it('adds only the new rows of a grown manifest and records each manifest per ingest', async () => {
    const space = namespace();
    const first = `${header}\na,controls/a.png,A,20,x\nb,controls/b.png,B,20,y\n`;
    const grown = `${first}c,controls/c.png,C,20,z\nd,controls/d.png,D,20,w\n`;
    const one = await ingest(space, first);
    const two = await ingest(space, grown);
    expect(two).toMatchObject({ added: 2, jobs: { total: 4, new: 2, existing: 2 } });
    expect((await space.ledger.counters('run-1')).total).toBe(4);
    // The run keeps the manifest it was created from; each ingest records its own.
    expect((await space.ledger.getRun('run-1'))?.manifest.sha256).toBe(one.manifest.sha256);
    expect((await space.sources.ingests('run-1')).map((record) => [record.manifest.sha256, record.added])).toEqual([
      [one.manifest.sha256, 2],
      [two.manifest.sha256, 2],
    ]);
    const ids = ['a', 'c'].map((rowId) => renderJobId({ run: 'run-1', rowId, style: null }));
    expect((await space.sources.lookup('run-1', ids)).map((source) => [source?.ingest, source?.line])).toEqual([
      [0, 2],
      [1, 4],
    ]);
  });

  it('renders every row in every style, with the style in job ids and output keys', async () => {
    const space = namespace();
    const styles = await writeCsv(
      'style,prompt,steps\nmodern,"{prompt}, modern {room}",30\nnight,"{prompt} at night",\nsketch,"pencil sketch of a {room}",\n',
      'styles.csv',
    );
    const outcome = await ingest(
      space,
      'id,control_image,prompt,room,style\nr1,controls/a.png,A hall,hall,\nr2,controls/b.png,A bath,bath,night\n',
      { stylesPath: styles, outputPrefix: 'renders/', set: ['steps=20'] },
    );
    expect(outcome).toMatchObject({ added: 4, jobs: { total: 4 } });
    const queue = space.queue();
    const jobs = await queue.getJobs(['waiting']);
    const summary = jobs
      .map((job) => [job.id, job.data.input.prompt, job.data.input.steps, job.data.output.key])
      .sort((a, b) => String(a[0]).localeCompare(String(b[0])));
    expect(summary).toEqual([
      ['run-1.r1.modern', 'A hall, modern hall', 30, 'renders/run-1/modern/r1.jpg'],
      ['run-1.r1.night', 'A hall at night', 20, 'renders/run-1/night/r1.jpg'],
      ['run-1.r1.sketch', 'pencil sketch of a hall', 20, 'renders/run-1/sketch/r1.jpg'],
      ['run-1.r2.night', 'A bath at night', 20, 'renders/run-1/night/r2.jpg'],
    ]);
    const ingest0 = (await space.sources.ingests('run-1'))[0];
    expect(ingest0?.styles?.name).toBe('styles.csv');
  });
});

describe('the example manifest and styles (test/fixtures/manifests)', () => {
  it('give one job per row and style, with the documented ids, prompts, inputs and keys', async () => {
    const space = namespace();
    const fixtures = path.resolve(import.meta.dirname, '../fixtures/manifests');
    const outcome = await ingestManifest(
      {
        manifestPath: path.join(fixtures, 'example.csv'),
        stylesPath: path.join(fixtures, 'styles.csv'),
        run: 'example',
        outputPrefix: 'renders',
        preflight: false,
        dryRun: true,
      },
      { redis, ledger: space.ledger, prefix: space.prefix, bucket },
    );
    expect(outcome).toMatchObject({ rows: 3, jobs: { total: 6, new: 6 }, normalisedCells: 1 });
    expect(outcome.estimate).toMatchObject({ images: 6, totalMicros: 300_000 });
    expect(await keysOf(space)).toEqual([]);

    const real = await ingestManifest(
      {
        manifestPath: path.join(fixtures, 'example.csv'),
        stylesPath: path.join(fixtures, 'styles.csv'),
        run: 'example',
        outputPrefix: 'renders',
        preflight: false,
      },
      { redis, ledger: space.ledger, prefix: space.prefix, bucket },
    );
    expect(real.added).toBe(6);
    const queue = space.queue();
    const night = await queue.getJob(renderJobId({ run: 'example', rowId: 'living-02', style: 'night' }));
    expect(night?.data).toMatchObject({
      input: {
        prompt: 'A living room with a "Chesterfield" sofa, at night, warm lights in the living room',
        guidance: 3.5,
        steps: 50,
        seed: deriveSeed({ run: 'example', rowId: 'living-02', style: 'night', reseed: 0 }),
      },
      output: { key: 'renders/example/night/living-02.jpg' },
      metadata: { room: 'living room', notes: '' },
    });
    const facade = await queue.getJob(renderJobId({ run: 'example', rowId: 'facade-03', style: 'scandinavian' }));
    expect(facade?.data).toMatchObject({
      controlImage: { bucket: 'other-bucket', key: 'facades/03.jpg' },
      input: { steps: 20, guidance: 15, seed: expect.any(Number) },
      metadata: { notes: 'two lines\nof notes' },
      seedSource: 'derived',
    });
    const kitchen = await queue.getJob(renderJobId({ run: 'example', rowId: 'kitchen-01', style: 'night' }));
    expect(kitchen?.data).toMatchObject({ input: { seed: 1234, steps: 30 }, seedSource: 'manifest' });
  });
});

interface BadCase {
  readonly name: string;
  readonly manifest: string | Buffer;
  readonly request?: Partial<IngestRequest>;
  readonly styles?: string;
  readonly line: number;
  readonly column?: { readonly index: number; readonly name: string };
  readonly words: readonly string[];
}

const badCases: readonly BadCase[] = [
  {
    name: 'a value outside the model’s range',
    manifest: `${header}\na,controls/a.png,A,20,x\nb,controls/b.png,B,60,y\n`,
    line: 3,
    column: { index: 4, name: 'steps' },
    words: ['steps must be a whole number from 15 to 50', 'got 60'],
  },
  {
    name: 'a number written ambiguously',
    manifest: `${header}\na,controls/a.png,A,20.5,x\n`,
    line: 2,
    column: { index: 4, name: 'steps' },
    words: ['got "20.5"', 'write 20 or 21'],
  },
  {
    name: 'a boolean that is neither true nor false',
    manifest: 'id,control_image,prompt,prompt_upsampling\na,controls/a.png,A,maybe\n',
    line: 2,
    column: { index: 4, name: 'prompt_upsampling' },
    words: ['prompt_upsampling must be true or false, got "maybe"'],
  },
  {
    name: 'a value not among the model’s choices',
    manifest: 'id,control_image,prompt,output_format\na,controls/a.png,A,gif\n',
    line: 2,
    column: { index: 4, name: 'output_format' },
    words: ['output_format must be one of "jpg", "png", got "gif"'],
  },
  {
    name: 'a duplicate id',
    manifest: `${header}\na,controls/a.png,A,20,x\nb,controls/b.png,B,20,y\na,controls/c.png,C,20,z\n`,
    line: 4,
    column: { index: 1, name: 'id' },
    words: ['id "a" is also on line 2', 'ids must be unique'],
  },
  {
    name: 'an empty prompt',
    manifest: `${header}\na,controls/a.png,   ,20,x\n`,
    line: 2,
    column: { index: 3, name: 'prompt' },
    words: ['prompt is empty: write what to render'],
  },
  {
    name: 'a bad s3:// URI',
    manifest: `${header}\na,s3:/bucket/a.png,A,20,x\n`,
    line: 2,
    column: { index: 2, name: 'control_image' },
    words: ['"s3:/bucket/a.png" is not an s3:// URI', 'write s3://bucket/key'],
  },
  {
    name: 'a bucket name S3 refuses',
    manifest: `${header}\na,s3://My_Bucket/a.png,A,20,x\n`,
    line: 2,
    column: { index: 2, name: 'control_image' },
    words: ['"My_Bucket" is not an S3 bucket name'],
  },
  {
    name: 'an output key that escapes its prefix',
    manifest: `${header},output_key\na,controls/a.png,A,20,x,../../elsewhere/a.{ext}\n`,
    request: { outputPrefix: 'renders' },
    line: 2,
    column: { index: 6, name: 'output_key' },
    words: ["'..' segment, which would climb out of its prefix"],
  },
  {
    name: 'an id that would escape the output prefix',
    manifest: `${header}\n../../etc,controls/a.png,A,20,x\n`,
    line: 2,
    column: { index: 1, name: 'id' },
    words: ['id "../../etc" cannot be part of the output key', 'use another id'],
  },
  {
    name: 'more rows than the limit',
    manifest: `${header}\na,controls/a.png,A,20,x\nb,controls/b.png,B,20,y\nc,controls/c.png,C,20,z\n`,
    request: { maxRows: 2 },
    line: 4,
    words: ['more than 2 rows', 'raise --max-rows'],
  },
  {
    name: 'a row with more fields than the header',
    manifest: `${header}\na,controls/a.png,A, with a comma,20,x\n`,
    line: 2,
    words: ['has 6 fields but the header has 5 columns', 'quote fields that contain commas'],
  },
  {
    name: 'a misspelt input column',
    manifest: 'id,control_image,prompt,guidence\na,controls/a.png,A,3\n',
    line: 1,
    column: { index: 4, name: 'guidence' },
    words: ['looks like a misspelling of guidance', 'rename it to guidance'],
  },
  {
    name: 'a missing id column',
    manifest: 'key,control_image,prompt\na,controls/a.png,A\n',
    line: 1,
    words: ['there is no id column'],
  },
  {
    name: 'a quote that is never closed',
    manifest: `${header}\na,controls/a.png,A,20,x\nb,controls/b.png,"B,20,y\nc,controls/c.png,C,20,z\n`,
    line: 3,
    words: ['never closed', 'nothing after this line was read'],
  },
  {
    name: 'bytes that are not UTF-8',
    manifest: Buffer.concat([
      Buffer.from(`${header}\na,controls/a.png,Caf`),
      Buffer.from([0xe9]),
      Buffer.from(',20,x\n'),
    ]),
    line: 2,
    column: { index: 3, name: 'prompt' },
    words: ['not UTF-8', 'save the manifest as UTF-8'],
  },
  {
    name: 'a style the styles file does not have',
    manifest: 'id,control_image,prompt,style\na,controls/a.png,A,noon\n',
    styles: 'style,prompt\nmodern,{prompt}\n',
    line: 2,
    column: { index: 4, name: 'style' },
    words: ['style "noon" is not in styles.csv', 'write one of modern'],
  },
];

describe('bad input: every class is refused with line, column and an actionable message, and nothing is enqueued', () => {
  it.each(badCases)('$name', async (bad) => {
    const space = namespace();
    const request: Partial<IngestRequest> =
      bad.styles === undefined
        ? { ...bad.request }
        : { ...bad.request, stylesPath: await writeCsv(bad.styles, 'styles.csv') };
    const error = await refusal(ingest(space, bad.manifest, request));
    const problem = error.manifestProblems.find((candidate) => candidate.line === bad.line);
    expect(problem, error.listing()).toBeDefined();
    const found = problem as ManifestProblem;
    expect(found.column).toEqual(bad.column);
    for (const words of bad.words) expect(found.message).toContain(words);
    expect(error.message).toContain('nothing was enqueued');
    expect(await keysOf(space)).toEqual([]);
  });

  it('reports every problem of the whole manifest at once, in line order', async () => {
    const space = namespace();
    const error = await refusal(
      ingest(
        space,
        `${header}\na,controls/a.png,A,60,x\nb,,B,20,y\nc,controls/c.png,,20,z\nok,controls/ok.png,Fine,20,w\na,controls/d.png,D,20,v\n`,
      ),
    );
    expect(error.manifestProblems.map((problem) => [problem.line, problem.column?.name])).toEqual([
      [2, 'steps'],
      [3, 'control_image'],
      [4, 'prompt'],
      [6, 'id'],
    ]);
    expect(error.message).toBe(
      'manifest.csv: 4 problems in 4 rows of 5; nothing was enqueued. Fix them and ingest again, or pass --skip-invalid to enqueue the valid rows',
    );
    expect(error.listing().split('\n')[0]).toBe(
      'manifest.csv:2:4 (steps): steps must be a whole number from 15 to 50, got 60',
    );
    expect(await keysOf(space)).toEqual([]);
  });

  it('refuses a bad --set, --model or --output-key-template before reading anything, naming the flag', async () => {
    const space = namespace();
    const manifest = `${header}\na,controls/a.png,A,20,x\n`;
    await expect(ingest(space, manifest, { set: ['steps=1.5'] })).rejects.toThrow(
      '--set steps=1.5: steps must be a whole number from 15 to 50, got "1.5": write 1 or 2',
    );
    await expect(ingest(space, manifest, { model: 'acme/flux' })).rejects.toThrow(
      '--model: "acme/flux" is not a registered model',
    );
    await expect(ingest(space, manifest, { outputKeyTemplate: '{run}/{colour}.{ext}' })).rejects.toThrow(
      '--output-key-template: Output key template "{run}/{colour}.{ext}" uses the unknown placeholder {colour}',
    );
    await expect(ingest(space, manifest, { run: 'Run 1' })).rejects.toThrow('--run: "Run 1" is not a valid run id');
    expect(await keysOf(space)).toEqual([]);
  });

  it('refuses a row whose content changed after it was enqueued, naming both lines, and changes nothing', async () => {
    const space = namespace();
    await ingest(space, `${header}\na,controls/a.png,A,20,x\nb,controls/b.png,Old prompt,20,y\n`);
    const before = await stateOf(space);
    const error = await refusal(
      ingest(
        space,
        `${header}\nnew,controls/n.png,N,20,n\na,controls/a.png,A,20,x\n\nb,controls/b.png,New prompt,20,y\n`,
        {},
        'shots.csv',
      ),
    );
    expect(error.manifestProblems).toHaveLength(1);
    expect(error.listing()).toBe(
      'shots.csv:5:1 (id): id "b" was already enqueued from manifest.csv line 3 with different content: ' +
        'prompt is "Old prompt" there, "New prompt" here. An enqueued job does not change: give the row a new id ' +
        'to render it anew, restore the old values, or use a new run',
    );
    expect(await stateOf(space)).toEqual(before);
  });

  it('refuses a run whose settings differ from this ingest, and changes nothing', async () => {
    const space = namespace();
    const manifest = `${header}\na,controls/a.png,A,20,x\n`;
    await ingest(space, manifest);
    const before = await stateOf(space);
    const attempt = ingest(space, `${manifest}b,controls/b.png,B,20,y\n`, { set: ['guidance=7'] });
    await expect(attempt).rejects.toThrow(RunMetaConflictError);
    await expect(attempt).rejects.toThrow('defaults is {"guidance":7} (the run has {})');
    expect(await stateOf(space)).toEqual(before);
  });
});

describe('budget, dry run and skipping invalid rows', () => {
  const manifest = `${header}\na,controls/a.png,A,20,x\nb,controls/b.png,B,20,y\nc,controls/c.png,C,20,z\n`;

  it('needs --yes for an estimate above the budget, and sets the budget', async () => {
    const space = namespace();
    const attempt = ingest(space, manifest, { budgetMicros: 100_000 });
    await expect(attempt).rejects.toThrow(BudgetConfirmationError);
    await expect(attempt).rejects.toThrow(
      "the estimate of $0.15 (3 images in 3 jobs at $0.05) is above the run's budget of $0.10; nothing was enqueued. Pass --yes",
    );
    expect(await keysOf(space)).toEqual([]);

    const outcome = await ingest(space, manifest, { budgetMicros: 100_000, yes: true });
    expect(outcome).toMatchObject({ added: 3, overBudget: true, budgetMicros: 100_000 });
    expect((await space.ledger.money('run-1')).budget).toBe(100_000);

    // A later ingest with --budget changes the run's budget; without it the run's budget is checked.
    await ingest(space, manifest, { budgetMicros: 1_000_000 });
    expect((await space.ledger.money('run-1')).budget).toBe(1_000_000);
    const grown = `${manifest}${[
      'd',
      'e',
      'f',
      'g',
      'h',
      'i',
      'j',
      'k',
      'l',
      'm',
      'n',
      'o',
      'p',
      'q',
      'r',
      's',
      't',
      'u',
    ]
      .map((id) => `${id},controls/${id}.png,${id},20,x`)
      .join('\n')}\n`;
    await expect(ingest(space, grown)).rejects.toThrow("is above the run's budget of $1.00");
  });

  it('does everything but enqueue on a dry run: the run is not created or changed', async () => {
    const space = namespace();
    const dry = await ingest(space, manifest, { dryRun: true, budgetMicros: 1_000_000 });
    expect(dry).toMatchObject({
      dryRun: true,
      runCreated: false,
      added: 0,
      jobs: { total: 3, new: 3, existing: 0 },
      estimate: { priceMicrosPerImage: 50_000, totalMicros: 150_000, newMicros: 150_000 },
    });
    expect(await keysOf(space)).toEqual([]);
    await expect(ingest(space, `${header}\na,controls/a.png,A,99,x\n`, { dryRun: true })).rejects.toThrow(
      ManifestInvalidError,
    );

    await ingest(space, manifest);
    const before = await stateOf(space);
    const dryGrown = await ingest(space, `${manifest}d,controls/d.png,D,20,w\n`, { dryRun: true });
    expect(dryGrown).toMatchObject({ added: 0, jobs: { total: 4, new: 1, existing: 3 } });
    expect(await stateOf(space)).toEqual(before);
  });

  it('enqueues the valid rows and lists the invalid ones with --skip-invalid', async () => {
    const space = namespace();
    const outcome = await ingest(
      space,
      `${header}\na,controls/a.png,A,20,x\nb,controls/b.png,B,10,y\nc,controls/c.png,C,20,z\n`,
      { skipInvalid: true },
    );
    expect(outcome).toMatchObject({ rows: 3, invalidRows: 1, added: 2, jobs: { total: 2 } });
    expect(outcome.problems.map((problem) => [problem.line, problem.column?.name])).toEqual([[3, 'steps']]);
    const queue = space.queue();
    expect((await queue.getJobs(['waiting'])).map((job) => job.data.rowId).sort()).toEqual(['a', 'c']);
    expect((await space.sources.ingests('run-1'))[0]).toMatchObject({ rows: 3, invalidRows: 1, added: 2 });
  });

  it('refuses to enqueue anything when every row is invalid, even with --skip-invalid', async () => {
    const space = namespace();
    const attempt = ingest(space, `${header}\na,controls/a.png,A,10,x\n`, { skipInvalid: true });
    await expect(attempt).rejects.toThrow('every one of its 1 row is invalid');
    expect(await keysOf(space)).toEqual([]);
    await expect(ingest(space, `${header}\n`)).rejects.toThrow(UsageError);
    expect(await keysOf(space)).toEqual([]);
  });
});
