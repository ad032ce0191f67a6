/**
 * `GET /v1/models/{owner}/{name}` as Replicate answers it for an official model, with the input and output schemas
 * generated from the model registry (never written out twice). The version id is a stable hash of the model's spec,
 * so it changes exactly when the simulated model's inputs change.
 */
import { createHash } from 'node:crypto';
import { type ModelDefinition, modelRegistry, openApiInputSchema, openApiOutputSchema } from '../core/models.js';

/** A fixed date, so the model object is the same on every run. */
const VERSION_CREATED_AT = '2024-11-21T00:00:00.000Z';

export function versionIdOf(model: ModelDefinition): string {
  return createHash('sha256')
    .update(JSON.stringify([model.id, model.inputs, model.outputShape]))
    .digest('hex');
}

/** `owner/name`, `owner/name:versionhash` or a bare version hash → the model, or undefined. */
export function modelOfVersionReference(reference: string): ModelDefinition | undefined {
  const [modelPart] = reference.split(':');
  if (modelPart?.includes('/')) return modelRegistry.get(modelPart);
  for (const model of modelRegistry.values()) if (versionIdOf(model) === reference) return model;
  return undefined;
}

function openApiSchema(model: ModelDefinition): Record<string, unknown> {
  return {
    openapi: '3.0.2',
    info: { title: 'Cog', version: '0.1.0' },
    paths: {
      '/predictions': {
        post: {
          summary: 'Predict',
          operationId: 'predict_predictions_post',
          requestBody: {
            content: { 'application/json': { schema: { $ref: '#/components/schemas/PredictionRequest' } } },
          },
          responses: {
            '200': {
              description: 'Successful Response',
              content: { 'application/json': { schema: { $ref: '#/components/schemas/PredictionResponse' } } },
            },
          },
        },
      },
    },
    components: {
      schemas: {
        Input: openApiInputSchema(model),
        Output: openApiOutputSchema(model),
        Status: {
          type: 'string',
          title: 'Status',
          enum: ['starting', 'processing', 'succeeded', 'canceled', 'failed'],
          description: 'An enumeration.',
        },
        PredictionRequest: {
          type: 'object',
          title: 'PredictionRequest',
          properties: { id: { type: 'string', title: 'Id' }, input: { $ref: '#/components/schemas/Input' } },
        },
        PredictionResponse: {
          type: 'object',
          title: 'PredictionResponse',
          properties: {
            id: { type: 'string', title: 'Id' },
            input: { $ref: '#/components/schemas/Input' },
            output: { $ref: '#/components/schemas/Output' },
            status: { $ref: '#/components/schemas/Status' },
            error: { type: 'string', title: 'Error' },
            logs: { type: 'string', title: 'Logs', default: '' },
          },
        },
      },
    },
  };
}

export function modelJson(model: ModelDefinition, runCount: number): Record<string, unknown> {
  const [owner, name] = model.id.split('/');
  return {
    url: `https://replicate.com/${model.id}`,
    owner,
    name,
    description: `${model.title} (simulated by depthq)`,
    visibility: 'public',
    is_official: true,
    github_url: null,
    paper_url: null,
    license_url: null,
    cover_image_url: null,
    run_count: runCount,
    default_example: null,
    latest_version: {
      id: versionIdOf(model),
      created_at: VERSION_CREATED_AT,
      cog_version: '0.13.6',
      openapi_schema: openApiSchema(model),
    },
  };
}
