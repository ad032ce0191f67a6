import { describe, expect, it } from 'vitest';
import { FatalJobError, UsageError } from '../../src/core/errors.js';
import { renderJobId } from '../../src/core/keys.js';
import { fluxDepthDev, fluxDepthPro } from '../../src/core/models.js';
import {
  type BuildRenderJobArgs,
  bucketNameProblem,
  buildRenderJob,
  IMAGE_INPUT_PLACEHOLDER_URL,
  parseRenderJob,
  type RenderJob,
  renderJobIdOf,
  renderJobInputProblems,
  renderJobSchema,
  s3BucketNameSchema,
} from '../../src/core/render-job.js';
import { deriveSeed } from '../../src/core/seed.js';

const args: BuildRenderJobArgs = {
  run: 'catalog-2024',
  rowId: 'row-12',
  style: 'modern',
  model: 'black-forest-labs/flux-depth-pro',
  controlImage: { bucket: 'control-images', key: 'in/row-12.png' },
  input: { prompt: 'a modern living room' },
  output: { bucket: 'renders', prefix: 'out/' },
  metadata: { sku: 'SKU-9' },
};

function problemsOf(build: () => unknown): { field: string; message: string }[] {
  try {
    build();
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    return [...(error as UsageError).problems];
  }
  throw new Error('expected a UsageError');
}

function fieldsOf(build: () => unknown): string[] {
  return problemsOf(build).map((problem) => problem.field);
}

