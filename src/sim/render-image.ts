/**
 * The simulator's stand-in for FLUX.1 Depth: turns a control image and a prompt into an output image that visibly keeps
 * the control's structure (local contrast plus inked edges, like a depth/edge-guided render) and takes its look from the
 * prompt (a palette chosen by words such as "night" or "sunset", shifted by a hash of the whole prompt) and from the
 * seed (a soft light direction, low-frequency tone variation and film grain drawn from a seeded PRNG).
 *
 * Deterministic by construction: the same request always yields the same bytes, because every random choice comes
 * from the seed or the prompt's hash and the encoders run with fixed options and write no metadata (sharp drops EXIF,
 * ICC and timestamps unless asked to keep them). That is what lets depthq's tests check "one seed → one image".
 *
 * Output size follows FLUX: it does not depend on the control's resolution. The longer side is `maxSide` (rounded down
 * to a multiple of 16), the shorter side keeps the control's aspect ratio, rounded to the nearest multiple of 16,
 * because FLUX's latent grid works in 16-pixel blocks.
 */
import { createHash } from 'node:crypto';
import sharp from 'sharp';
import { MAX_CONTROL_IMAGE_PIXELS } from '../core/image-structure.js';
import { seededRandom } from '../core/random.js';

export type SimOutputFormat = 'jpg' | 'png' | 'webp';

export interface RenderRequest {
  /** jpeg, png, gif or webp bytes; the first frame of an animation is used. */
  readonly controlImage: Uint8Array;
  readonly prompt: string;
  /** 0..2147483647 */
  readonly seed: number;
  /** More steps → finer detail and stronger edges. */
  readonly steps: number;
  /** Higher guidance → more contrast. */
  readonly guidance: number;
  readonly outputFormat: SimOutputFormat;
  /** 0..100, jpg and webp only. @defaultValue 90 */
  readonly quality?: number;
  /** The output's longer side, 16..2048. @defaultValue 1024 */
  readonly maxSide?: number;
}

export const DEFAULT_OUTPUT_QUALITY = 90;
export const DEFAULT_MAX_SIDE = 1024;
/** FLUX's output sides are multiples of 16. */
export const OUTPUT_SIDE_MULTIPLE = 16;
/** Caps the output at ≈ 4 MP so one render stays within a few tens of MB. */
export const MAX_OUTPUT_SIDE = 2048;
/** Refuses decompression bombs before decoding: 40 MP covers every camera a studio is likely to use. */
export const MAX_CONTROL_PIXELS = MAX_CONTROL_IMAGE_PIXELS;
export const MAX_SEED = 2_147_483_647;

const ACCEPTED_CONTROL_FORMATS: ReadonlySet<string> = new Set(['jpeg', 'png', 'gif', 'webp']);

/** The control image cannot be used: not decodable, or not one of jpeg, png, gif, webp. */
export class UnreadableControlImageError extends Error {
  constructor(detail: string, options?: { cause?: unknown }) {
    super(`control image is not a readable jpeg/png/gif/webp: ${detail}`, options);
    this.name = 'UnreadableControlImageError';
  }
}

/** The output size FLUX-style: longer side = maxSide (floored to 16), shorter side keeps the aspect ratio. */
export function outputDimensions(
  controlWidth: number,
  controlHeight: number,
  maxSide: number = DEFAULT_MAX_SIDE,
): { width: number; height: number } {
  const longSide = Math.max(OUTPUT_SIDE_MULTIPLE, Math.floor(maxSide / OUTPUT_SIDE_MULTIPLE) * OUTPUT_SIDE_MULTIPLE);
  const landscape = controlWidth >= controlHeight;
  const ratio = landscape ? controlHeight / controlWidth : controlWidth / controlHeight;
  const shortSide = Math.min(
    longSide,
    Math.max(OUTPUT_SIDE_MULTIPLE, Math.round((longSide * ratio) / OUTPUT_SIDE_MULTIPLE) * OUTPUT_SIDE_MULTIPLE),
  );
  return landscape ? { width: longSide, height: shortSide } : { width: shortSide, height: longSide };
}

