/**
 * The BullMQ job payload of one output image, and the one function that builds it from a manifest row.
 *
 * A render job carries everything the prediction needs except what must not be decided early: the control image is a
 * bucket and key, presigned only when the prediction is created (a URL made at ingest would expire in the queue, and
 * would leak access for as long as the job lives). Everything else is decided at ingest and frozen: the complete model
 * input with every default and the seed (so what is recorded reproduces the output), the output key, and the price per
 * image (so a registry price change mid-run cannot change what the run recorded).
 *
 * The pipeline keeps its checkpoints in `job.data` beside these fields; `renderJobSchema` strips what it does not know,
 * so parsing a checkpointed payload still yields the render job.
 *
 * Pure: no I/O.
 */
import { z } from 'zod';
import { FatalJobError, type FieldProblem, RUN_ID_RULE, UsageError, type UsageLocation } from './errors.js';
import { extensionOfOutputFormat } from './image-type.js';
import {
  defaultOutputKeyTemplate,
  isValidRunId,
  joinOutputPrefix,
  objectKeyProblem,
  type RenderJobIdentity,
  renderJobId,
  renderOutputKey,
  runIdPattern,
} from './keys.js';
import {
  findModel,
  imageCountOf,
  type ModelDefinition,
  modelRegistry,
  outputFormatOf,
  validateModelInput,
} from './models.js';
import { costOf, type Micros } from './money.js';
import { deriveSeed, isValidSeed, MAX_SEED } from './seed.js';

export const RENDER_JOB_VERSION = 1;
export const MAX_ROW_ID_LENGTH = 256;
export const MAX_STYLE_LENGTH = 256;

/**
 * Stands in for image inputs while a job's input is checked against the model's rules: the real URL is presigned at
 * create time. `.invalid` is a reserved top-level domain, so it can never be fetched by accident.
 */
export const IMAGE_INPUT_PLACEHOLDER_URL = 'https://image-input.invalid/presigned-at-create-time';

/**
 * Why `name` is not an S3 bucket name, or `undefined`. The short form of AWS's rules: 3–63 characters of lowercase
 * letters, digits, '.' and '-', starting and ending with a letter or digit, no '..', not an IP address.
 */
export function bucketNameProblem(name: string): string | undefined {
  if (name.length < 3 || name.length > 63) return 'must be 3–63 characters long';
  if (!/^[a-z0-9][a-z0-9.-]*[a-z0-9]$/.test(name)) {
    return "must use lowercase letters, digits, '.' and '-' only, and start and end with a letter or digit";
  }
  if (name.includes('..')) return "must not contain '..'";
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(name)) return 'must not be an IP address';
  return undefined;
}

export const s3BucketNameSchema = z.string().check((ctx) => {
  const problem = bucketNameProblem(ctx.value);
  if (problem !== undefined) ctx.issues.push({ code: 'custom', message: problem, input: ctx.value });
});

export const objectKeySchema = z.string().check((ctx) => {
  const problem = objectKeyProblem(ctx.value);
  if (problem !== undefined) ctx.issues.push({ code: 'custom', message: problem, input: ctx.value });
});

const s3LocationSchema = z.object({ bucket: s3BucketNameSchema, key: objectKeySchema });

const inputValueSchema = z.union([z.string(), z.number(), z.boolean()]);

/** The field name a model-input problem is about, as `input.<name>`. */
function inputFieldOf(field: string, description: string): string {
  // models.ts reports a missing required input as field `input` with description `<name> is required`.
  if (field === 'input') return `input.${description.split(' ')[0] ?? ''}`;
  return field;
}

function seedProblemOf(seed: unknown): FieldProblem | undefined {
  if (seed === undefined) {
    return { field: 'input.seed', message: 'is missing: a job always fixes its seed, or it cannot be reproduced' };
  }
  if (!isValidSeed(seed)) {
    return { field: 'input.seed', message: `must be a whole number from 0 to ${MAX_SEED}, got ${String(seed)}` };
  }
  return undefined;
}