describe('buildRenderJob', () => {
  it('builds a complete job: defaults, derived seed, output key, price', () => {
    const job = buildRenderJob(args);
    const seed = deriveSeed({ run: 'catalog-2024', rowId: 'row-12', style: 'modern', reseed: 0 });
    expect(job).toEqual({
      v: 1,
      run: 'catalog-2024',
      rowId: 'row-12',
      style: 'modern',
      model: 'black-forest-labs/flux-depth-pro',
      controlImage: { bucket: 'control-images', key: 'in/row-12.png' },
      input: {
        prompt: 'a modern living room',
        seed,
        steps: 50,
        guidance: 15,
        prompt_upsampling: false,
        safety_tolerance: 2,
        output_format: 'jpg',
      },
      seedSource: 'derived',
      output: { bucket: 'renders', key: 'out/catalog-2024/modern/row-12.jpg' },
      metadata: { sku: 'SKU-9' },
      priceMicrosPerImage: 50_000,
    } satisfies RenderJob);
  });

  it('never puts the control image URL in the job', () => {
    const job = buildRenderJob(args);
    expect(job.input).not.toHaveProperty('control_image');
    expect(JSON.stringify(job)).not.toContain(IMAGE_INPUT_PLACEHOLDER_URL);
  });

  it("keeps the manifest's seed and says so", () => {
    const job = buildRenderJob({ ...args, input: { ...args.input, seed: 42 } });
    expect(job.input.seed).toBe(42);
    expect(job.seedSource).toBe('manifest');
    expect(buildRenderJob({ ...args, input: { ...args.input, seed: 0 } }).input.seed).toBe(0);
  });

  it('derives a seed when the seed is null, and a different one per re-roll', () => {
    const first = buildRenderJob({ ...args, input: { ...args.input, seed: null } });
    expect(first.seedSource).toBe('derived');
    const second = buildRenderJob({ ...args, reseed: 1 });
    expect(second.input.seed).toBe(deriveSeed({ run: args.run, rowId: args.rowId, style: args.style, reseed: 1 }));
    expect(second.input.seed).not.toBe(first.input.seed);
  });

  it('keeps explicit inputs and uses the output format for the extension', () => {
    const job = buildRenderJob({ ...args, input: { ...args.input, steps: 20, output_format: 'png' } });
    expect(job.input.steps).toBe(20);
    expect(job.output.key).toBe('out/catalog-2024/modern/row-12.png');
  });

  it('uses a custom template and no prefix', () => {
    const job = buildRenderJob({
      ...args,
      input: { ...args.input, seed: 7 },
      output: { bucket: 'renders', template: '{meta.sku}/{id}-{seed}.{ext}' },
    });
    expect(job.output.key).toBe('SKU-9/row-12-7.jpg');
  });

  it('drops the style folder for a style-less row', () => {
    expect(buildRenderJob({ ...args, style: null }).output.key).toBe('out/catalog-2024/row-12.jpg');
  });

  it('builds flux-depth-dev jobs with its own defaults and price', () => {
    const job = buildRenderJob({ ...args, model: fluxDepthDev.id, input: { ...args.input, num_outputs: 2 } });
    expect(job.priceMicrosPerImage).toBe(25_000);
    expect(job.input).toMatchObject({
      num_outputs: 2,
      num_inference_steps: 28,
      output_format: 'webp',
      megapixels: '1',
    });
    expect(job.output.key).toBe('out/catalog-2024/modern/row-12.webp');
  });

  it('defaults metadata to an empty record', () => {
    const { metadata: _metadata, ...withoutMetadata } = args;
    expect(buildRenderJob(withoutMetadata).metadata).toEqual({});
  });

  it('builds a job that parseRenderJob accepts as it is', () => {
    const job = buildRenderJob(args);
    expect(parseRenderJob(JSON.parse(JSON.stringify(job)))).toEqual(job);
  });

  it('gives the job id of its identity', () => {
    expect(renderJobIdOf(buildRenderJob(args))).toBe('catalog-2024.row-12.modern');
    expect(renderJobIdOf(buildRenderJob({ ...args, style: null }))).toBe(
      renderJobId({ run: 'catalog-2024', rowId: 'row-12', style: null }),
    );
  });

  describe('refusals name the field', () => {
    it('a bad run id', () => {
      const [problem] = problemsOf(() => buildRenderJob({ ...args, run: 'My Run' }));
      expect(problem?.field).toBe('run');
      expect(problem?.message).toContain('"My Run"');
      expect(problem?.message).toContain('lowercase letters');
    });

    it('an empty or too long row id', () => {
      expect(fieldsOf(() => buildRenderJob({ ...args, rowId: '' }))).toEqual(['rowId']);
      expect(fieldsOf(() => buildRenderJob({ ...args, rowId: 'x'.repeat(257) }))).toEqual(['rowId']);
      expect(buildRenderJob({ ...args, rowId: 'x'.repeat(256) }).rowId).toHaveLength(256);
    });

    it('an empty style', () => {
      const [problem] = problemsOf(() => buildRenderJob({ ...args, style: '' }));
      expect(problem).toEqual({ field: 'style', message: 'is empty: use null for no style' });
    });

    it('an unknown model, listing the known ones', () => {
      const [problem] = problemsOf(() => buildRenderJob({ ...args, model: 'acme/flux' }));
      expect(problem?.field).toBe('model');
      expect(problem?.message).toContain('black-forest-labs/flux-depth-pro');
    });

    it('bad bucket names and a bad control image key', () => {
      expect(
        fieldsOf(() =>
          buildRenderJob({
            ...args,
            controlImage: { bucket: 'Control_Images', key: '../x.png' },
            output: { bucket: 'r' },
          }),
        ),
      ).toEqual(['controlImage.bucket', 'output.bucket', 'controlImage.key']);
    });

    it('an input that breaks the model rules', () => {
      const [problem] = problemsOf(() => buildRenderJob({ ...args, input: { ...args.input, steps: 51 } }));
      expect(problem).toEqual({ field: 'input.steps', message: 'Must be less than or equal to 50' });
    });

    it('a missing prompt', () => {
      expect(fieldsOf(() => buildRenderJob({ ...args, input: {} }))).toEqual(['input.prompt']);
    });

    it('an unknown input (a misspelt column must not fall back to the default)', () => {
      expect(fieldsOf(() => buildRenderJob({ ...args, input: { ...args.input, guidence: 3 } }))).toEqual([
        'input.guidence',
      ]);
    });

    it('a control_image in the input (it is presigned at create time)', () => {
      const input = { ...args.input, control_image: 'https://example.com/x.png' };
      expect(fieldsOf(() => buildRenderJob({ ...args, input }))).toEqual(['input.control_image']);
    });

    it.each([-1, 2_147_483_648, 1.5])('a manifest seed of %d', (seed) => {
      const problems = problemsOf(() => buildRenderJob({ ...args, input: { ...args.input, seed } }));
      expect(problems.map((problem) => problem.field)).toContain('input.seed');
    });

    it('a bad reseed', () => {
      expect(problemsOf(() => buildRenderJob({ ...args, reseed: -1 }))).toEqual([
        { field: 'reseed', message: 'must be a whole number ≥ 0, got -1' },
      ]);
      expect(fieldsOf(() => buildRenderJob({ ...args, reseed: 0.5, input: {} }))).toEqual(['reseed', 'input.prompt']);
    });

    it('a row id that would escape the prefix', () => {
      const [problem] = problemsOf(() => buildRenderJob({ ...args, rowId: '../../etc/passwd' }));
      expect(problem?.field).toBe('output.key');
      expect(problem?.message).toContain("'..' segment");
    });

    it('a bad output prefix or template', () => {
      expect(fieldsOf(() => buildRenderJob({ ...args, output: { bucket: 'renders', prefix: '/abs' } }))).toEqual([
        'output.key',
      ]);
      const [problem] = problemsOf(() =>
        buildRenderJob({ ...args, output: { bucket: 'renders', template: '{run}/{row}.{ext}' } }),
      );
      expect(problem?.message).toContain('{row}');
    });

    it('a metadata column the template needs but the row lacks', () => {
      const [problem] = problemsOf(() =>
        buildRenderJob({ ...args, metadata: {}, output: { bucket: 'renders', template: '{meta.sku}/{id}.{ext}' } }),
      );
      expect(problem?.field).toBe('output.key');
      expect(problem?.message).toContain('"sku"');
    });
  });

  it('reports every problem of a row at once', () => {
    const problems = problemsOf(() =>
      buildRenderJob({ ...args, rowId: '', input: { steps: 0, output_format: 'gif' }, output: { bucket: 'R' } }),
    );
    expect(problems.map((problem) => problem.field)).toEqual([
      'rowId',
      'output.bucket',
      'input.prompt',
      'input.steps',
      'input.output_format',
    ]);
  });

  it('puts the source file, line and field in the message', () => {
    try {
      buildRenderJob({ ...args, input: { ...args.input, steps: 99 }, source: { file: 'manifest.csv', line: 12 } });
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(UsageError);
      const usage = error as UsageError;
      expect(usage.message).toBe('manifest.csv:12, field "input.steps": Must be less than or equal to 50');
      expect(usage.location).toEqual({ file: 'manifest.csv', line: 12, field: 'input.steps' });
    }
  });

  it('lists several problems in the message, with the source but no single field', () => {
    try {
      buildRenderJob({ ...args, rowId: '', style: '', source: { file: 'm.csv', line: 3 } });
      expect.unreachable();
    } catch (error) {
      const usage = error as UsageError;
      expect(usage.location).toEqual({ file: 'm.csv', line: 3 });
      expect(usage.message).toBe('m.csv:3: 2 problems:\n- rowId: is empty\n- style: is empty: use null for no style');
    }
  });
});

