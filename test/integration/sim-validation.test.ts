/**
 * 422 answers in Replicate's exact shape, asserted through the `replicate` client's ApiError (its response body only
 * survives in the error message: the client reads it to build the message).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningSimulator, startSimulator } from '../../src/sim/index.js';
import { apiErrorOf, authHeaders, clientFor } from '../helpers/sim-fixtures.js';

const PRO = 'black-forest-labs/flux-depth-pro';
const DEV = 'black-forest-labs/flux-depth-dev';
const validInput = {
  prompt: 'a quiet room',
  control_image: 'https://images.example/room.png',
  seed: 1,
  steps: 30,
  guidance: 15,
  safety_tolerance: 2,
  output_format: 'jpg',
};

let sim: RunningSimulator;

beforeAll(async () => {
  // Predictions created by the valid-input test must not start (the control image URL is fictitious).
  sim = await startSimulator({ startDelayMs: { min: 60_000, max: 60_000 } });
});

afterAll(async () => {
  await sim.close();
});

async function rejected(input: Record<string, unknown>, model = PRO) {
  return apiErrorOf(clientFor(sim).predictions.create({ model, input }));
}

describe('422 Input validation failed', () => {
  const cases: Array<[string, Record<string, unknown>, { type: string; field: string }, string]> = [
    ['steps 14', { steps: 14 }, { type: 'number_gte', field: 'input.steps' }, 'Must be greater than or equal to 15'],
    ['steps 51', { steps: 51 }, { type: 'number_lte', field: 'input.steps' }, 'Must be less than or equal to 50'],
    ['guidance 0', { guidance: 0 }, { type: 'number_gte', field: 'input.guidance' }, 'greater than or equal to 1'],
    ['guidance 101', { guidance: 101 }, { type: 'number_lte', field: 'input.guidance' }, 'less than or equal to 100'],
    ['safety_tolerance 0', { safety_tolerance: 0 }, { type: 'number_gte', field: 'input.safety_tolerance' }, '1'],
    ['safety_tolerance 7', { safety_tolerance: 7 }, { type: 'number_lte', field: 'input.safety_tolerance' }, '6'],
    [
      'output_format gif',
      { output_format: 'gif' },
      { type: 'enum', field: 'input.output_format' },
      'output_format must be one of the following: "jpg", "png"',
    ],
    ['missing prompt', { prompt: undefined }, { type: 'required', field: 'input' }, 'prompt is required'],
    [
      'missing control_image',
      { control_image: undefined },
      { type: 'required', field: 'input' },
      'control_image is required',
    ],
    ['steps as text', { steps: '30' }, { type: 'invalid_type', field: 'input.steps' }, 'Expected: integer'],
  ];

  for (const [name, change, expected, description] of cases) {
    it(`answers ${name} with invalid_fields ${expected.type} ${expected.field}`, async () => {
      const input: Record<string, unknown> = { ...validInput, ...change };
      for (const key of Object.keys(input)) if (input[key] === undefined) delete input[key];
      const error = await rejected(input);
      expect(error.status).toBe(422);
      expect(error.body.title).toBe('Input validation failed');
      expect(error.body.status).toBe(422);
      const fields = error.body.invalid_fields as Array<{ type: string; field: string; description: string }>;
      expect(fields).toHaveLength(1);
      expect(fields[0]).toMatchObject(expected);
      expect(fields[0]?.description).toContain(description);
      expect(error.body.detail).toBe(`- ${expected.field}: ${fields[0]?.description}\n`);
    });
  }

  it('lists every problem at once, one "- field: description" line each', async () => {
    const error = await rejected({ ...validInput, steps: 0, guidance: 500, output_format: 'bmp' });
    const fields = error.body.invalid_fields as Array<{ field: string; description: string }>;
    expect(fields.map((f) => f.field).sort()).toEqual(['input.guidance', 'input.output_format', 'input.steps']);
    expect(error.body.detail).toBe(fields.map((f) => `- ${f.field}: ${f.description}\n`).join(''));
  });

  it('applies each model its own rules (flux-depth-dev takes webp and 1–4 outputs)', async () => {
    const devInput = { prompt: 'x', control_image: 'https://images.example/a.png', output_format: 'webp' };
    const tooMany = await rejected({ ...devInput, num_outputs: 5 }, DEV);
    expect(tooMany.body.invalid_fields).toEqual([
      expect.objectContaining({ type: 'number_lte', field: 'input.num_outputs' }),
    ]);
    const accepted = await clientFor(sim).predictions.create({ model: DEV, input: { ...devInput, num_outputs: 4 } });
    expect(accepted.status).toBe('starting');
  });

  it('ignores inputs the model does not declare, as Replicate does, and echoes the input as sent', async () => {
    const input = { ...validInput, guidence: 3, extra: { nested: true } };
    const created = await clientFor(sim).predictions.create({ model: PRO, input });
    expect(created.input).toEqual(input);
  });

  it('answers a missing or non-object input with 422 too', async () => {
    for (const body of [{}, { input: 'prompt=x' }]) {
      const response = await fetch(`${sim.baseUrl}/models/${PRO}/predictions`, {
        method: 'POST',
        headers: authHeaders(),
        body: JSON.stringify(body),
      });
      expect(response.status).toBe(422);
      expect(await response.json()).toMatchObject({ title: 'Input validation failed', status: 422 });
    }
    expect(sim.stats().validationErrors).toBeGreaterThanOrEqual(2);
  });

  it('answers a body that is not JSON with 400', async () => {
    const response = await fetch(`${sim.baseUrl}/models/${PRO}/predictions`, {
      method: 'POST',
      headers: authHeaders(),
      body: '{"input": ',
    });
    expect(response.status).toBe(400);
    expect(response.headers.get('content-type')).toBe('application/problem+json');
  });
});
