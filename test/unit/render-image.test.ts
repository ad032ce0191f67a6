import sharp, { type Stats } from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  outputDimensions,
  type RenderRequest,
  renderDepthImage,
  UnreadableControlImageError,
} from '../../src/sim/render-image.js';

/** A facade: a wall with a grid of windows and a door. Strong horizontal and vertical structure. */
function facadeSvg(width: number, height: number): string {
  let windows = '';
  for (let row = 0; row < 3; row++) {
    for (let column = 0; column < 5; column++) {
      windows += `<rect x="${110 + column * 115}" y="${70 + row * 110}" width="60" height="80" fill="#2a3440"/>`;
    }
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 768 512">
    <rect width="768" height="512" fill="#a9c8e8"/>
    <rect x="80" y="40" width="608" height="420" fill="#b5654a"/>${windows}
    <rect x="350" y="380" width="70" height="80" fill="#3b2a20"/>
    <rect x="0" y="460" width="768" height="52" fill="#8a8780"/></svg>`;
}

/** Something with no facade in it: circles and diagonals. */
function orbsSvg(width: number, height: number): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 768 512">
    <rect width="768" height="512" fill="#f0e6d2"/>
    <circle cx="200" cy="260" r="150" fill="#203040"/>
    <circle cx="560" cy="180" r="110" fill="#7a2f2f"/>
    <polygon points="0,512 768,300 768,512" fill="#556b2f"/></svg>`;
}

async function rasterise(svg: string, format: 'png' | 'jpeg' | 'gif' | 'webp'): Promise<Buffer> {
  const image = sharp(Buffer.from(svg)).removeAlpha();
  switch (format) {
    case 'png':
      return image.png().toBuffer();
    case 'jpeg':
      return image.jpeg({ quality: 92 }).toBuffer();
    case 'gif':
      return image.gif().toBuffer();
    case 'webp':
      return image.webp({ quality: 90 }).toBuffer();
  }
}

/** Greyscale at a small fixed size, then the gradient magnitude: where the structure is, independent of colour. */
async function edgeMap(bytes: Uint8Array): Promise<Float64Array> {
  const width = 96;
  const height = 64;
  const grey = await sharp(bytes).resize(width, height, { fit: 'fill' }).greyscale().raw().toBuffer();
  const edges = new Float64Array(width * height);
  for (let y = 1; y < height - 1; y++) {
    for (let x = 1; x < width - 1; x++) {
      const at = (dx: number, dy: number): number => grey[(y + dy) * width + x + dx] ?? 0;
      const gx = at(1, 0) - at(-1, 0);
      const gy = at(0, 1) - at(0, -1);
      edges[y * width + x] = Math.hypot(gx, gy);
    }
  }
  return edges;
}

function correlation(a: Float64Array, b: Float64Array): number {
  const mean = (values: Float64Array): number => values.reduce((sum, value) => sum + value, 0) / values.length;
  const meanA = mean(a);
  const meanB = mean(b);
  let covariance = 0;
  let varianceA = 0;
  let varianceB = 0;
  for (let i = 0; i < a.length; i++) {
    const da = (a[i] ?? 0) - meanA;
    const db = (b[i] ?? 0) - meanB;
    covariance += da * db;
    varianceA += da * da;
    varianceB += db * db;
  }
  return covariance / Math.sqrt(varianceA * varianceB);
}

async function channelMeans(bytes: Uint8Array): Promise<{ red: number; green: number; blue: number }> {
  const stats = await sharp(bytes).stats();
  const [red, green, blue] = stats.channels.map((channel) => channel.mean);
  return { red: red ?? 0, green: green ?? 0, blue: blue ?? 0 };
}

async function luminanceSpread(bytes: Uint8Array): Promise<number> {
  const stats = await sharp(bytes).greyscale().stats();
  return stats.channels[0]?.stdev ?? 0;
}

/** Mean absolute second difference: how much fine detail an image carries. */
async function fineDetail(bytes: Uint8Array): Promise<number> {
  const { data, info } = await sharp(bytes).greyscale().raw().toBuffer({ resolveWithObject: true });
  let total = 0;
  for (let y = 0; y < info.height; y++) {
    for (let x = 1; x < info.width - 1; x++) {
      const i = y * info.width + x;
      total += Math.abs(2 * (data[i] ?? 0) - (data[i - 1] ?? 0) - (data[i + 1] ?? 0));
    }
  }
  return total / (info.width * info.height);
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

let facadePng: Buffer;
let orbsPng: Buffer;
let baseRequest: RenderRequest;

beforeAll(async () => {
  facadePng = await rasterise(facadeSvg(768, 512), 'png');
  orbsPng = await rasterise(orbsSvg(768, 512), 'png');
  baseRequest = {
    controlImage: facadePng,
    prompt: 'a brick apartment building, photo',
    seed: 42,
    steps: 28,
    guidance: 15,
    outputFormat: 'png',
  };
});

describe('renderDepthImage determinism', () => {
  it.each(['jpg', 'png', 'webp'] as const)(
    'gives byte-identical %s output for an identical request',
    async (format) => {
      const request = { ...baseRequest, outputFormat: format };
      const first = await renderDepthImage(request);
      // A plain Uint8Array copy, as a caller holding fetched bytes would pass.
      const second = await renderDepthImage({ ...request, controlImage: new Uint8Array(facadePng) });
      expect(first.length).toBeGreaterThan(1000);
      expect(second.equals(first)).toBe(true);
    },
  );
});

describe('renderDepthImage output format', () => {
  it('writes jpg as JPEG (FF D8 FF)', async () => {
    const output = await renderDepthImage({ ...baseRequest, outputFormat: 'jpg' });
    expect([...output.subarray(0, 3)]).toEqual([0xff, 0xd8, 0xff]);
    expect((await sharp(output).metadata()).format).toBe('jpeg');
  });

  it('writes png as PNG', async () => {
    const output = await renderDepthImage({ ...baseRequest, outputFormat: 'png' });
    expect([...output.subarray(0, 8)]).toEqual(PNG_SIGNATURE);
    expect((await sharp(output).metadata()).format).toBe('png');
  });

  it('writes webp as RIFF…WEBP', async () => {
    const output = await renderDepthImage({ ...baseRequest, outputFormat: 'webp' });
    expect(output.subarray(0, 4).toString('latin1')).toBe('RIFF');
    expect(output.subarray(8, 12).toString('latin1')).toBe('WEBP');
    expect((await sharp(output).metadata()).format).toBe('webp');
  });

  it('writes no metadata that could vary between runs (no EXIF, no ICC)', async () => {
    for (const outputFormat of ['jpg', 'png', 'webp'] as const) {
      const metadata = await sharp(await renderDepthImage({ ...baseRequest, outputFormat })).metadata();
      expect(metadata.exif).toBeUndefined();
      expect(metadata.icc).toBeUndefined();
    }
  });

  it('honours quality for jpg: lower quality, fewer bytes', async () => {
    const low = await renderDepthImage({ ...baseRequest, outputFormat: 'jpg', quality: 30 });
    const high = await renderDepthImage({ ...baseRequest, outputFormat: 'jpg', quality: 95 });
    const zero = await renderDepthImage({ ...baseRequest, outputFormat: 'jpg', quality: 0 });
    expect(low.length).toBeLessThan(high.length);
    expect(zero.length).toBeLessThanOrEqual(low.length);
  });
});

describe('renderDepthImage sensitivity to its inputs', () => {
  it('gives different bytes for another seed, but the same structure', async () => {
    const first = await renderDepthImage(baseRequest);
    const second = await renderDepthImage({ ...baseRequest, seed: 43 });
    expect(second.equals(first)).toBe(false);
    expect(correlation(await edgeMap(first), await edgeMap(second))).toBeGreaterThan(0.8);
  });

  it('accepts the extreme seeds 0 and 2147483647 and tells them apart', async () => {
    const low = await renderDepthImage({ ...baseRequest, seed: 0 });
    const high = await renderDepthImage({ ...baseRequest, seed: 2_147_483_647 });
    expect(high.equals(low)).toBe(false);
  });

  it('takes its palette from the prompt: night is blue, sunset is warm', async () => {
    const night = await channelMeans(await renderDepthImage({ ...baseRequest, prompt: 'the building at night' }));
    const sunset = await channelMeans(await renderDepthImage({ ...baseRequest, prompt: 'the building at sunset' }));
    expect(night.blue).toBeGreaterThan(night.red + 20);
    expect(sunset.red).toBeGreaterThan(sunset.blue + 40);
  });

  it('gives prompts without mood words visibly different looks', async () => {
    const first = await channelMeans(await renderDepthImage({ ...baseRequest, prompt: 'a building' }));
    const second = await channelMeans(await renderDepthImage({ ...baseRequest, prompt: 'an apartment house' }));
    const distance = Math.hypot(first.red - second.red, first.green - second.green, first.blue - second.blue);
    expect(distance).toBeGreaterThan(10);
  });

  it('gives scandinavian a pale image and night a dark one', async () => {
    const pale = await sharp(await renderDepthImage({ ...baseRequest, prompt: 'scandinavian interior' })).stats();
    const dark = await sharp(await renderDepthImage({ ...baseRequest, prompt: 'night' })).stats();
    const brightness = (stats: Stats): number =>
      stats.channels.slice(0, 3).reduce((sum, channel) => sum + channel.mean, 0) / 3;
    expect(brightness(pale)).toBeGreaterThan(brightness(dark) + 50);
  });

  it('adds contrast with guidance', async () => {
    const low = await renderDepthImage({ ...baseRequest, guidance: 2 });
    const high = await renderDepthImage({ ...baseRequest, guidance: 90 });
    expect(high.equals(low)).toBe(false);
    expect(await luminanceSpread(high)).toBeGreaterThan((await luminanceSpread(low)) * 1.1);
  });

  it('adds detail with steps', async () => {
    const few = await renderDepthImage({ ...baseRequest, steps: 15 });
    const many = await renderDepthImage({ ...baseRequest, steps: 50 });
    expect(many.equals(few)).toBe(false);
    expect(await fineDetail(many)).toBeGreaterThan(await fineDetail(few));
  });
});

describe('renderDepthImage keeps the control image structure', () => {
  it('correlates with its own control far more than with another control', async () => {
    const controls = [facadePng, orbsPng];
    for (const [index, control] of controls.entries()) {
      const other = controls[1 - index] ?? control;
      for (const prompt of ['a photo at night', 'warm sunset', 'scandinavian minimal', 'a house']) {
        const output = await renderDepthImage({ ...baseRequest, controlImage: control, prompt });
        const outputEdges = await edgeMap(output);
        const own = correlation(await edgeMap(control), outputEdges);
        const foreign = correlation(await edgeMap(other), outputEdges);
        expect(own, `own-control correlation for "${prompt}"`).toBeGreaterThan(0.6);
        expect(own - foreign, `margin over a foreign control for "${prompt}"`).toBeGreaterThan(0.4);
      }
    }
  });
});

describe('renderDepthImage dimensions', () => {
  it('renders a 768×512 control at 1024×688 by default (longer side 1024, multiples of 16)', async () => {
    const metadata = await sharp(await renderDepthImage(baseRequest)).metadata();
    expect([metadata.width, metadata.height]).toEqual([1024, 688]);
  });

  it('keeps a portrait control portrait and honours maxSide', async () => {
    const portrait = await rasterise(facadeSvg(400, 600), 'png');
    const metadata = await sharp(
      await renderDepthImage({ ...baseRequest, controlImage: portrait, maxSide: 512 }),
    ).metadata();
    expect([metadata.width, metadata.height]).toEqual([336, 512]);
  });

  it('computes FLUX-like sizes: ≤ maxSide, multiples of 16, aspect kept within rounding', () => {
    for (const [width, height, maxSide] of [
      [768, 512, 1024],
      [512, 768, 1024],
      [2048, 1362, 1024],
      [1000, 1000, 1000],
      [4000, 10, 1024],
      [10, 4000, 1440],
      [300, 200, 2048],
    ] as const) {
      const size = outputDimensions(width, height, maxSide);
      expect(size.width % 16).toBe(0);
      expect(size.height % 16).toBe(0);
      expect(Math.max(size.width, size.height)).toBeLessThanOrEqual(maxSide);
      expect(Math.max(size.width, size.height)).toBeGreaterThan(maxSide - 16);
      expect(Math.min(size.width, size.height)).toBeGreaterThanOrEqual(16);
      expect(size.width >= size.height).toBe(width >= height);
      const longSide = Math.max(size.width, size.height);
      const expectedShort = (longSide * Math.min(width, height)) / Math.max(width, height);
      expect(Math.abs(Math.min(size.width, size.height) - Math.max(16, expectedShort))).toBeLessThanOrEqual(8);
    }
  });

  it('respects EXIF orientation: a landscape JPEG tagged "rotate 90°" renders portrait', async () => {
    const rotated = await sharp(await rasterise(facadeSvg(600, 400), 'png'))
      .jpeg()
      .withMetadata({ orientation: 6 })
      .toBuffer();
    const raw = await sharp(rotated).metadata();
    expect([raw.width, raw.height, raw.orientation]).toEqual([600, 400, 6]);
    const metadata = await sharp(await renderDepthImage({ ...baseRequest, controlImage: rotated })).metadata();
    expect([metadata.width, metadata.height]).toEqual([688, 1024]);
  });
});

describe('renderDepthImage control image formats', () => {
  it.each(['jpeg', 'gif', 'webp'] as const)('accepts a %s control image', async (format) => {
    const control = await rasterise(facadeSvg(768, 512), format);
    const output = await renderDepthImage({ ...baseRequest, controlImage: control });
    expect([...output.subarray(0, 8)]).toEqual(PNG_SIGNATURE);
    expect(correlation(await edgeMap(facadePng), await edgeMap(output))).toBeGreaterThan(0.6);
  });

  it('accepts a transparent png and reads transparency as white', async () => {
    const transparent = await sharp({
      create: { width: 320, height: 200, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } },
    })
      .png()
      .toBuffer();
    const output = await renderDepthImage({ ...baseRequest, controlImage: transparent, prompt: 'night' });
    const { width, height } = await sharp(output).metadata();
    expect([width, height]).toEqual([1024, 640]);
  });

  it.each([
    ['random bytes', Buffer.from('this is not an image at all, just text')],
    ['no bytes', Buffer.alloc(0)],
  ])('rejects %s with a clear error', async (_label, bytes) => {
    const attempt = renderDepthImage({ ...baseRequest, controlImage: bytes });
    await expect(attempt).rejects.toBeInstanceOf(UnreadableControlImageError);
    await expect(attempt).rejects.toThrow(/^control image is not a readable jpeg\/png\/gif\/webp: /);
  });

  it('rejects a truncated png', async () => {
    const truncated = facadePng.subarray(0, Math.floor(facadePng.length / 3));
    await expect(renderDepthImage({ ...baseRequest, controlImage: truncated })).rejects.toThrow(
      /^control image is not a readable jpeg\/png\/gif\/webp: /,
    );
  });

  it.each([
    ['svg', async () => Buffer.from(orbsSvg(200, 100))],
    ['tiff', async () => sharp(facadePng).tiff().toBuffer()],
  ])('rejects a %s control image, which the model does not accept', async (format, make) => {
    const attempt = renderDepthImage({ ...baseRequest, controlImage: await make() });
    await expect(attempt).rejects.toThrow(`control image is not a readable jpeg/png/gif/webp: it is ${format}`);
    await expect(attempt).rejects.toMatchObject({ name: 'UnreadableControlImageError' });
  });

  it('keeps the decoder error as the cause', async () => {
    const error: unknown = await renderDepthImage({ ...baseRequest, controlImage: Buffer.from('garbage') }).catch(
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(UnreadableControlImageError);
    expect((error as Error).cause).toBeInstanceOf(Error);
  });
});

describe('renderDepthImage request checks', () => {
  it.each([
    ['a negative seed', { seed: -1 }, /seed/],
    ['a seed above 2147483647', { seed: 2_147_483_648 }, /seed/],
    ['a fractional seed', { seed: 1.5 }, /seed/],
    ['zero steps', { steps: 0 }, /steps/],
    ['negative guidance', { guidance: -1 }, /guidance/],
    ['quality above 100', { quality: 101 }, /quality/],
    ['maxSide below 16', { maxSide: 8 }, /maxSide/],
    ['maxSide above 2048', { maxSide: 4096 }, /maxSide/],
  ] as const)('refuses %s with a RangeError naming the field', async (_label, change, pattern) => {
    const attempt = renderDepthImage({ ...baseRequest, ...change });
    await expect(attempt).rejects.toBeInstanceOf(RangeError);
    await expect(attempt).rejects.toThrow(pattern);
  });
});