export async function renderDepthImage(request: RenderRequest): Promise<Buffer> {
  const quality = request.quality ?? DEFAULT_OUTPUT_QUALITY;
  const maxSide = request.maxSide ?? DEFAULT_MAX_SIDE;
  checkRequest(request, quality, maxSide);

  const control = await readControlGrey(request.controlImage, maxSide);
  const look = lookFromPrompt(request.prompt, request.seed);
  const rgb = paint(control, look, request);
  return encode(rgb, control.width, control.height, request.outputFormat, quality);
}

function checkRequest(request: RenderRequest, quality: number, maxSide: number): void {
  if (!Number.isInteger(request.seed) || request.seed < 0 || request.seed > MAX_SEED) {
    throw new RangeError(`seed must be an integer from 0 to ${MAX_SEED}, got ${request.seed}`);
  }
  if (!Number.isInteger(request.steps) || request.steps < 1) {
    throw new RangeError(`steps must be an integer from 1 up, got ${request.steps}`);
  }
  if (!Number.isFinite(request.guidance) || request.guidance < 0) {
    throw new RangeError(`guidance must be a number from 0 up, got ${request.guidance}`);
  }
  if (!Number.isInteger(quality) || quality < 0 || quality > 100) {
    throw new RangeError(`quality must be an integer from 0 to 100, got ${quality}`);
  }
  if (!Number.isInteger(maxSide) || maxSide < OUTPUT_SIDE_MULTIPLE || maxSide > MAX_OUTPUT_SIDE) {
    throw new RangeError(
      `maxSide must be an integer from ${OUTPUT_SIDE_MULTIPLE} to ${MAX_OUTPUT_SIDE}, got ${maxSide}`,
    );
  }
  if (!['jpg', 'png', 'webp'].includes(request.outputFormat)) {
    throw new RangeError(`outputFormat must be jpg, png or webp, got ${String(request.outputFormat)}`);
  }
}

interface GreyImage {
  readonly width: number;
  readonly height: number;
  /** One byte per pixel, contrast-stretched. */
  readonly pixels: Uint8Array;
}

async function readControlGrey(bytes: Uint8Array, maxSide: number): Promise<GreyImage> {
  // 'error' rather than the stricter default 'warning': a photo with a harmless libjpeg warning is still usable.
  const inputOptions = { limitInputPixels: MAX_CONTROL_PIXELS, failOn: 'error' } as const;
  let format: string;
  let orientedWidth: number;
  let orientedHeight: number;
  try {
    const metadata = await sharp(bytes, inputOptions).metadata();
    format = metadata.format;
    orientedWidth = metadata.autoOrient.width;
    orientedHeight = metadata.autoOrient.height;
  } catch (error) {
    throw new UnreadableControlImageError(describe(error), { cause: error });
  }
  if (!ACCEPTED_CONTROL_FORMATS.has(format)) {
    throw new UnreadableControlImageError(`it is ${format}`);
  }
  const size = outputDimensions(orientedWidth, orientedHeight, maxSide);
  try {
    const { data, info } = await sharp(bytes, inputOptions)
      .autoOrient()
      // Transparent areas of a png/gif/webp read as white paper, not as black.
      .flatten({ background: '#ffffff' })
      .resize(size.width, size.height, { fit: 'fill' })
      .toColourspace('b-w')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.width !== size.width || info.height !== size.height) {
      throw new Error(`decoded to ${info.width}x${info.height}, expected ${size.width}x${size.height}`);
    }
    return { width: info.width, height: info.height, pixels: stretchContrast(firstChannel(data, info.channels)) };
  } catch (error) {
    throw new UnreadableControlImageError(describe(error), { cause: error });
  }
}

function firstChannel(data: Buffer, channels: number): Uint8Array {
  if (channels === 1) return data;
  const pixels = new Uint8Array(data.length / channels);
  for (let i = 0; i < pixels.length; i++) pixels[i] = data[i * channels] ?? 0;
  return pixels;
}

/**
 * Stretches the 1st..99th percentile to 0..255 so dim and bright photos give the same structure. Done here rather than
 * with sharp's normalise(), which decodes the whole control a second time to build its histogram.
 */
