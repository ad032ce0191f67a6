import { describe, expect, it } from 'vitest';
import {
  contentTypeOfImageType,
  contentTypeOfOutputFormat,
  extensionOfImageType,
  extensionOfOutputFormat,
  IMAGE_TYPES,
  imageTypeOfOutputFormat,
  MIN_SNIFF_BYTES,
  OUTPUT_FORMATS,
  sniffImageType,
} from '../../src/core/image-type.js';

function bytes(...parts: (string | number[])[]): Uint8Array {
  const all: number[] = [];
  for (const part of parts) {
    if (typeof part === 'string') all.push(...Array.from(part, (c) => c.charCodeAt(0)));
    else all.push(...part);
  }
  return new Uint8Array(all);
}

const jpeg = bytes([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10], 'JFIF', [0, 1, 1]);
const png = bytes([0x89], 'PNG', [0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d], 'IHDR');
const gif87 = bytes('GIF87a', [1, 0, 1, 0, 0, 0]);
const gif89 = bytes('GIF89a', [1, 0, 1, 0, 0, 0]);
const webp = bytes('RIFF', [0x24, 0, 0, 0], 'WEBPVP8 ');

describe('sniffImageType', () => {
  it.each([
    ['jpeg', jpeg],
    ['png', png],
    ['gif', gif87],
    ['gif', gif89],
    ['webp', webp],
  ] as const)('recognises %s by its magic bytes', (type, data) => {
    expect(sniffImageType(data)).toBe(type);
  });

  it('recognises each type from its first MIN_SNIFF_BYTES bytes', () => {
    expect(MIN_SNIFF_BYTES).toBe(12);
    for (const data of [jpeg, png, gif89, webp]) {
      expect(sniffImageType(data.subarray(0, MIN_SNIFF_BYTES))).toBeDefined();
    }
  });

  it('needs all 12 bytes for WebP', () => {
    expect(sniffImageType(webp.subarray(0, 11))).toBeUndefined();
    expect(sniffImageType(webp.subarray(0, 12))).toBe('webp');
  });

  it('refuses RIFF containers that are not WebP (WAV, AVI)', () => {
    expect(sniffImageType(bytes('RIFF', [0x24, 0, 0, 0], 'WAVEfmt '))).toBeUndefined();
    expect(sniffImageType(bytes('RIFF', [0x24, 0, 0, 0], 'AVI LIST'))).toBeUndefined();
  });

  it('refuses truncated signatures, near misses and other formats', () => {
    expect(sniffImageType(new Uint8Array())).toBeUndefined();
    expect(sniffImageType(bytes([0xff, 0xd8]))).toBeUndefined();
    expect(sniffImageType(png.subarray(0, 7))).toBeUndefined();
    expect(sniffImageType(bytes([0x89], 'PNG', [0x0d, 0x0a, 0x1a, 0x0b, 0, 0, 0, 0]))).toBeUndefined();
    expect(sniffImageType(bytes('GIF88a', [0, 0, 0, 0, 0, 0]))).toBeUndefined();
    expect(sniffImageType(bytes('%PDF-1.7', [0, 0, 0, 0]))).toBeUndefined();
    expect(sniffImageType(bytes('<svg xmlns="http://www.w3.org/2000/svg">'))).toBeUndefined();
    expect(sniffImageType(bytes('BM', [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]))).toBeUndefined();
  });

  it('reads from the start of a view into a larger buffer', () => {
    const buffer = new Uint8Array([0, 0, ...png]);
    expect(sniffImageType(buffer.subarray(2))).toBe('png');
    expect(sniffImageType(buffer)).toBeUndefined();
  });
});

describe('content types and extensions of image types', () => {
  it('maps every image type to its MIME type', () => {
    expect(IMAGE_TYPES.map(contentTypeOfImageType)).toEqual(['image/jpeg', 'image/png', 'image/gif', 'image/webp']);
  });

  it('names JPEG files .jpg', () => {
    expect(IMAGE_TYPES.map(extensionOfImageType)).toEqual(['jpg', 'png', 'gif', 'webp']);
  });
});

describe('output formats', () => {
  it.each([
    ['jpg', 'image/jpeg', 'jpeg'],
    ['jpeg', 'image/jpeg', 'jpeg'],
    ['png', 'image/png', 'png'],
    ['webp', 'image/webp', 'webp'],
    ['gif', 'image/gif', 'gif'],
  ] as const)('%s → %s', (format, contentType, imageType) => {
    expect(contentTypeOfOutputFormat(format)).toBe(contentType);
    expect(imageTypeOfOutputFormat(format)).toBe(imageType);
    expect(extensionOfOutputFormat(format)).toBe(format);
  });

  it("keeps the format's own spelling as the extension: jpg stays jpg", () => {
    expect(extensionOfOutputFormat('jpg')).toBe('jpg');
    expect(extensionOfOutputFormat('jpeg')).toBe('jpeg');
  });

  it.each(['tiff', 'JPG', '', 'svg', 'constructor', 'toString'])(
    'refuses the unknown format %j, listing the known ones',
    (format) => {
      const expected = /Unknown output format .*"jpg", "jpeg", "png", "webp", "gif"/;
      expect(() => contentTypeOfOutputFormat(format)).toThrow(expected);
      expect(() => extensionOfOutputFormat(format)).toThrow(expected);
      expect(() => imageTypeOfOutputFormat(format)).toThrow(RangeError);
    },
  );

  it('lists the formats it knows', () => {
    expect(OUTPUT_FORMATS).toEqual(['jpg', 'jpeg', 'png', 'webp', 'gif']);
  });
});
