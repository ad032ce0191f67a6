import { describe, expect, it } from 'vitest';
import {
  defaultModelId,
  describeInvalidFields,
  findModel,
  fluxDepthDev,
  fluxDepthPro,
  type InvalidField,
  imageCountOf,
  modelInputSchema,
  modelRegistry,
  openApiInputSchema,
  openApiOutputSchema,
  outputFormatOf,
  outputUrlsOf,
  validateModelInput,
} from '../../src/core/models.js';

const controlImage = 'https://bucket.example/control.png';
const proBase = { prompt: 'a red chair', control_image: controlImage };
const devBase = { prompt: 'a red chair', control_image: controlImage };

function invalidFieldsOf(result: ReturnType<typeof validateModelInput>): readonly InvalidField[] {
  if (result.ok) throw new Error(`expected the input to be refused, got ${JSON.stringify(result.input)}`);
  return result.invalidFields;
}

function onlyProblem(input: Record<string, unknown>, model = fluxDepthPro): Pick<InvalidField, 'type' | 'field'> {
  const fields = invalidFieldsOf(validateModelInput(model, input));
  expect(fields).toHaveLength(1);
  const [first] = fields;
  if (first === undefined) throw new Error('no invalid field');
  return { type: first.type, field: first.field };
}

describe('model registry', () => {
  it('finds both flux depth models by id and nothing else', () => {
    expect(findModel('black-forest-labs/flux-depth-pro')).toBe(fluxDepthPro);
    expect(findModel('black-forest-labs/flux-depth-dev')).toBe(fluxDepthDev);
    expect(findModel('black-forest-labs/flux-schnell')).toBeUndefined();
    expect(findModel('')).toBeUndefined();
    expect([...modelRegistry.keys()]).toEqual(['black-forest-labs/flux-depth-pro', 'black-forest-labs/flux-depth-dev']);
    expect(defaultModelId).toBe('black-forest-labs/flux-depth-pro');
  });

  it('prices pro at $0.05 and dev at $0.025 per image, in micro-dollars', () => {
    expect(fluxDepthPro.priceMicrosPerImage).toBe(50_000);
    expect(fluxDepthDev.priceMicrosPerImage).toBe(25_000);
  });

  it('declares the control image as the image input of both models', () => {
    expect(fluxDepthPro.imageInputs).toEqual(['control_image']);
    expect(fluxDepthDev.imageInputs).toEqual(['control_image']);
    expect(fluxDepthPro.outputShape).toBe('single');
    expect(fluxDepthDev.outputShape).toBe('array');
  });
});

