import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { formatIngestSummary, ingestRequestOf } from '../../src/cli/ingest.js';
import { UsageError } from '../../src/core/errors.js';
import { fluxDepthPro } from '../../src/core/models.js';
import { buildRenderJob, type RenderJob } from '../../src/core/render-job.js';
import { describeJobDifferences } from '../../src/ingest/existing-jobs.js';
import type { IngestOutcome } from '../../src/ingest/ingest-manifest.js';
import { differingParts, jobContentDigests } from '../../src/ingest/job-sources.js';
import { JobSpool } from '../../src/ingest/job-spool.js';
import { describeFirstBytes, unusableImageProblem } from '../../src/ingest/preflight.js';

function job(overrides: { prompt?: string; steps?: number; note?: string; key?: string } = {}): RenderJob {
  return buildRenderJob({
    run: 'run-1',
    rowId: 'a',
    style: null,
    model: fluxDepthPro.id,
    controlImage: { bucket: 'bucket-1', key: overrides.key ?? 'controls/a.png' },
    input: { prompt: overrides.prompt ?? 'a hall', steps: overrides.steps ?? 20 },
    output: { bucket: 'bucket-1' },
    metadata: { note: overrides.note ?? 'x' },
  });
}

describe('what preflight says it found', () => {
  const ref = { bucket: 'b-1', key: 'controls/a.jpg' };
  const info = (head: Uint8Array, size = head.length) => ({
    etag: undefined,
    size,
    contentType: undefined,
    imageType: undefined,
    head,
  });

  it.each<[string, Uint8Array, string]>([
    ['text', Buffer.from('hello world, not an image'), "text (starts with 'hello world, not an imag…')"],
    ['HTML', Buffer.from('<!doctype html><html>'), "HTML text (starts with '<!doctype html><html>')"],
    ['a PDF', Buffer.from('%PDF-1.7 ...'), 'a PDF document'],
    [
      'a TIFF',
      Buffer.from([0x49, 0x49, 0x2a, 0x00, 1, 2, 3, 4, 5, 6, 7, 8]),
      'a TIFF image, which the model does not accept',
    ],
    [
      'binary',
      Buffer.from([0x00, 0x01, 0xfe, 0xff, 0x10, 0x20, 0x30, 0x40, 0x50]),
      'unrecognised binary data (starts with 00 01 fe ff 10 20 30 40)',
    ],
  ])('describes %s', (_name, bytes, words) => {
    expect(describeFirstBytes(bytes)).toBe(words);
  });

  it('names the object and what is wrong with it', () => {
    expect(unusableImageProblem(ref, info(new Uint8Array(0), 0), 1000)).toBe(
      'control image s3://b-1/controls/a.jpg is empty (0 bytes): upload the image again',
    );
    expect(unusableImageProblem(ref, info(Buffer.from('hello world'), 3 * 1024 * 1024), 1024 * 1024)).toBe(
      'control image s3://b-1/controls/a.jpg is 3.0 MiB, over the 1.0 MiB limit: resize or recompress it',
    );
    expect(unusableImageProblem(ref, info(Buffer.from('hello world')), 1000)).toContain(
      "is not a JPEG, PNG, GIF or WebP image: found text (starts with 'hello world')",
    );
    expect(unusableImageProblem(ref, { ...info(Buffer.from('RIFF0000WEBPVP8 ')), imageType: 'webp' }, 1000)).toBe(
      undefined,
    );
  });
});

describe('job content digests', () => {
  it('are equal for equal content and name the part that differs', () => {
    const base = jobContentDigests(job());
    expect(jobContentDigests(job())).toBe(base);
    expect(differingParts(base, jobContentDigests(job({ prompt: 'a kitchen' })))).toEqual(['input']);
    expect(differingParts(base, jobContentDigests(job({ note: 'y' })))).toEqual(['metadata']);
    expect(differingParts(base, jobContentDigests(job({ key: 'controls/b.png' })))).toEqual(['controlImage']);
  });

  it('describe the differences of two payloads field by field', () => {
    expect(describeJobDifferences(job(), job({ prompt: 'a kitchen', steps: 30 }))).toEqual([
      'prompt is "a hall" there, "a kitchen" here',
      'steps is 20 there, 30 here',
    ]);
    expect(describeJobDifferences(job(), job({ note: 'y' }))).toEqual([
      'metadata column "note" is "x" there, "y" here',
    ]);
  });
});