function stretchContrast(pixels: Uint8Array): Uint8Array {
  const histogram = new Uint32Array(256);
  for (const value of pixels) histogram[value] = (histogram[value] ?? 0) + 1;
  const clip = pixels.length * 0.01;
  let low = 0;
  for (let seen = histogram[0] ?? 0; seen <= clip && low < 255; seen += histogram[low] ?? 0) low++;
  let high = 255;
  for (let seen = histogram[255] ?? 0; seen <= clip && high > 0; seen += histogram[high] ?? 0) high--;
  if (high - low < 8) return pixels;
  const table = new Uint8Array(256);
  for (let value = 0; value < 256; value++) {
    table[value] = Math.round(Math.min(1, Math.max(0, (value - low) / (high - low))) * 255);
  }
  const stretched = new Uint8Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) stretched[i] = table[pixels[i] ?? 0] ?? 0;
  return stretched;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

// ---------------------------------------------------------------------------------------------------------------------
// The look: palette from the prompt's words, hue shift and texture from the prompt's hash and the seed.

type Rgb = readonly [number, number, number];

interface Look {
  /** 256 entries × 3 bytes: tone → colour. */
  readonly ramp: Uint8Array;
  /** The colour edges are inked with. */
  readonly ink: Rgb;
  /** Seeds the texture; mixes seed and prompt so both move it. */
  readonly textureSeed: number;
  /** Direction of the soft light, radians. */
  readonly lightAngle: number;
}

/** Four stops from shadow to highlight. Words are matched whole, the first matching word of the prompt wins. */
const KEYWORD_PALETTES: ReadonlyArray<{ readonly words: readonly string[]; readonly stops: readonly string[] }> = [
  {
    words: ['night', 'midnight', 'nighttime', 'moonlit', 'moon', 'evening'],
    stops: ['#040816', '#16284f', '#3d5c96', '#c9d6ee'],
  },
  {
    words: ['sunset', 'warm', 'golden', 'dusk', 'sunrise', 'autumn', 'cozy', 'cosy'],
    stops: ['#2a0f2e', '#8a2f3c', '#e8793a', '#ffe6a8'],
  },
  {
    words: ['scandinavian', 'nordic', 'minimal', 'minimalist', 'white', 'bright', 'airy', 'japandi'],
    stops: ['#5d6168', '#a7b0b8', '#e2e4e0', '#fcfbf7'],
  },
  {
    words: ['industrial', 'concrete', 'brutalist', 'loft', 'urban'],
    stops: ['#15171a', '#484d54', '#8c9298', '#dadde0'],
  },
  {
    words: ['brick', 'victorian', 'rustic', 'terracotta', 'farmhouse', 'cottage'],
    stops: ['#2b120c', '#7a3322', '#c2714f', '#f4d8bf'],
  },
  {
    words: ['garden', 'forest', 'green', 'spring', 'tropical', 'park', 'lush'],
    stops: ['#0c1e11', '#2e592d', '#8ab169', '#eef4d4'],
  },
  { words: ['snow', 'winter', 'frost', 'icy', 'snowy'], stops: ['#1c2632', '#6b8398', '#c3d5e3', '#ffffff'] },
  { words: ['luxury', 'marble', 'gold', 'deco', 'elegant'], stops: ['#0f0d0a', '#594530', '#c6a16a', '#fbf2dd'] },
  {
    words: ['mediterranean', 'coastal', 'beach', 'sea', 'seaside', 'summer'],
    stops: ['#0b2a3f', '#1e6e8a', '#e0c8a5', '#fffaf0'],
  },
  {
    words: ['fog', 'foggy', 'misty', 'mist', 'overcast', 'rain', 'rainy'],
    stops: ['#2b3035', '#6a737b', '#a9b1b7', '#e6e9eb'],
  },
];