describe('validateModelInput: flux-depth-pro', () => {
  it('fills every default so the recorded input is complete', () => {
    const result = validateModelInput(fluxDepthPro, proBase);
    expect(result).toEqual({
      ok: true,
      input: {
        prompt: 'a red chair',
        control_image: controlImage,
        steps: 50,
        guidance: 15,
        prompt_upsampling: false,
        safety_tolerance: 2,
        output_format: 'jpg',
      },
    });
  });

  it('keeps explicit values, including false and the boundaries of every range', () => {
    const input = {
      ...proBase,
      seed: 0,
      steps: 15,
      guidance: 1,
      prompt_upsampling: true,
      safety_tolerance: 6,
      output_format: 'png',
    };
    expect(validateModelInput(fluxDepthPro, input)).toEqual({ ok: true, input });
    const upper = { ...proBase, steps: 50, guidance: 100, safety_tolerance: 1, prompt_upsampling: false };
    const result = validateModelInput(fluxDepthPro, upper);
    expect(result.ok && result.input).toMatchObject(upper);
  });

  it('accepts a fractional guidance (a number, not an integer)', () => {
    const result = validateModelInput(fluxDepthPro, { ...proBase, guidance: 3.5 });
    expect(result.ok && result.input.guidance).toBe(3.5);
  });

  it.each([
    ['steps', 14, 'number_gte'],
    ['steps', 51, 'number_lte'],
    ['guidance', 0, 'number_gte'],
    ['guidance', 101, 'number_lte'],
    ['safety_tolerance', 0, 'number_gte'],
    ['safety_tolerance', 7, 'number_lte'],
  ] as const)('refuses %s = %d with %s', (name, value, type) => {
    expect(onlyProblem({ ...proBase, [name]: value })).toEqual({ type, field: `input.${name}` });
  });

  it('says the bound in the description', () => {
    const [low] = invalidFieldsOf(validateModelInput(fluxDepthPro, { ...proBase, steps: 14 }));
    expect(low?.description).toBe('Must be greater than or equal to 15');
    const [high] = invalidFieldsOf(validateModelInput(fluxDepthPro, { ...proBase, safety_tolerance: 7 }));
    expect(high?.description).toBe('Must be less than or equal to 6');
  });

  it('refuses output_format "gif" with Replicate\'s enum message', () => {
    expect(onlyProblem({ ...proBase, output_format: 'gif' })).toEqual({ type: 'enum', field: 'input.output_format' });
    const [problem] = invalidFieldsOf(validateModelInput(fluxDepthPro, { ...proBase, output_format: 'gif' }));
    expect(problem?.description).toBe('output_format must be one of the following: "jpg", "png"');
  });

  it('refuses a missing prompt and a missing control_image as `required` on the field "input"', () => {
    expect(onlyProblem({ control_image: controlImage })).toEqual({ type: 'required', field: 'input' });
    expect(onlyProblem({ prompt: 'x' })).toEqual({ type: 'required', field: 'input' });
    const fields = invalidFieldsOf(validateModelInput(fluxDepthPro, {}));
    expect(fields.map((f) => f.description)).toEqual(['prompt is required', 'control_image is required']);
  });

  it('treats null like a missing value', () => {
    expect(onlyProblem({ ...proBase, prompt: null })).toEqual({ type: 'required', field: 'input' });
    const result = validateModelInput(fluxDepthPro, { ...proBase, steps: null });
    expect(result.ok && result.input.steps).toBe(50);
  });

  it('refuses wrong types with invalid_type', () => {
    expect(onlyProblem({ ...proBase, steps: '20' })).toEqual({ type: 'invalid_type', field: 'input.steps' });
    expect(onlyProblem({ ...proBase, steps: 20.5 })).toEqual({ type: 'invalid_type', field: 'input.steps' });
    expect(onlyProblem({ ...proBase, guidance: Number.NaN })).toEqual({
      type: 'invalid_type',
      field: 'input.guidance',
    });
    expect(onlyProblem({ ...proBase, prompt_upsampling: 'true' })).toEqual({
      type: 'invalid_type',
      field: 'input.prompt_upsampling',
    });
    expect(onlyProblem({ ...proBase, prompt: 42 })).toEqual({ type: 'invalid_type', field: 'input.prompt' });
    expect(onlyProblem({ ...proBase, seed: 1.5 })).toEqual({ type: 'invalid_type', field: 'input.seed' });
    const [problem] = invalidFieldsOf(validateModelInput(fluxDepthPro, { ...proBase, steps: '20' }));
    expect(problem?.description).toBe('Invalid type. Expected: integer, given: string');
  });

  it('refuses a control_image that is not a URI with `format`', () => {
    expect(onlyProblem({ ...proBase, control_image: 'control.png' })).toEqual({
      type: 'format',
      field: 'input.control_image',
    });
    expect(onlyProblem({ ...proBase, control_image: 'ftp://host/x.png' })).toEqual({
      type: 'format',
      field: 'input.control_image',
    });
    expect(validateModelInput(fluxDepthPro, { ...proBase, control_image: 'data:image/png;base64,iVBO' }).ok).toBe(true);
    expect(validateModelInput(fluxDepthPro, { ...proBase, control_image: 'http://127.0.0.1:9000/b/k' }).ok).toBe(true);
  });

  it('reports every problem at once', () => {
    const fields = invalidFieldsOf(validateModelInput(fluxDepthPro, { steps: 0, output_format: 'tiff' }));
    expect(fields.map((f) => [f.type, f.field])).toEqual([
      ['required', 'input'],
      ['required', 'input'],
      ['number_gte', 'input.steps'],
      ['enum', 'input.output_format'],
    ]);
  });

  it('ignores unknown inputs by default, like Replicate', () => {
    const result = validateModelInput(fluxDepthPro, { ...proBase, guidence: 3 });
    expect(result.ok).toBe(true);
    expect(result.ok && 'guidence' in result.input).toBe(false);
  });

  it("rejects unknown inputs with unknownInputs: 'reject', naming them and what the model accepts", () => {
    const fields = invalidFieldsOf(
      validateModelInput(fluxDepthPro, { ...proBase, guidence: 3 }, { unknownInputs: 'reject' }),
    );
    expect(fields).toHaveLength(1);
    expect(fields[0]?.type).toBe('additional_property');
    expect(fields[0]?.field).toBe('input.guidence');
    expect(fields[0]?.description).toContain('guidance');
    expect(validateModelInput(fluxDepthPro, proBase, { unknownInputs: 'reject' }).ok).toBe(true);
  });

  it('rejects inputs named like Object.prototype properties as unknown', () => {
    for (const name of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
      const input = JSON.parse(JSON.stringify({ ...proBase, [name]: 'x' })) as Record<string, unknown>;
      const fields = invalidFieldsOf(validateModelInput(fluxDepthPro, input, { unknownInputs: 'reject' }));
      expect(fields.map((f) => f.field)).toEqual([`input.${name}`]);
    }
  });
});