/**
 * Everything wrong with a job's `input` for `model`: image inputs present (they are presigned later), seed missing or
 * out of range, any of Replicate's rules broken, unknown inputs, or defaults left out (a job carries the complete input).
 */
export function renderJobInputProblems(
  model: ModelDefinition,
  input: Readonly<Record<string, unknown>>,
): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const forCheck: Record<string, unknown> = { ...input };
  for (const name of model.imageInputs) {
    if (Object.hasOwn(input, name)) {
      problems.push({
        field: `input.${name}`,
        message:
          'must not be in the job: image inputs are presigned from their S3 location when the prediction is created',
      });
    }
    forCheck[name] = IMAGE_INPUT_PLACEHOLDER_URL;
  }
  const seedProblem = seedProblemOf(input.seed);
  if (seedProblem !== undefined) problems.push(seedProblem);
  const result = validateModelInput(model, forCheck, { unknownInputs: 'reject' });
  if (!result.ok) {
    for (const invalid of result.invalidFields) {
      problems.push({ field: inputFieldOf(invalid.field, invalid.description), message: invalid.description });
    }
    return problems;
  }
  for (const name of Object.keys(result.input)) {
    if (!Object.hasOwn(input, name) && !model.imageInputs.includes(name)) {
      problems.push({
        field: `input.${name}`,
        message: 'is missing: a job carries the complete input, defaults included, so the recorded input reproduces it',
      });
    }
  }
  return problems;
}

/** A render job's fields and their own rules; `renderJobSchema` adds the input's rules for its model. */
const renderJobFieldsSchema = z.object({
  v: z.literal(RENDER_JOB_VERSION),
  run: z.string().regex(runIdPattern, { error: `must be ${RUN_ID_RULE}` }),
  rowId: z.string().min(1).max(MAX_ROW_ID_LENGTH),
  style: z.string().min(1).max(MAX_STYLE_LENGTH).nullable(),
  model: z.string().refine((id) => findModel(id) !== undefined, {
    error: `must be a registered model: ${[...modelRegistry.keys()].join(', ')}`,
  }),
  controlImage: s3LocationSchema,
  input: z.record(z.string(), inputValueSchema),
  seedSource: z.enum(['manifest', 'derived']),
  output: s3LocationSchema,
  metadata: z.record(z.string(), z.string()),
  priceMicrosPerImage: z.int().nonnegative(),
});

export const renderJobSchema = renderJobFieldsSchema.superRefine((job, ctx) => {
  const model = findModel(job.model);
  if (model === undefined) return;
  for (const problem of renderJobInputProblems(model, job.input)) {
    ctx.addIssue({ code: 'custom', path: problem.field.split('.'), message: problem.message });
  }
});

export type RenderJob = z.output<typeof renderJobSchema>;

/** Validates a job payload read back from BullMQ; an invalid payload can never succeed, so it is fatal, not retried. */
export function parseRenderJob(data: unknown): RenderJob {
  const result = renderJobSchema.safeParse(data);
  if (!result.success) {
    throw new FatalJobError(`Invalid render job payload:\n${z.prettifyError(result.error)}`, { cause: result.error });
  }
  return result.data;
}

/** The BullMQ job id of a render job. */
export function renderJobIdOf(job: RenderJobIdentity): string {
  return renderJobId({ run: job.run, rowId: job.rowId, style: job.style });
}