function lookFromPrompt(prompt: string, seed: number): Look {
  const digest = createHash('sha256').update(prompt, 'utf8').digest();
  const promptBits = digest.readUInt32BE(0);
  // A prompt-specific nudge of the hue keeps two "night" prompts apart while both stay recognisably night.
  const hueNudge = ((digest.readUInt16BE(4) / 0xffff) * 2 - 1) * 14;
  const keywordStops = paletteForWords(prompt);
  const stops = keywordStops
    ? keywordStops.map((hex) => rotateHue(hexToRgb(hex), hueNudge))
    : hashedPalette((digest.readUInt16BE(6) / 0xffff) * 360);
  const ramp = buildRamp(stops);
  const darkest = stops[0] ?? [0, 0, 0];
  const ink: Rgb = [darkest[0] * 0.6, darkest[1] * 0.6, darkest[2] * 0.6];
  const seedRandom = seededRandom(seed ^ 0x5eed);
  return {
    ramp,
    ink,
    textureSeed: (seed ^ promptBits) >>> 0,
    lightAngle: seedRandom() * Math.PI * 2,
  };
}

function paletteForWords(prompt: string): readonly string[] | undefined {
  const words = prompt.toLowerCase().match(/[a-z]+/g) ?? [];
  for (const word of words) {
    const palette = KEYWORD_PALETTES.find((candidate) => candidate.words.includes(word));
    if (palette) return palette.stops;
  }
  return undefined;
}

/** An analogous palette around one hue, for prompts that name no mood. */
function hashedPalette(hue: number): Rgb[] {
  return [
    hslToRgb(hue, 0.4, 0.1),
    hslToRgb(hue + 18, 0.38, 0.36),
    hslToRgb(hue + 36, 0.34, 0.66),
    hslToRgb(hue + 48, 0.3, 0.93),
  ];
}

function buildRamp(stops: readonly Rgb[]): Uint8Array {
  const ramp = new Uint8Array(256 * 3);
  const last = stops.length - 1;
  for (let i = 0; i < 256; i++) {
    const position = (i / 255) * last;
    const index = Math.min(last - 1, Math.floor(position));
    const fraction = position - index;
    const from = stops[index] ?? [0, 0, 0];
    const to = stops[index + 1] ?? from;
    for (let channel = 0; channel < 3; channel++) {
      const a = from[channel] ?? 0;
      const b = to[channel] ?? 0;
      ramp[i * 3 + channel] = Math.round(a + (b - a) * fraction);
    }
  }
  return ramp;
}

function hexToRgb(hex: string): Rgb {
  const value = Number.parseInt(hex.slice(1), 16);
  return [(value >> 16) & 0xff, (value >> 8) & 0xff, value & 0xff];
}

function rotateHue(rgb: Rgb, degrees: number): Rgb {
  const [r, g, b] = rgb.map((channel) => channel / 255) as [number, number, number];
  const max = Math.max(r, g, b);
  const min = Math.min(r, g, b);
  const lightness = (max + min) / 2;
  const delta = max - min;
  if (delta === 0) return rgb;
  const saturation = delta / (1 - Math.abs(2 * lightness - 1));
  let hue: number;
  if (max === r) hue = 60 * (((g - b) / delta) % 6);
  else if (max === g) hue = 60 * ((b - r) / delta + 2);
  else hue = 60 * ((r - g) / delta + 4);
  return hslToRgb(hue + degrees, saturation, lightness);
}

function hslToRgb(hueDegrees: number, saturation: number, lightness: number): Rgb {
  const hue = (((hueDegrees % 360) + 360) % 360) / 60;
  const chroma = (1 - Math.abs(2 * lightness - 1)) * saturation;
  const second = chroma * (1 - Math.abs((hue % 2) - 1));
  const [r, g, b] =
    hue < 1
      ? [chroma, second, 0]
      : hue < 2
        ? [second, chroma, 0]
        : hue < 3
          ? [0, chroma, second]
          : hue < 4
            ? [0, second, chroma]
            : hue < 5
              ? [second, 0, chroma]
              : [chroma, 0, second];
  const offset = lightness - chroma / 2;
  return [Math.round((r + offset) * 255), Math.round((g + offset) * 255), Math.round((b + offset) * 255)];
}

// ---------------------------------------------------------------------------------------------------------------------
// Painting. Everything that varies slowly across the image (local mean, light, tone drift) is computed on a grid of
// 8×8-pixel cells and interpolated, so the per-pixel loop stays a handful of multiplications.