describe('validateModelInput: flux-depth-dev', () => {
  it('fills its own defaults', () => {
    const result = validateModelInput(fluxDepthDev, devBase);
    expect(result).toEqual({
      ok: true,
      input: {
        prompt: 'a red chair',
        control_image: controlImage,
        num_outputs: 1,
        num_inference_steps: 28,
        guidance: 10,
        output_format: 'webp',
        output_quality: 80,
        disable_safety_checker: false,
        megapixels: '1',
      },
    });
  });

  it.each([
    ['num_outputs', 0, 'number_gte'],
    ['num_outputs', 5, 'number_lte'],
    ['num_inference_steps', 0, 'number_gte'],
    ['num_inference_steps', 51, 'number_lte'],
    ['guidance', -1, 'number_gte'],
    ['guidance', 101, 'number_lte'],
    ['output_quality', -1, 'number_gte'],
    ['output_quality', 101, 'number_lte'],
  ] as const)('refuses %s = %d with %s', (name, value, type) => {
    expect(onlyProblem({ ...devBase, [name]: value }, fluxDepthDev)).toEqual({ type, field: `input.${name}` });
  });

  it('accepts guidance 0 (pro refuses it) and webp output (pro refuses it)', () => {
    expect(validateModelInput(fluxDepthDev, { ...devBase, guidance: 0, output_format: 'webp' }).ok).toBe(true);
    expect(validateModelInput(fluxDepthPro, { ...proBase, output_format: 'webp' }).ok).toBe(false);
  });

  it('takes megapixels as the strings "1" and "0.25" only', () => {
    expect(validateModelInput(fluxDepthDev, { ...devBase, megapixels: '0.25' }).ok).toBe(true);
    expect(onlyProblem({ ...devBase, megapixels: 1 }, fluxDepthDev)).toEqual({
      type: 'enum',
      field: 'input.megapixels',
    });
    expect(onlyProblem({ ...devBase, megapixels: '2' }, fluxDepthDev)).toEqual({
      type: 'enum',
      field: 'input.megapixels',
    });
  });

  it('refuses pro-only inputs when asked to reject unknown inputs', () => {
    const fields = invalidFieldsOf(
      validateModelInput(fluxDepthDev, { ...devBase, steps: 20, safety_tolerance: 2 }, { unknownInputs: 'reject' }),
    );
    expect(fields.map((f) => [f.type, f.field])).toEqual([
      ['additional_property', 'input.steps'],
      ['additional_property', 'input.safety_tolerance'],
    ]);
  });
});

describe('describeInvalidFields', () => {
  it("renders Replicate's 422 detail: one `- field: description` line per field", () => {
    const fields = invalidFieldsOf(validateModelInput(fluxDepthPro, { ...proBase, output_format: 'gif', steps: 99 }));
    expect(describeInvalidFields(fields)).toBe(
      '- input.steps: Must be less than or equal to 50\n' +
        '- input.output_format: output_format must be one of the following: "jpg", "png"\n',
    );
    expect(describeInvalidFields([])).toBe('');
  });
});

