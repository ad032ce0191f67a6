/**
 * What "running the model" means in the simulator: fetch the image inputs (as the real model does when the prediction
 * starts), then render one image per output with the deterministic stand-in renderer. Model-specific input names are
 * mapped here (flux-depth-dev calls its steps `num_inference_steps` and its quality `output_quality`); every rule about
 * which values are valid stays in the model registry.
 */
import { contentTypeOfOutputFormat } from '../core/image-type.js';
import { type ModelDefinition, type ModelInput, outputFormatOf } from '../core/models.js';
import { type FetchedImage, type FetchImageOptions, fetchImageInput } from './image-input-fetch.js';
import { renderDepthImage } from './render-image.js';

export interface RenderedOutput {
  readonly bytes: Buffer;
  readonly format: 'jpg' | 'png' | 'webp';
  readonly contentType: string;
}

/** The renderer takes seeds 0..2^31-1; Replicate takes any integer, so larger or negative seeds are folded in. */
const SEED_SPACE = 2_147_483_648;

export function renderSeed(seed: number, index: number): number {
  return (((seed + index) % SEED_SPACE) + SEED_SPACE) % SEED_SPACE;
}

export async function fetchImageInputs(
  model: ModelDefinition,
  input: ModelInput,
  options: FetchImageOptions,
): Promise<Map<string, FetchedImage>> {
  const images = new Map<string, FetchedImage>();
  for (const name of model.imageInputs) {
    const uri = input[name];
    if (typeof uri === 'string') images.set(name, await fetchImageInput(name, uri, options));
  }
  return images;
}

function numberInput(input: ModelInput, names: readonly string[], fallback: number): number {
  for (const name of names) {
    const value = input[name];
    if (typeof value === 'number') return value;
  }
  return fallback;
}

function renderFormat(format: string): 'jpg' | 'png' | 'webp' {
  return format === 'png' || format === 'webp' ? format : 'jpg';
}

export async function renderOutputs(
  model: ModelDefinition,
  input: ModelInput,
  seed: number,
  controlImage: Uint8Array,
  imageCount: number,
  maxSide: number,
): Promise<RenderedOutput[]> {
  const format = renderFormat(outputFormatOf(model, input));
  const quality = input.output_quality;
  const prompt = typeof input.prompt === 'string' ? input.prompt : '';
  const steps = numberInput(input, ['steps', 'num_inference_steps'], 28);
  const guidance = numberInput(input, ['guidance'], 15);
  const outputs: RenderedOutput[] = [];
  for (let index = 0; index < imageCount; index++) {
    const bytes = await renderDepthImage({
      controlImage,
      prompt,
      seed: renderSeed(seed, index),
      steps,
      guidance,
      outputFormat: format,
      ...(typeof quality === 'number' ? { quality } : {}),
      maxSide,
    });
    outputs.push({ bytes, format, contentType: contentTypeOfOutputFormat(format) });
  }
  return outputs;
}
