/**
 * Synthetic control images for the demo and the tests: architecture and real-estate scenes (facades, a street, a
 * gabled house, townhouses, interiors in one-point perspective) drawn as SVG and rasterised with sharp. depthq makes
 * its own images so that neither the repository nor a demo ever ships someone else's photos.
 *
 * Every scene is a function of the image size and a seeded PRNG, so the same options always give byte-identical images
 * (no fonts, no clock, no randomness from outside). Asking for more images than there are scene kinds cycles through
 * the kinds again with another seed: other colours, window counts and furniture.
 */
import sharp from 'sharp';
import { brickFacade } from './facade-brick.js';
import { modernFacade } from './facade-modern.js';
import { gabledHouse } from './house-gabled.js';
import { kitchen } from './interior-kitchen.js';
import { livingRoom } from './interior-living-room.js';
import { staircaseHall } from './interior-staircase.js';
import { streetPerspective } from './street-perspective.js';
import { Canvas, type Scene } from './svg.js';
import { townhouses } from './townhouses-canal.js';

export interface ControlImage {
  /** Unique and stable, e.g. `facade-brick-01`; safe as a file name or an S3 key segment. */
  readonly name: string;
  readonly description: string;
  readonly bytes: Buffer;
  readonly contentType: 'image/png' | 'image/jpeg';
}

export interface ControlImageOptions {
  /** @defaultValue 8 (one of each scene kind) */
  readonly count?: number;
  /** @defaultValue 768 */
  readonly width?: number;
  /** @defaultValue 512 */
  readonly height?: number;
  /** @defaultValue 'png' */
  readonly format?: 'png' | 'jpeg';
}

export const MAX_CONTROL_IMAGE_COUNT = 1000;
export const MIN_CONTROL_IMAGE_SIDE = 64;
export const MAX_CONTROL_IMAGE_SIDE = 4096;

export async function makeControlImages(options: ControlImageOptions = {}): Promise<ControlImage[]> {
  const count = options.count ?? 8;
  const width = options.width ?? 768;
  const height = options.height ?? 512;
  const format = options.format ?? 'png';
  if (!Number.isInteger(count) || count < 0 || count > MAX_CONTROL_IMAGE_COUNT) {
    throw new RangeError(`count must be an integer from 0 to ${MAX_CONTROL_IMAGE_COUNT}, got ${count}`);
  }
  for (const [option, value] of [
    ['width', width],
    ['height', height],
  ] as const) {
    if (!Number.isInteger(value) || value < MIN_CONTROL_IMAGE_SIDE || value > MAX_CONTROL_IMAGE_SIDE) {
      throw new RangeError(
        `${option} must be an integer from ${MIN_CONTROL_IMAGE_SIDE} to ${MAX_CONTROL_IMAGE_SIDE}, got ${value}`,
      );
    }
  }
  if (format !== 'png' && format !== 'jpeg') {
    throw new RangeError(`format must be png or jpeg, got ${String(format)}`);
  }

  const images: ControlImage[] = [];
  // One at a time: rasterising is CPU-bound, and this bounds memory to one image whatever `count` is.
  for (let index = 0; index < count; index++) {
    const scene = SCENES[index % SCENES.length] ?? brickFacade;
    const variant = Math.floor(index / SCENES.length) + 1;
    const canvas = new Canvas(width, height, sceneSeed(scene.kind, variant));
    const svg = canvas.document(scene.draw(canvas));
    const raster = sharp(Buffer.from(svg, 'utf8')).removeAlpha();
    const bytes =
      format === 'png'
        ? await raster.png({ compressionLevel: 6, adaptiveFiltering: false, palette: false }).toBuffer()
        : await raster.jpeg({ quality: 92, chromaSubsampling: '4:4:4', mozjpeg: false }).toBuffer();
    images.push({
      name: `${scene.kind}-${String(variant).padStart(2, '0')}`,
      description: scene.description,
      bytes,
      contentType: format === 'png' ? 'image/png' : 'image/jpeg',
    });
  }
  return images;
}

function sceneSeed(kind: string, variant: number): number {
  let hash = 2166136261;
  for (const character of `${kind}#${variant}`) {
    hash = Math.imul(hash ^ (character.codePointAt(0) ?? 0), 16777619) >>> 0;
  }
  return hash;
}

/** The order is the demo's order: exteriors and interiors alternate so a short run already shows both. */
const SCENES: readonly Scene[] = [
  brickFacade,
  livingRoom,
  streetPerspective,
  kitchen,
  gabledHouse,
  staircaseHall,
  modernFacade,
  townhouses,
];