const CELL = 8;
const GRAIN_TILE = 128;

function paint(control: GreyImage, look: Look, request: RenderRequest): Uint8ClampedArray {
  const { width, height, pixels } = control;
  const progress = Math.min(1, Math.max(0, (request.steps - 1) / 49));
  // Steps add detail: more local contrast and firmer ink lines, like a longer denoising run.
  const localContrast = 0.3 + 1.1 * progress;
  const inkStrength = 0.35 + 0.45 * progress;
  // Guidance pushes the tones apart, as a high CFG scale does.
  const contrast = 0.8 + 0.7 * (Math.min(100, request.guidance) / 100);

  const cellsX = Math.ceil(width / CELL);
  const cellsY = Math.ceil(height / CELL);
  const localMean = blurCells(meanPerCell(pixels, width, height, cellsX, cellsY), cellsX, cellsY, 3);
  const drift = toneDrift(cellsX, cellsY, look.textureSeed);
  const light = lightField(cellsX, cellsY, look.lightAngle);
  // tone = light × (0.5 + contrast × (mean + (grey − mean)(1 + localContrast) − 0.5) + 0.09 × drift), which is
  // linear in grey: tone = gain × grey + offset, with gain and offset varying slowly per cell.
  const gain = new Float32Array(cellsX * cellsY);
  const offset = new Float32Array(cellsX * cellsY);
  for (let cell = 0; cell < gain.length; cell++) {
    const cellLight = light[cell] ?? 1;
    gain[cell] = cellLight * contrast * (1 + localContrast) * 255;
    offset[cell] =
      cellLight * (0.5 + contrast * (-(localMean[cell] ?? 0) * localContrast - 0.5) + 0.09 * (drift[cell] ?? 0)) * 255;
  }
  const grain = grainTile(look.textureSeed);
  const columns = interpolationAxis(width, cellsX);
  const rows = interpolationAxis(height, cellsY);
  const gainRow = new Float32Array(cellsX);
  const offsetRow = new Float32Array(cellsX);

  const { ramp, ink } = look;
  const [inkR, inkG, inkB] = ink;
  const out = new Uint8ClampedArray(width * height * 3);
  for (let y = 0; y < height; y++) {
    // Interpolate the cell grids vertically once per row; per pixel only the horizontal step remains.
    const row0 = (rows.low[y] ?? 0) * cellsX;
    const row1 = (rows.high[y] ?? 0) * cellsX;
    const fy = rows.fraction[y] ?? 0;
    for (let cx = 0; cx < cellsX; cx++) {
      const gainTop = gain[row0 + cx] ?? 0;
      const offsetTop = offset[row0 + cx] ?? 0;
      gainRow[cx] = gainTop + ((gain[row1 + cx] ?? 0) - gainTop) * fy;
      offsetRow[cx] = offsetTop + ((offset[row1 + cx] ?? 0) - offsetTop) * fy;
    }
    const rowAbove = (y > 0 ? y - 1 : y) * width;
    const row = y * width;
    const rowBelow = (y < height - 1 ? y + 1 : y) * width;
    const grainRow = (y % GRAIN_TILE) * GRAIN_TILE;
    let target = row * 3;
    for (let x = 0; x < width; x++) {
      const c0 = columns.low[x] ?? 0;
      const c1 = columns.high[x] ?? 0;
      const fx = columns.fraction[x] ?? 0;
      const gain0 = gainRow[c0] ?? 0;
      const offset0 = offsetRow[c0] ?? 0;
      const pixelGain = gain0 + ((gainRow[c1] ?? 0) - gain0) * fx;
      const pixelOffset = offset0 + ((offsetRow[c1] ?? 0) - offset0) * fx;
      const tone = (pixelGain * (pixels[row + x] ?? 0)) / 255 + pixelOffset;
      const source = (tone <= 0 ? 0 : tone >= 255 ? 255 : Math.round(tone)) * 3;

      // Sobel on the control: the structure FLUX Depth would preserve, drawn as ink.
      const left = x > 0 ? x - 1 : x;
      const right = x < width - 1 ? x + 1 : x;
      const topLeft = pixels[rowAbove + left] ?? 0;
      const topRight = pixels[rowAbove + right] ?? 0;
      const bottomLeft = pixels[rowBelow + left] ?? 0;
      const bottomRight = pixels[rowBelow + right] ?? 0;
      const gx =
        topRight - topLeft + bottomRight - bottomLeft + 2 * ((pixels[row + right] ?? 0) - (pixels[row + left] ?? 0));
      const gy =
        bottomLeft - topLeft + bottomRight - topRight + 2 * ((pixels[rowBelow + x] ?? 0) - (pixels[rowAbove + x] ?? 0));
      const magnitude = Math.sqrt(gx * gx + gy * gy) / 1020;
      const inked =
        magnitude <= EDGE_LOW
          ? 0
          : magnitude >= EDGE_HIGH
            ? inkStrength
            : inkStrength * smoothstep((magnitude - EDGE_LOW) / (EDGE_HIGH - EDGE_LOW));

      const noise = grain[grainRow + (x % GRAIN_TILE)] ?? 0;
      const red = ramp[source] ?? 0;
      const green = ramp[source + 1] ?? 0;
      const blue = ramp[source + 2] ?? 0;
      // Uint8ClampedArray clamps and rounds on assignment (a Uint8Array would wrap 300 to 44).
      out[target] = red + (inkR - red) * inked + noise;
      out[target + 1] = green + (inkG - green) * inked + noise;
      out[target + 2] = blue + (inkB - blue) * inked + noise;
      target += 3;
    }
  }
  return out;
}