describe('imageCountOf', () => {
  it('is 1 for pro, whatever the input says', () => {
    expect(imageCountOf(fluxDepthPro, { prompt: 'x', num_outputs: 4 })).toBe(1);
  });

  it('is num_outputs for dev, and 1 when it is absent or not a number', () => {
    expect(imageCountOf(fluxDepthDev, { num_outputs: 3 })).toBe(3);
    expect(imageCountOf(fluxDepthDev, {})).toBe(1);
    expect(imageCountOf(fluxDepthDev, { num_outputs: '3' })).toBe(1);
  });
});

describe('outputFormatOf and outputUrlsOf', () => {
  it('reads the output format from the input, else the model default', () => {
    expect(outputFormatOf(fluxDepthPro, { output_format: 'png' })).toBe('png');
    expect(outputFormatOf(fluxDepthPro, {})).toBe('jpg');
    expect(outputFormatOf(fluxDepthDev, {})).toBe('webp');
  });

  it('normalises single and array outputs to a list of URLs', () => {
    expect(outputUrlsOf('https://x/1.jpg')).toEqual(['https://x/1.jpg']);
    expect(outputUrlsOf(['https://x/1.webp', 7, 'https://x/2.webp'])).toEqual(['https://x/1.webp', 'https://x/2.webp']);
    expect(outputUrlsOf(null)).toEqual([]);
    expect(outputUrlsOf({ url: 'https://x' })).toEqual([]);
  });
});

describe('openApiInputSchema', () => {
  it("publishes pro's inputs as Replicate does: order, types, ranges, enums, defaults, required", () => {
    const schema = openApiInputSchema(fluxDepthPro);
    expect(schema.type).toBe('object');
    expect(schema.title).toBe('Input');
    expect(schema.required).toEqual(['prompt', 'control_image']);
    const properties = schema.properties as Record<string, Record<string, unknown>>;
    expect(Object.keys(properties)).toEqual([
      'prompt',
      'control_image',
      'seed',
      'steps',
      'guidance',
      'prompt_upsampling',
      'safety_tolerance',
      'output_format',
    ]);
    expect(properties.control_image).toMatchObject({ type: 'string', format: 'uri', 'x-order': 1 });
    expect(properties.seed).toMatchObject({ type: 'integer', 'x-order': 2 });
    expect(properties.seed).not.toHaveProperty('default');
    expect(properties.steps).toMatchObject({ type: 'integer', minimum: 15, maximum: 50, default: 50 });
    expect(properties.guidance).toMatchObject({ type: 'number', minimum: 1, maximum: 100, default: 15 });
    expect(properties.prompt_upsampling).toMatchObject({ type: 'boolean', default: false });
    expect(properties.safety_tolerance).toMatchObject({ type: 'integer', minimum: 1, maximum: 6, default: 2 });
    expect(properties.output_format).toMatchObject({ type: 'string', enum: ['jpg', 'png'], default: 'jpg' });
    expect(properties.prompt).toMatchObject({ type: 'string', title: 'prompt', 'x-order': 0 });
  });

  it("publishes dev's ranges, including guidance from 0", () => {
    const properties = openApiInputSchema(fluxDepthDev).properties as Record<string, Record<string, unknown>>;
    expect(properties.num_outputs).toMatchObject({ minimum: 1, maximum: 4, default: 1 });
    expect(properties.guidance).toMatchObject({ minimum: 0, maximum: 100, default: 10 });
    expect(properties.megapixels).toMatchObject({ enum: ['1', '0.25'], default: '1' });
  });

  it('publishes the output shape', () => {
    expect(openApiOutputSchema(fluxDepthPro)).toEqual({ type: 'string', title: 'Output', format: 'uri' });
    expect(openApiOutputSchema(fluxDepthDev)).toEqual({
      type: 'array',
      title: 'Output',
      items: { type: 'string', format: 'uri' },
    });
  });
});

describe('modelInputSchema', () => {
  it('accepts a valid input and reports problems at the input name', () => {
    const schema = modelInputSchema(fluxDepthPro);
    expect(schema.safeParse(proBase).success).toBe(true);
    const result = schema.safeParse({ control_image: controlImage, steps: 99, extra: true });
    expect(result.success).toBe(false);
    expect(result.error?.issues.map((issue) => issue.path.join('.')).sort()).toEqual(['extra', 'prompt', 'steps']);
  });
});