describe('the job spool', () => {
  it('gives back what was written, with or without payloads', async () => {
    const spool = await JobSpool.create(os.tmpdir());
    try {
      const payload = job();
      await spool.write({
        line: 2,
        jobId: 'run-1.a',
        digests: 'd',
        costMicros: 50_000,
        images: 1,
        isNew: true,
        job: payload,
      });
      await spool.write({ line: 3, jobId: 'run-1.b', digests: 'e', costMicros: 50_000, images: 1, isNew: false });
      await spool.finish();
      const all = [];
      for await (const entry of spool.read()) all.push(entry);
      expect(all).toEqual([
        { line: 2, jobId: 'run-1.a', digests: 'd', costMicros: 50_000, images: 1, isNew: true, job: payload },
        { line: 3, jobId: 'run-1.b', digests: 'e', costMicros: 50_000, images: 1, isNew: false },
      ]);
      const headers = [];
      for await (const entry of spool.read({ payloads: false })) headers.push(entry);
      expect(headers.map((entry) => 'job' in entry)).toEqual([false, false]);
    } finally {
      await spool.dispose();
    }
  });
});

describe('ingest flags', () => {
  const flags = { run: 'r-1', set: [], preflight: true };

  it('turns flags into a request', () => {
    expect(
      ingestRequestOf('m.csv', {
        ...flags,
        budget: '$12.50',
        preflightConcurrency: '8',
        maxRows: '500',
        styles: 's.csv',
        dryRun: true,
      }),
    ).toMatchObject({
      manifestPath: 'm.csv',
      run: 'r-1',
      budgetMicros: 12_500_000,
      preflightConcurrency: 8,
      maxRows: 500,
      stylesPath: 's.csv',
      dryRun: true,
      skipInvalid: false,
      yes: false,
    });
  });

  it.each<[string, Record<string, string>, string]>([
    ['a bad budget', { budget: '12,50' }, '--budget must be a dollar amount with at most six decimals'],
    [
      'a zero concurrency',
      { preflightConcurrency: '0' },
      '--preflight-concurrency must be a whole number from 1 to 1000, got "0"',
    ],
    ['a fractional row limit', { maxRows: '1.5' }, '--max-rows must be a whole number'],
  ])('refuses %s naming the flag', (_name, bad, words) => {
    expect(() => ingestRequestOf('m.csv', { ...flags, ...bad })).toThrow(UsageError);
    expect(() => ingestRequestOf('m.csv', { ...flags, ...bad })).toThrow(words);
  });

  it('prints a summary with rows, jobs, price, estimate and budget', () => {
    const outcome: IngestOutcome = {
      run: 'r-1',
      model: fluxDepthPro.id,
      dryRun: true,
      runCreated: false,
      manifest: { name: 'm.csv', sha256: 'ab'.repeat(32), bytes: 100 },
      rows: 1200,
      invalidRows: 0,
      problems: [],
      jobs: { total: 2400, new: 2000, existing: 400 },
      estimate: {
        priceMicrosPerImage: 50_000,
        images: 2400,
        totalMicros: 120_000_000,
        newImages: 2000,
        newMicros: 100_000_000,
      },
      budgetMicros: 150_000_000,
      overBudget: false,
      added: 0,
      normalisedCells: 3,
      preflighted: 1200,
    };
    const summary = formatIngestSummary(outcome);
    expect(summary).toContain('m.csv → run "r-1" (dry run, black-forest-labs/flux-depth-pro)');
    expect(summary).toContain('jobs       2,400 (2,000 new, 400 already in the run)');
    expect(summary).toContain('price      $0.05 per image');
    expect(summary).toContain('estimate   $120.00 for 2,400 images; new jobs: $100.00 for 2,000 images');
    expect(summary).toContain('budget     $150.00');
    expect(summary).toContain('3 cells were written in a spelling depthq normalised');
    expect(summary).toContain('Dry run: nothing was enqueued and the run was not changed; 2,000 jobs would be added.');
  });
});