/** Sobel magnitudes (0..1) below EDGE_LOW are texture and get no ink; above EDGE_HIGH, full ink. */
const EDGE_LOW = 0.06;
const EDGE_HIGH = 0.5;

function smoothstep(t: number): number {
  return t * t * (3 - 2 * t);
}

/** For each pixel along one axis: the two cells whose centres surround it and how far it is from the first. */
function interpolationAxis(
  size: number,
  cells: number,
): { low: Uint16Array; high: Uint16Array; fraction: Float32Array } {
  const low = new Uint16Array(size);
  const high = new Uint16Array(size);
  const fraction = new Float32Array(size);
  for (let i = 0; i < size; i++) {
    const position = Math.min(cells - 1, Math.max(0, (i + 0.5) / CELL - 0.5));
    const index = Math.floor(position);
    low[i] = index;
    high[i] = Math.min(cells - 1, index + 1);
    fraction[i] = position - index;
  }
  return { low, high, fraction };
}

function meanPerCell(pixels: Uint8Array, width: number, height: number, cellsX: number, cellsY: number): Float32Array {
  const sums = new Float32Array(cellsX * cellsY);
  const counts = new Uint16Array(cellsX * cellsY);
  for (let y = 0; y < height; y++) {
    const cellRow = Math.floor(y / CELL) * cellsX;
    for (let x = 0; x < width; x++) {
      const cell = cellRow + Math.floor(x / CELL);
      sums[cell] = (sums[cell] ?? 0) + (pixels[y * width + x] ?? 0) / 255;
      counts[cell] = (counts[cell] ?? 0) + 1;
    }
  }
  for (let i = 0; i < sums.length; i++) sums[i] = (sums[i] ?? 0) / Math.max(1, counts[i] ?? 1);
  return sums;
}

/** Two passes of a separable box blur ≈ a Gaussian of a few cells: the soft "depth" base the detail rides on. */
function blurCells(grid: Float32Array, cellsX: number, cellsY: number, radius: number): Float32Array {
  let current = grid;
  for (let pass = 0; pass < 2; pass++) {
    current = boxBlurAxis(current, cellsX, cellsY, radius, true);
    current = boxBlurAxis(current, cellsX, cellsY, radius, false);
  }
  return current;
}

