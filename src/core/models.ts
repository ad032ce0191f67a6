/**
 * The model registry: for each Replicate model depthq can drive, its input rules (exactly Replicate's ranges, enums and
 * defaults), its output shape and its price. One declarative spec per model is the single source for three things that
 * must never disagree: the validation depthq runs before spending money, the 422 `invalid_fields` the simulator answers
 * with, and the OpenAPI input schema the simulator publishes on `GET /v1/models/{owner}/{name}`.
 *
 * Pure: no I/O, no clock, no environment.
 */
import { z } from 'zod';
import { type Micros, usdToMicros } from './money.js';

interface FieldBase {
  readonly description: string;
  /** Replicate answers 422 `required` when a required input is missing. */
  readonly required?: boolean;
}

export type InputField =
  | (FieldBase & { readonly type: 'string'; readonly default?: string })
  | (FieldBase & { readonly type: 'uri'; readonly default?: string })
  | (FieldBase & {
      readonly type: 'integer';
      readonly minimum?: number;
      readonly maximum?: number;
      readonly default?: number;
    })
  | (FieldBase & {
      readonly type: 'number';
      readonly minimum?: number;
      readonly maximum?: number;
      readonly default?: number;
    })
  | (FieldBase & { readonly type: 'boolean'; readonly default?: boolean })
  | (FieldBase & { readonly type: 'enum'; readonly values: readonly string[]; readonly default?: string });

export type ModelId = `${string}/${string}`;
export type ModelInput = Readonly<Record<string, string | number | boolean>>;

/** The model APIs depthq has an adapter for (`providerForConfig` in `src/providers/provider-for-config.ts` builds each). */
export type ProviderName = 'replicate';

export interface ModelDefinition {
  /** `owner/name`, as its provider spells it. */
  readonly id: ModelId;
  /** The provider that runs it: the one `providerForConfig` builds for it. */
  readonly provider: ProviderName;
  readonly title: string;
  readonly priceMicrosPerImage: Micros;
  /** `single`: the prediction's `output` is one URI string. `array`: a list of URI strings. */
  readonly outputShape: 'single' | 'array';
  /** Inputs that carry an image URL the model fetches itself (presigned at create time, never at ingest). */
  readonly imageInputs: readonly string[];
  /** The input that chooses the output file format, and the one that sets how many images come out (if any). */
  readonly outputFormatInput: string;
  readonly imageCountInput?: string;
  readonly inputs: Readonly<Record<string, InputField>>;
}

const seedField: InputField = {
  type: 'integer',
  description: 'Random seed. Set it: it is the only way to reproduce an output.',
};

export const fluxDepthPro: ModelDefinition = {
  id: 'black-forest-labs/flux-depth-pro',
  provider: 'replicate',
  title: 'FLUX.1 Depth [pro]',
  priceMicrosPerImage: usdToMicros('0.05'),
  outputShape: 'single',
  imageInputs: ['control_image'],
  outputFormatInput: 'output_format',
  inputs: {
    prompt: { type: 'string', required: true, description: 'Text prompt for image generation' },
    control_image: {
      type: 'uri',
      required: true,
      description: 'Image used to control the generation. The depth map will be automatically generated.',
    },
    seed: seedField,
    steps: { type: 'integer', minimum: 15, maximum: 50, default: 50, description: 'Number of diffusion steps.' },
    guidance: {
      type: 'number',
      minimum: 1,
      maximum: 100,
      default: 15,
      description: 'Controls the balance between adherence to the text as well as image prompt and image quality.',
    },
    prompt_upsampling: {
      type: 'boolean',
      default: false,
      description: 'Automatically modify the prompt for more creative generation',
    },
    safety_tolerance: {
      type: 'integer',
      minimum: 1,
      maximum: 6,
      default: 2,
      description: 'Safety tolerance, 1 is most strict and 6 is most permissive',
    },
    output_format: {
      type: 'enum',
      values: ['jpg', 'png'],
      default: 'jpg',
      description: 'Format of the output images.',
    },
  },
};