export interface BuildRenderJobArgs {
  readonly run: string;
  readonly rowId: string;
  readonly style: string | null;
  /** A registered model id, `owner/name`. */
  readonly model: string;
  readonly controlImage: { readonly bucket: string; readonly key: string };
  /**
   * The row's model inputs, typed already (numbers as numbers), without image inputs. `seed` when the manifest gives
   * one; otherwise a seed is derived. Missing inputs get the model's defaults.
   */
  readonly input: Readonly<Record<string, unknown>>;
  /** How many times this image was re-rolled, for a derived seed; 0 (the default) for the first seed. */
  readonly reseed?: number;
  readonly output: {
    readonly bucket: string;
    /** Prepended to every output key; `''` (the default) is the bucket's root. */
    readonly prefix?: string;
    /** See `renderOutputKey`; `defaultOutputKeyTemplate` when absent. */
    readonly template?: string;
  };
  /** Manifest columns kept with the job and its provenance, and available to the template as `{meta.<column>}`. */
  readonly metadata?: Readonly<Record<string, string>>;
  /** Where the row came from; added to the error's location so the user can go straight to it. */
  readonly source?: { readonly file?: string; readonly line?: number };
}

function lengthProblem(field: string, value: string, maxLength: number, emptyHint = ''): FieldProblem | undefined {
  if (value === '') return { field, message: `is empty${emptyHint}` };
  if (value.length > maxLength) return { field, message: `is ${value.length} characters long, over ${maxLength}` };
  return undefined;
}

function messageOf(error: unknown): string {
  if (error instanceof UsageError) return error.detail;
  return error instanceof Error ? error.message : String(error);
}

/**
 * A render job from one manifest row: fills in the model's defaults, derives the seed when the row gives none, renders
 * the output key, and copies the price from the registry. Every problem of the row is collected and thrown at once as a
 * `UsageError` (its `problems` list each field and message; its location names the field when there is one problem).
 */