function boxBlurAxis(
  grid: Float32Array,
  cellsX: number,
  cellsY: number,
  radius: number,
  horizontal: boolean,
): Float32Array {
  const out = new Float32Array(grid.length);
  const lines = horizontal ? cellsY : cellsX;
  const length = horizontal ? cellsX : cellsY;
  for (let line = 0; line < lines; line++) {
    for (let i = 0; i < length; i++) {
      let sum = 0;
      let count = 0;
      for (let k = Math.max(0, i - radius); k <= Math.min(length - 1, i + radius); k++) {
        sum += grid[horizontal ? line * cellsX + k : k * cellsX + line] ?? 0;
        count++;
      }
      out[horizontal ? line * cellsX + i : i * cellsX + line] = sum / count;
    }
  }
  return out;
}

/** Smooth value noise in −1..1 over a coarse lattice: slow tone variation that differs from seed to seed. */
function toneDrift(cellsX: number, cellsY: number, seed: number): Float32Array {
  const random = seededRandom(seed);
  const latticeX = 7;
  const latticeY = 5;
  const lattice = new Float32Array(latticeX * latticeY);
  for (let i = 0; i < lattice.length; i++) lattice[i] = random() * 2 - 1;
  const out = new Float32Array(cellsX * cellsY);
  for (let cy = 0; cy < cellsY; cy++) {
    const v = (cy / Math.max(1, cellsY - 1)) * (latticeY - 1);
    const v0 = Math.min(latticeY - 2, Math.floor(v));
    const fv = smoothstep(v - v0);
    for (let cx = 0; cx < cellsX; cx++) {
      const u = (cx / Math.max(1, cellsX - 1)) * (latticeX - 1);
      const u0 = Math.min(latticeX - 2, Math.floor(u));
      const fu = smoothstep(u - u0);
      const a = lattice[v0 * latticeX + u0] ?? 0;
      const b = lattice[v0 * latticeX + u0 + 1] ?? 0;
      const c = lattice[(v0 + 1) * latticeX + u0] ?? 0;
      const d = lattice[(v0 + 1) * latticeX + u0 + 1] ?? 0;
      const top = a + (b - a) * fu;
      const bottom = c + (d - c) * fu;
      out[cy * cellsX + cx] = top + (bottom - top) * fv;
    }
  }
  return out;
}

/** A soft directional light times a gentle vignette: a multiplier around 1. */
function lightField(cellsX: number, cellsY: number, angle: number): Float32Array {
  const dx = Math.cos(angle);
  const dy = Math.sin(angle);
  const out = new Float32Array(cellsX * cellsY);
  for (let cy = 0; cy < cellsY; cy++) {
    const v = (cy + 0.5) / cellsY - 0.5;
    for (let cx = 0; cx < cellsX; cx++) {
      const u = (cx + 0.5) / cellsX - 0.5;
      const directional = 1 + 0.22 * (u * dx + v * dy);
      const vignette = 1 - 0.45 * (u * u + v * v);
      out[cy * cellsX + cx] = directional * vignette;
    }
  }
  return out;
}

/** Film grain, ±5 levels, tiled: bounded memory whatever the output size. */
function grainTile(seed: number): Int8Array {
  const random = seededRandom(seed ^ 0x9e3779b9);
  const tile = new Int8Array(GRAIN_TILE * GRAIN_TILE);
  for (let i = 0; i < tile.length; i++) tile[i] = Math.round((random() + random() - 1) * 5);
  return tile;
}

// ---------------------------------------------------------------------------------------------------------------------

async function encode(
  rgb: Uint8ClampedArray,
  width: number,
  height: number,
  format: SimOutputFormat,
  quality: number,
): Promise<Buffer> {
  // sharp wants 1..100; Replicate's `output_quality` allows 0.
  const encoderQuality = Math.max(1, quality);
  const image = sharp(rgb, { raw: { width, height, channels: 3 } });
  // Every encoder option is pinned so a sharp upgrade that changes a default shows up as a test failure, not drift.
  switch (format) {
    case 'jpg':
      return image
        .jpeg({ quality: encoderQuality, chromaSubsampling: '4:2:0', progressive: false, mozjpeg: false })
        .toBuffer();
    case 'png':
      return image
        .png({ compressionLevel: 6, adaptiveFiltering: false, palette: false, progressive: false })
        .toBuffer();
    case 'webp':
      return image.webp({ quality: encoderQuality, effort: 2, lossless: false, smartSubsample: false }).toBuffer();
  }
}
