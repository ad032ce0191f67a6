import { createHash } from 'node:crypto';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { type ControlImage, makeControlImages } from '../../src/local/control-images/index.js';

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

let defaults: ControlImage[];

beforeAll(async () => {
  defaults = await makeControlImages();
});

describe('makeControlImages with defaults', () => {
  it('makes eight images with unique, file-safe names', () => {
    expect(defaults).toHaveLength(8);
    const names = defaults.map((image) => image.name);
    expect(new Set(names).size).toBe(8);
    for (const name of names) expect(name).toMatch(/^[a-z]+(-[a-z]+)*-\d{2}$/);
    expect(names).toContain('facade-brick-01');
  });

  it('covers both exteriors and interiors', () => {
    const names = defaults.map((image) => image.name);
    expect(names.filter((name) => name.startsWith('interior-')).length).toBeGreaterThanOrEqual(3);
    expect(names.filter((name) => !name.startsWith('interior-')).length).toBeGreaterThanOrEqual(4);
  });

  it('describes every image', () => {
    for (const image of defaults) expect(image.description.length).toBeGreaterThan(20);
  });

  it('makes 768×512 opaque PNGs that sharp decodes', async () => {
    for (const image of defaults) {
      expect(image.contentType).toBe('image/png');
      expect([...image.bytes.subarray(0, 8)]).toEqual(PNG_SIGNATURE);
      const metadata = await sharp(image.bytes).metadata();
      expect([metadata.format, metadata.width, metadata.height]).toEqual(['png', 768, 512]);
      expect(metadata.hasAlpha).toBe(false);
    }
  });

  it('makes images with distinct bytes', () => {
    expect(new Set(defaults.map((image) => sha256(image.bytes))).size).toBe(defaults.length);
  });

  it('draws real scenes, not flat fills: wide tonal range and plenty of edges', async () => {
    for (const image of defaults) {
      const stats = await sharp(image.bytes).greyscale().stats();
      const grey = stats.channels[0];
      expect(grey?.stdev, image.name).toBeGreaterThan(25);
      expect((grey?.max ?? 0) - (grey?.min ?? 0), image.name).toBeGreaterThan(150);
      // Sharpness is sharp's own estimate of fine detail (Laplacian-based); a blank or blurry image scores near zero.
      expect(stats.sharpness, image.name).toBeGreaterThan(1);
    }
  });

  it('draws visibly different scenes, not one scene recoloured', async () => {
    const thumbnails = await Promise.all(
      defaults.map((image) => sharp(image.bytes).resize(48, 32, { fit: 'fill' }).greyscale().raw().toBuffer()),
    );
    for (let a = 0; a < thumbnails.length; a++) {
      for (let b = a + 1; b < thumbnails.length; b++) {
        const first = thumbnails[a] ?? Buffer.alloc(0);
        const second = thumbnails[b] ?? Buffer.alloc(0);
        let difference = 0;
        for (let i = 0; i < first.length; i++) difference += Math.abs((first[i] ?? 0) - (second[i] ?? 0));
        expect(difference / first.length, `${defaults[a]?.name} vs ${defaults[b]?.name}`).toBeGreaterThan(12);
      }
    }
  });
});

describe('makeControlImages determinism', () => {
  it('gives byte-identical images for the same options', async () => {
    const again = await makeControlImages();
    expect(again.map((image) => image.name)).toEqual(defaults.map((image) => image.name));
    for (const [index, image] of again.entries()) {
      expect(image.bytes.equals(defaults[index]?.bytes ?? Buffer.alloc(0)), image.name).toBe(true);
    }
  });

  it('gives a prefix of the same list for a smaller count', async () => {
    const three = await makeControlImages({ count: 3 });
    expect(three.map((image) => image.name)).toEqual(defaults.slice(0, 3).map((image) => image.name));
    for (const [index, image] of three.entries()) {
      expect(image.bytes.equals(defaults[index]?.bytes ?? Buffer.alloc(0))).toBe(true);
    }
  });
});

describe('makeControlImages options', () => {
  it('cycles through the scene kinds with new variants beyond eight', async () => {
    const ten = await makeControlImages({ count: 10, width: 192, height: 128 });
    const names = ten.map((image) => image.name);
    expect(new Set(names).size).toBe(10);
    expect(names[8]).toBe(names[0]?.replace(/-01$/, '-02'));
    expect(names[9]).toBe(names[1]?.replace(/-01$/, '-02'));
    expect(ten[8]?.bytes.equals(ten[0]?.bytes ?? Buffer.alloc(0))).toBe(false);
    expect(new Set(ten.map((image) => sha256(image.bytes))).size).toBe(10);
  });

  it('makes JPEGs of the requested size', async () => {
    const images = await makeControlImages({ count: 3, width: 640, height: 480, format: 'jpeg' });
    expect(images).toHaveLength(3);
    for (const image of images) {
      expect(image.contentType).toBe('image/jpeg');
      expect([...image.bytes.subarray(0, 3)]).toEqual([0xff, 0xd8, 0xff]);
      const metadata = await sharp(image.bytes).metadata();
      expect([metadata.format, metadata.width, metadata.height]).toEqual(['jpeg', 640, 480]);
    }
  });

  it('draws portrait images too', async () => {
    const images = await makeControlImages({ count: 8, width: 256, height: 384 });
    for (const image of images) {
      const metadata = await sharp(image.bytes).metadata();
      expect([metadata.width, metadata.height]).toEqual([256, 384]);
      expect((await sharp(image.bytes).greyscale().stats()).channels[0]?.stdev, image.name).toBeGreaterThan(20);
    }
  });

  it('returns no images for count 0', async () => {
    expect(await makeControlImages({ count: 0 })).toEqual([]);
  });

  it.each([
    ['a negative count', { count: -1 }, /count/],
    ['a fractional count', { count: 1.5 }, /count/],
    ['a huge count', { count: 1_000_000 }, /count/],
    ['a tiny width', { width: 10 }, /width/],
    ['a huge height', { height: 100_000 }, /height/],
  ] as const)('refuses %s with a RangeError naming the option', async (_label, options, pattern) => {
    const attempt = makeControlImages(options);
    await expect(attempt).rejects.toBeInstanceOf(RangeError);
    await expect(attempt).rejects.toThrow(pattern);
  });
});