describe('parseRenderJob', () => {
  const job = buildRenderJob(args);

  function issuePathsOf(data: unknown): string[] {
    const result = renderJobSchema.safeParse(data);
    if (result.success) throw new Error('expected the payload to be refused');
    return result.error.issues.map((issue) => issue.path.join('.'));
  }

  it('accepts a valid payload and strips unknown fields (the pipeline keeps checkpoints beside them)', () => {
    const parsed = parseRenderJob({ ...job, checkpoint: { predictionId: 'abc' } });
    expect(parsed).toEqual(job);
    expect(parsed).not.toHaveProperty('checkpoint');
  });

  it('throws FatalJobError with a readable message for an invalid payload', () => {
    let thrown: unknown;
    try {
      parseRenderJob({ ...job, v: 2 });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(FatalJobError);
    expect((thrown as Error).message).toMatch(/^Invalid render job payload:\n/);
    expect((thrown as Error).message).toContain('v');
    expect((thrown as Error).cause).toBeDefined();
  });

  it('refuses things that are not jobs at all', () => {
    expect(() => parseRenderJob(null)).toThrow(FatalJobError);
    expect(() => parseRenderJob('job')).toThrow(FatalJobError);
    expect(() => parseRenderJob({})).toThrow(FatalJobError);
  });

  it.each([
    ['v', { v: 2 }],
    ['run', { run: 'Bad Run' }],
    ['rowId', { rowId: '' }],
    ['rowId', { rowId: 'x'.repeat(257) }],
    ['style', { style: '' }],
    ['style', { style: 3 }],
    ['model', { model: 'acme/other' }],
    ['controlImage.bucket', { controlImage: { bucket: 'ab', key: 'k.png' } }],
    ['controlImage.key', { controlImage: { bucket: 'bucket', key: '/k.png' } }],
    ['output.key', { output: { bucket: 'bucket', key: 'a/../b.jpg' } }],
    ['output.key', { output: { bucket: 'bucket', key: 'a//b.jpg' } }],
    ['output.bucket', { output: { bucket: '192.168.1.1', key: 'b.jpg' } }],
    ['seedSource', { seedSource: 'random' }],
    ['metadata.sku', { metadata: { sku: 9 } }],
    ['priceMicrosPerImage', { priceMicrosPerImage: -1 }],
    ['priceMicrosPerImage', { priceMicrosPerImage: 0.5 }],
    ['input.seed', { input: { ...job.input, seed: -5 } }],
    ['input.steps', { input: { ...job.input, steps: 51 } }],
    ['input.guidence', { input: { ...job.input, guidence: 3 } }],
    ['input.control_image', { input: { ...job.input, control_image: 'https://x/y.png' } }],
  ])('refuses a bad %s', (path, change) => {
    expect(issuePathsOf({ ...job, ...change })).toContain(path);
  });

  it('refuses an input without a seed', () => {
    const { seed: _seed, ...withoutSeed } = job.input;
    expect(issuePathsOf({ ...job, input: withoutSeed })).toEqual(['input.seed']);
  });

  it('refuses an incomplete input (defaults must be recorded)', () => {
    const { guidance: _guidance, ...withoutGuidance } = job.input;
    expect(issuePathsOf({ ...job, input: withoutGuidance })).toEqual(['input.guidance']);
  });

  it('accepts a price of 0 and a price that differs from the registry (it was copied at enqueue)', () => {
    expect(parseRenderJob({ ...job, priceMicrosPerImage: 0 }).priceMicrosPerImage).toBe(0);
    expect(parseRenderJob({ ...job, priceMicrosPerImage: 60_000 }).priceMicrosPerImage).toBe(60_000);
  });
});

describe('renderJobInputProblems', () => {
  const complete = buildRenderJob({ ...args, input: { ...args.input, seed: 1 } }).input;

  it('finds nothing in a complete input', () => {
    expect(renderJobInputProblems(fluxDepthPro, complete)).toEqual([]);
  });

  it('checks against the given model', () => {
    expect(renderJobInputProblems(fluxDepthDev, complete).map((problem) => problem.field)).toEqual([
      'input.steps',
      'input.prompt_upsampling',
      'input.safety_tolerance',
    ]);
  });

  it('explains a missing seed', () => {
    const { seed: _seed, ...withoutSeed } = complete;
    expect(renderJobInputProblems(fluxDepthPro, withoutSeed)).toEqual([
      { field: 'input.seed', message: 'is missing: a job always fixes its seed, or it cannot be reproduced' },
    ]);
  });
});

describe('bucket names', () => {
  it.each(['abc', 'my-bucket', 'my.bucket.v2', 'a'.repeat(63), '0bucket'])('accepts %j', (name) => {
    expect(bucketNameProblem(name)).toBeUndefined();
    expect(s3BucketNameSchema.safeParse(name).success).toBe(true);
  });

  it.each([
    ['ab', '3–63'],
    ['a'.repeat(64), '3–63'],
    ['My-Bucket', 'lowercase'],
    ['my_bucket', 'lowercase'],
    ['-bucket', 'start and end'],
    ['bucket-', 'start and end'],
    ['my..bucket', "'..'"],
    ['192.168.0.1', 'IP address'],
  ])('refuses %j', (name, problem) => {
    expect(bucketNameProblem(name)).toContain(problem);
    expect(s3BucketNameSchema.safeParse(name).success).toBe(false);
  });
});