export const fluxDepthDev: ModelDefinition = {
  id: 'black-forest-labs/flux-depth-dev',
  provider: 'replicate',
  title: 'FLUX.1 Depth [dev]',
  priceMicrosPerImage: usdToMicros('0.025'),
  outputShape: 'array',
  imageInputs: ['control_image'],
  outputFormatInput: 'output_format',
  imageCountInput: 'num_outputs',
  inputs: {
    prompt: { type: 'string', required: true, description: 'Prompt for generated image' },
    control_image: { type: 'uri', required: true, description: 'Image used to control the generation' },
    seed: seedField,
    num_outputs: { type: 'integer', minimum: 1, maximum: 4, default: 1, description: 'Number of outputs to generate' },
    num_inference_steps: {
      type: 'integer',
      minimum: 1,
      maximum: 50,
      default: 28,
      description: 'Number of denoising steps.',
    },
    guidance: { type: 'number', minimum: 0, maximum: 100, default: 10, description: 'Guidance for generated image' },
    output_format: {
      type: 'enum',
      values: ['webp', 'jpg', 'png'],
      default: 'webp',
      description: 'Format of the output images',
    },
    output_quality: {
      type: 'integer',
      minimum: 0,
      maximum: 100,
      default: 80,
      description: 'Quality when saving the output images, from 0 to 100. Not relevant for .png outputs',
    },
    disable_safety_checker: {
      type: 'boolean',
      default: false,
      description: 'Disable safety checker for generated images.',
    },
    megapixels: {
      type: 'enum',
      values: ['1', '0.25'],
      default: '1',
      description: 'Approximate number of megapixels for generated image',
    },
  },
};

export const modelRegistry: ReadonlyMap<string, ModelDefinition> = new Map(
  [fluxDepthPro, fluxDepthDev].map((model) => [model.id, model]),
);

export const defaultModelId: ModelId = fluxDepthPro.id;

export function findModel(id: string): ModelDefinition | undefined {
  return modelRegistry.get(id);
}

/** One entry of a Replicate 422 body's `invalid_fields`; `type` uses the validator's own words. */
export interface InvalidField {
  readonly type: 'required' | 'invalid_type' | 'enum' | 'number_gte' | 'number_lte' | 'format' | 'additional_property';
  readonly field: string;
  readonly description: string;
}

export type InputValidation =
  | { readonly ok: true; readonly input: ModelInput }
  | { readonly ok: false; readonly invalidFields: readonly InvalidField[] };

export interface ValidateOptions {
  /**
   * Replicate ignores inputs a model does not declare; depthq refuses them before paying, because a misspelt column
   * (`guidence`) would otherwise silently fall back to the default.
   */
  readonly unknownInputs: 'ignore' | 'reject';
}

const uriPattern = /^(https?:\/\/[^\s]+|data:[^\s,]*,[^\s]*)$/;

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

function checkField(name: string, field: InputField, value: unknown): InvalidField | undefined {
  const path = `input.${name}`;
  const wrongType = (expected: string): InvalidField => ({
    type: 'invalid_type',
    field: path,
    description: `Invalid type. Expected: ${expected}, given: ${typeName(value)}`,
  });
  switch (field.type) {
    case 'string':
      return typeof value === 'string' ? undefined : wrongType('string');
    case 'uri':
      if (typeof value !== 'string') return wrongType('string');
      return uriPattern.test(value)
        ? undefined
        : { type: 'format', field: path, description: "Does not match format 'uri'" };
    case 'boolean':
      return typeof value === 'boolean' ? undefined : wrongType('boolean');
    case 'enum': {
      if (typeof value === 'string' && field.values.includes(value)) return undefined;
      const allowed = field.values.map((v) => JSON.stringify(v)).join(', ');
      return { type: 'enum', field: path, description: `${name} must be one of the following: ${allowed}` };
    }
    case 'integer':
    case 'number': {
      if (typeof value !== 'number' || !Number.isFinite(value)) return wrongType(field.type);
      if (field.type === 'integer' && !Number.isInteger(value)) return wrongType('integer');
      if (field.minimum !== undefined && value < field.minimum) {
        return { type: 'number_gte', field: path, description: `Must be greater than or equal to ${field.minimum}` };
      }
      if (field.maximum !== undefined && value > field.maximum) {
        return { type: 'number_lte', field: path, description: `Must be less than or equal to ${field.maximum}` };
      }
      return undefined;
    }
  }
}

/**
 * Validates a prediction input the way Replicate does and fills in every default, so that what is recorded (and sent)
 * is the complete input: model defaults have changed before (guidance 30 → 15), and an explicit value reproduces.
 */