export function buildRenderJob(args: BuildRenderJobArgs): RenderJob {
  const problems: FieldProblem[] = [];
  const add = (problem: FieldProblem | undefined): void => {
    if (problem !== undefined) problems.push(problem);
  };

  if (!isValidRunId(args.run)) add({ field: 'run', message: `${JSON.stringify(args.run)} must be ${RUN_ID_RULE}` });
  add(lengthProblem('rowId', args.rowId, MAX_ROW_ID_LENGTH));
  if (args.style !== null) add(lengthProblem('style', args.style, MAX_STYLE_LENGTH, ': use null for no style'));
  // The output key is built from run, row id and style: with one of them wrong it would only repeat the problem.
  const identityValid = problems.length === 0;
  for (const [field, location] of [
    ['controlImage', args.controlImage],
    ['output', args.output],
  ] as const) {
    const problem = bucketNameProblem(location.bucket);
    if (problem !== undefined) {
      add({ field: `${field}.bucket`, message: `${JSON.stringify(location.bucket)} ${problem}` });
    }
  }
  const controlKeyProblem = objectKeyProblem(args.controlImage.key);
  if (controlKeyProblem !== undefined) add({ field: 'controlImage.key', message: controlKeyProblem });

  const model = findModel(args.model);
  if (model === undefined) {
    add({
      field: 'model',
      message: `${JSON.stringify(args.model)} is not a registered model: depthq knows ${[...modelRegistry.keys()].join(', ')}`,
    });
    throw rowError(problems, args.source);
  }

  const givenSeed = args.input.seed;
  const seedSource = givenSeed === undefined || givenSeed === null ? 'derived' : 'manifest';
  let reseed = args.reseed ?? 0;
  if (!Number.isSafeInteger(reseed) || reseed < 0) {
    add({ field: 'reseed', message: `must be a whole number ≥ 0, got ${reseed}` });
    // Carry on with the first seed so the rest of the row is still checked in this pass.
    reseed = 0;
  }
  const seed: unknown =
    seedSource === 'derived' ? deriveSeed({ run: args.run, rowId: args.rowId, style: args.style, reseed }) : givenSeed;

  const candidate: Record<string, unknown> = { ...args.input, seed };
  for (const name of model.imageInputs) {
    if (Object.hasOwn(candidate, name)) {
      add({ field: `input.${name}`, message: `must not be given: it is presigned from controlImage at create time` });
      delete candidate[name];
    }
  }
  const withImages = {
    ...candidate,
    ...Object.fromEntries(model.imageInputs.map((name) => [name, IMAGE_INPUT_PLACEHOLDER_URL])),
  };
  const filled = validateModelInput(model, withImages, { unknownInputs: 'reject' });
  const input: Record<string, string | number | boolean> = {};
  if (filled.ok) {
    for (const [name, value] of Object.entries(filled.input)) {
      if (!model.imageInputs.includes(name)) input[name] = value;
    }
  }
  // The input is validated once per row (ingest builds 100,000 of them: docs/bench-orchestration.md). On a complete,
  // valid input only the seed's range is left to find: `validateModelInput` passes a valid input through unchanged and
  // `input` holds every field, so `renderJobInputProblems(model, input)` could add nothing else. Otherwise this lists
  // Replicate's objections.
  const seedProblem = filled.ok ? seedProblemOf(input.seed) : undefined;
  const inputProblems = filled.ok
    ? seedProblem === undefined
      ? []
      : [seedProblem]
    : renderJobInputProblems(model, candidate);
  problems.push(...inputProblems);

  let outputKey = '';
  if (identityValid && inputProblems.length === 0 && typeof seed === 'number') {
    try {
      const ext = extensionOfOutputFormat(outputFormatOf(model, input));
      const key = renderOutputKey(args.output.template ?? defaultOutputKeyTemplate, {
        run: args.run,
        id: args.rowId,
        style: args.style,
        seed,
        ext,
        model: model.id,
        meta: args.metadata ?? {},
      });
      outputKey = joinOutputPrefix(args.output.prefix ?? '', key);
    } catch (error) {
      add({ field: 'output.key', message: messageOf(error) });
    }
  }
  if (problems.length > 0) throw rowError(problems, args.source);

  const job = {
    v: RENDER_JOB_VERSION,
    run: args.run,
    rowId: args.rowId,
    style: args.style,
    model: model.id,
    controlImage: { bucket: args.controlImage.bucket, key: args.controlImage.key },
    input,
    seedSource,
    output: { bucket: args.output.bucket, key: outputKey },
    metadata: { ...args.metadata },
    priceMicrosPerImage: model.priceMicrosPerImage,
  };
  // The same rules the worker applies (`renderJobSchema`): its input rules were checked above on this very input, so
  // the fields' own rules are what is left. A job that passes here cannot be refused as invalid after it was paid for.
  const parsed = renderJobFieldsSchema.safeParse(job);
  if (!parsed.success) {
    throw rowError(
      parsed.error.issues.map((issue) => ({ field: issue.path.join('.'), message: issue.message })),
      args.source,
    );
  }
  return parsed.data;
}

function rowError(problems: readonly FieldProblem[], source: BuildRenderJobArgs['source']): UsageError {
  const location: { -readonly [K in keyof UsageLocation]: UsageLocation[K] } = {};
  if (source?.file !== undefined) location.file = source.file;
  if (source?.line !== undefined) location.line = source.line;
  const [first] = problems;
  if (problems.length === 1 && first !== undefined) {
    location.field = first.field;
    return new UsageError(first.message, { location, problems });
  }
  const lines = problems.map((problem) => `- ${problem.field}: ${problem.message}`).join('\n');
  return new UsageError(`${problems.length} problems:\n${lines}`, { location, problems });
}

/**
 * What a job reserves before its prediction is created: its price × the images its input asks for. Reserve, release,
 * cancel and parking all count with this one figure. 0 for a model the registry no longer knows.
 */
export function reservationOfJob(job: Pick<RenderJob, 'model' | 'input' | 'priceMicrosPerImage'>): Micros {
  const model = findModel(job.model);
  return model === undefined ? 0 : costOf(job.priceMicrosPerImage, imageCountOf(model, job.input));
}
