import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { examineImage, type ImageVerdict, type ImageWindow } from '../../src/core/image-structure.js';
import type { ImageType } from '../../src/core/image-type.js';

function whole(bytes: Uint8Array): ImageWindow[] {
  return [{ offset: 0, bytes }];
}

function examineWhole(type: ImageType, bytes: Uint8Array): ImageVerdict {
  return examineImage(type, bytes.length, whole(bytes));
}

function u32be(value: number): Buffer {
  const buffer = Buffer.alloc(4);
  buffer.writeUInt32BE(value);
  return buffer;
}

/** A PNG chunk; the CRC is not checked by the examination, so it is left zero. */
function pngChunk(type: string, data: Buffer): Buffer {
  return Buffer.concat([u32be(data.length), Buffer.from(type, 'latin1'), data, Buffer.alloc(4)]);
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const IEND = Buffer.from([0, 0, 0, 0, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82]);

function pngHeader(width: number, height: number, extra: Buffer[] = []): Buffer {
  const ihdr = Buffer.concat([u32be(width), u32be(height), Buffer.from([8, 2, 0, 0, 0])]);
  return Buffer.concat([PNG_SIGNATURE, pngChunk('IHDR', ihdr), ...extra, pngChunk('IDAT', Buffer.alloc(8)), IEND]);
}

const noise = (width: number, height: number) => {
  const pixels = Buffer.alloc(width * height * 3);
  for (let index = 0; index < pixels.length; index++) pixels[index] = (index * 7919) % 251;
  return sharp(pixels, { raw: { width, height, channels: 3 } });
};

describe('examineImage', () => {
  it('reads a JPEG: size, progressive, CMYK', async () => {
    const baseline = await noise(40, 30).jpeg().toBuffer();
    expect(examineWhole('jpeg', baseline)).toEqual({
      kind: 'facts',
      facts: { width: 40, height: 30, frames: 1, animated: false, progressive: false, components: 3 },
    });
    const progressive = await noise(40, 30).jpeg({ progressive: true }).toBuffer();
    expect(examineWhole('jpeg', progressive)).toMatchObject({ kind: 'facts', facts: { progressive: true } });
    const cmyk = await noise(40, 30).toColourspace('cmyk').jpeg().toBuffer();
    expect(examineWhole('jpeg', cmyk)).toMatchObject({ kind: 'facts', facts: { components: 4 } });
  });

  it('hops over large metadata to the frame header, asking for the bytes it needs', async () => {
    const jpeg = await noise(40, 30).jpeg().toBuffer();
    // A 40 KiB APP1 segment after SOI pushes the frame header out of a 16 KiB head.
    const app1 = Buffer.concat([Buffer.from([0xff, 0xe1, 0xa0, 0x02]), Buffer.alloc(0xa000)]);
    const big = Buffer.concat([jpeg.subarray(0, 2), app1, jpeg.subarray(2)]);
    const head = { offset: 0, bytes: big.subarray(0, 16 * 1024) };
    const tail = { offset: big.length - 32, bytes: big.subarray(big.length - 32) };
    const first = examineImage('jpeg', big.length, [head, tail]);
    expect(first).toEqual({ kind: 'need', offset: 2 + app1.length, length: 16 * 1024 });
    const hop = { offset: 2 + app1.length, bytes: big.subarray(2 + app1.length, 2 + app1.length + 16 * 1024) };
    expect(examineImage('jpeg', big.length, [head, tail, hop])).toMatchObject({
      kind: 'facts',
      facts: { width: 40, height: 30 },
    });
  });

  it('takes a JPEG padded with zeros after its end marker, refuses one cut short or with data appended', async () => {
    const jpeg = await noise(40, 30).jpeg().toBuffer();
    expect(examineWhole('jpeg', Buffer.concat([jpeg, Buffer.alloc(16)])).kind).toBe('facts');
    const cut = examineWhole('jpeg', jpeg.subarray(0, jpeg.length - 100));
    expect(cut).toMatchObject({ kind: 'problem', problem: expect.stringMatching(/^is cut short: a JPEG ends with/) });
    const appended = examineWhole('jpeg', Buffer.concat([jpeg, Buffer.from('ftypmp42 video follows')]));
    expect(appended.kind).toBe('problem');
    const headerOnly = examineWhole('jpeg', jpeg.subarray(0, 20));
    expect(headerOnly).toMatchObject({
      kind: 'problem',
      problem: expect.stringMatching(/^is cut short: the file ends/),
    });
  });

  it('refuses a 20,000 × 20,000 PNG from its header alone', () => {
    expect(examineWhole('png', pngHeader(20_000, 20_000))).toEqual({
      kind: 'problem',
      problem:
        "is 20,000 × 20,000 px, over depthq's limit of 16,384 px a side and 40 megapixels (the model renders at about 1 megapixel): downscale it, e.g. to 2,048 px on its long side",
    });
    // Under the side limit but over 40 megapixels.
    expect(examineWhole('png', pngHeader(8_000, 6_000)).kind).toBe('problem');
    expect(examineWhole('png', pngHeader(6_000, 4_000)).kind).toBe('facts');
    expect(examineWhole('png', pngHeader(0, 10))).toMatchObject({
      kind: 'problem',
      problem: 'has no pixels (0 × 10 px): export it again',
    });
  });

  it('refuses an animated PNG, counting its frames', () => {
    const actl = pngChunk('acTL', Buffer.concat([u32be(4), u32be(0)]));
    expect(examineWhole('png', pngHeader(64, 64, [actl]))).toMatchObject({
      kind: 'problem',
      problem: expect.stringMatching(/^is an animated PNG \(4 frames\): the model would use only its first frame/),
    });
  });

  it('reads a WebP: animated, cut short, and its size', async () => {
    const still = await noise(40, 30).webp().toBuffer();
    expect(examineWhole('webp', still)).toMatchObject({ kind: 'facts', facts: { width: 40, height: 30 } });
    const lossless = await noise(40, 30).webp({ lossless: true }).toBuffer();
    expect(examineWhole('webp', lossless)).toMatchObject({ kind: 'facts', facts: { width: 40, height: 30 } });
    const cut = still.subarray(0, still.length - 10);
    expect(examineWhole('webp', cut)).toEqual({
      kind: 'problem',
      problem: `is cut short: its header says ${still.length.toLocaleString('en-US')} bytes and the object has ${cut.length.toLocaleString('en-US')}, so an upload or an export stopped early; upload it again`,
    });
    const frame = (colour: string) =>
      sharp({ create: { width: 16, height: 16, channels: 3, background: colour } })
        .png()
        .toBuffer();
    const animated = await sharp([await frame('#f00'), await frame('#0f0')], { join: { animated: true } })
      .webp()
      .toBuffer();
    expect(examineWhole('webp', animated)).toMatchObject({
      kind: 'problem',
      problem: expect.stringMatching(/^is an animated WebP: /),
    });
  });

  it('walks a GIF: one frame is fine, a missing trailer is cut short', async () => {
    const gif = await noise(20, 10).gif().toBuffer();
    expect(examineWhole('gif', gif)).toMatchObject({ kind: 'facts', facts: { width: 20, height: 10, frames: 1 } });
    expect(examineWhole('gif', gif.subarray(0, gif.length - 1))).toMatchObject({
      kind: 'problem',
      problem: expect.stringMatching(/^is cut short/),
    });
  });
});