export function validateModelInput(
  model: ModelDefinition,
  input: Readonly<Record<string, unknown>>,
  options: ValidateOptions = { unknownInputs: 'ignore' },
): InputValidation {
  const invalidFields: InvalidField[] = [];
  const complete: Record<string, string | number | boolean> = {};
  for (const [name, field] of Object.entries(model.inputs)) {
    const value = input[name];
    if (value === undefined || value === null) {
      if (field.required) {
        invalidFields.push({ type: 'required', field: 'input', description: `${name} is required` });
      } else if (field.default !== undefined) {
        complete[name] = field.default;
      }
      continue;
    }
    const problem = checkField(name, field, value);
    if (problem) invalidFields.push(problem);
    else complete[name] = value as string | number | boolean;
  }
  if (options.unknownInputs === 'reject') {
    for (const name of Object.keys(input)) {
      // `in` would also find Object.prototype's members: an input named `constructor` must be refused too.
      if (!Object.hasOwn(model.inputs, name)) {
        invalidFields.push({
          type: 'additional_property',
          field: `input.${name}`,
          description: `${model.id} has no input named ${name}; it accepts: ${Object.keys(model.inputs).join(', ')}`,
        });
      }
    }
  }
  return invalidFields.length > 0 ? { ok: false, invalidFields } : { ok: true, input: complete };
}

/** Replicate's 422 `detail`: one line per invalid field, `- field: description`. */
export function describeInvalidFields(invalidFields: readonly InvalidField[]): string {
  return invalidFields.map((f) => `- ${f.field}: ${f.description}\n`).join('');
}

/** How many images a prediction with this (complete) input produces: what it is billed for. */
export function imageCountOf(model: ModelDefinition, input: ModelInput): number {
  if (model.imageCountInput === undefined) return 1;
  const count = input[model.imageCountInput];
  return typeof count === 'number' ? count : 1;
}

export function outputFormatOf(model: ModelDefinition, input: ModelInput): string {
  const format = input[model.outputFormatInput];
  if (typeof format === 'string') return format;
  const field = model.inputs[model.outputFormatInput];
  return field?.type === 'enum' && field.default !== undefined ? field.default : 'jpg';
}

/** Normalises a prediction's `output` to a list of URLs whatever the model's output shape. */
export function outputUrlsOf(output: unknown): string[] {
  if (typeof output === 'string') return [output];
  if (Array.isArray(output)) return output.filter((item): item is string => typeof item === 'string');
  return [];
}

/** The model's input schema as Replicate publishes it in `latest_version.openapi_schema.components.schemas.Input`. */
export function openApiInputSchema(model: ModelDefinition): Record<string, unknown> {
  const properties: Record<string, unknown> = {};
  let order = 0;
  for (const [name, field] of Object.entries(model.inputs)) {
    const property: Record<string, unknown> = { title: name, description: field.description, 'x-order': order++ };
    switch (field.type) {
      case 'uri':
        Object.assign(property, { type: 'string', format: 'uri' });
        break;
      case 'enum':
        Object.assign(property, { type: 'string', enum: [...field.values] });
        break;
      case 'integer':
      case 'number':
        Object.assign(property, { type: field.type });
        if (field.minimum !== undefined) property.minimum = field.minimum;
        if (field.maximum !== undefined) property.maximum = field.maximum;
        break;
      default:
        property.type = field.type;
    }
    if (field.default !== undefined) property.default = field.default;
    properties[name] = property;
  }
  const required = Object.entries(model.inputs)
    .filter(([, field]) => field.required)
    .map(([name]) => name);
  return { type: 'object', title: 'Input', required, properties };
}

/** The model's output schema as Replicate publishes it. */
export function openApiOutputSchema(model: ModelDefinition): Record<string, unknown> {
  return model.outputShape === 'single'
    ? { type: 'string', title: 'Output', format: 'uri' }
    : { type: 'array', title: 'Output', items: { type: 'string', format: 'uri' } };
}

/** A zod view of the same rules, for payloads depthq builds itself (render jobs): complete inputs, no unknown keys. */
export function modelInputSchema(model: ModelDefinition): z.ZodType<ModelInput> {
  return z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).superRefine((input, ctx) => {
    const result = validateModelInput(model, input, { unknownInputs: 'reject' });
    if (!result.ok) {
      for (const problem of result.invalidFields) {
        const name = problem.field === 'input' ? problem.description.split(' ')[0] : problem.field.slice(6);
        ctx.addIssue({ code: 'custom', path: name ? [name] : [], message: problem.description });
      }
    }
  });
}
