/**
 * What a control image's bytes say about it beyond its type: its size in pixels, whether it is animated, whether it is
 * whole. Read from windows of the file (its first bytes, its last bytes, and wherever the walk over its segments leads),
 * so preflight can refuse a truncated JPEG, an animated GIF or a 20,000-pixel image at ingest without downloading it.
 * The rules and why: docs/input-rules.md.
 *
 * The caller fetches windows; `examineImage` says either what it found, what is wrong, or which bytes it needs next.
 *
 * Pure: no I/O.
 */
import type { ImageType } from './image-type.js';

/** Longest side depthq takes: FLUX renders at about one megapixel, so a longer strip only costs transfer time. */
export const MAX_CONTROL_IMAGE_SIDE = 16_384;
/** Largest image depthq takes, in pixels: the decoder limit of the simulator (src/sim) and far above any camera. */
export const MAX_CONTROL_IMAGE_PIXELS = 40_000_000;
/** Bytes read from an image's end to check that it ends where its format says it must. */
export const TAIL_BYTES = 32;

/** Some bytes of the file, starting at `offset`. */
export interface ImageWindow {
  readonly offset: number;
  readonly bytes: Uint8Array;
}

export interface ImageFacts {
  readonly width: number;
  readonly height: number;
  /** Frames of an animation; 1 for a still image. */
  readonly frames: number;
  /** An animation whose frame count is not in its header (an animated WebP). */
  readonly animated: boolean;
  /** JPEG only: a progressive (multi-scan) JPEG, and how many colour components (4: CMYK or YCCK). */
  readonly progressive?: boolean;
  readonly components?: number;
}

export type ImageVerdict =
  | { readonly kind: 'facts'; readonly facts: ImageFacts }
  /** What is wrong, said after "control image s3://…": e.g. `is cut short: …`. */
  | { readonly kind: 'problem'; readonly problem: string }
  /** Read `length` bytes at `offset` (clipped to the file's end) and ask again with them added. */
  | { readonly kind: 'need'; readonly offset: number; readonly length: number };

/** Window sizes that keep the number of reads small: a JPEG's or PNG's metadata hops, a GIF's frames. */
const SEGMENT_WINDOW = 16 * 1024;
const GIF_WINDOW = 1024 * 1024;

/** Thrown inside a walk when a byte is not in any window; turned into a `need` verdict. */
class NeedBytes {
  constructor(
    readonly offset: number,
    readonly length: number,
  ) {}
}

/** A problem found during a walk. */
class Broken {
  constructor(readonly problem: string) {}
}

class Bytes {
  constructor(
    private readonly windows: readonly ImageWindow[],
    readonly size: number,
    private readonly window: number,
  ) {}

  byte(at: number): number {
    if (at >= this.size) throw new Broken(cutShort);
    for (const { offset, bytes } of this.windows) {
      if (at >= offset && at < offset + bytes.length) return bytes[at - offset] ?? 0;
    }
    throw new NeedBytes(at, this.window);
  }

  u16be(at: number): number {
    return this.byte(at) * 256 + this.byte(at + 1);
  }

  u16le(at: number): number {
    return this.byte(at) + this.byte(at + 1) * 256;
  }

  u24le(at: number): number {
    return this.u16le(at) + this.byte(at + 2) * 65_536;
  }

  u32be(at: number): number {
    return this.u16be(at) * 65_536 + this.u16be(at + 2);
  }

  u32le(at: number): number {
    return this.u16le(at) + this.u16le(at + 2) * 65_536;
  }

  ascii(at: number, length: number): string {
    let text = '';
    for (let index = 0; index < length; index++) text += String.fromCharCode(this.byte(at + index));
    return text;
  }

  /** The file's last bytes, without trailing zero padding some tools write after the end marker. */
  tail(): number[] {
    const start = Math.max(0, this.size - TAIL_BYTES);
    const tail: number[] = [];
    for (let at = start; at < this.size; at++) tail.push(this.byte(at));
    while (tail.length > 0 && tail[tail.length - 1] === 0) tail.pop();
    return tail;
  }
}

const cutShort =
  'is cut short: the file ends before the image does, so an upload or an export stopped early; upload it again';

function endsWith(tail: readonly number[], ending: readonly number[]): boolean {
  if (tail.length < ending.length) return false;
  return ending.every((byte, index) => tail[tail.length - ending.length + index] === byte);
}

// ---------------------------------------------------------------------------------------------------------------------
// JPEG: markers up to the frame header (SOFn); the file must end with the end-of-image marker FF D9.

function jpegFacts(bytes: Bytes): ImageFacts {
  let at = 2;
  for (;;) {
    if (bytes.byte(at) !== 0xff) throw new Broken('is not a valid JPEG: its segments are damaged; export it again');
    let marker = bytes.byte(at + 1);
    while (marker === 0xff) {
      at++;
      marker = bytes.byte(at + 1);
    }
    at += 2;
    // Standalone markers carry no length.
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) continue;
    if (marker === 0xd9 || marker === 0xda) {
      throw new Broken('is not a valid JPEG: it has no frame header before its image data; export it again');
    }
    const length = bytes.u16be(at);
    const isFrame = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
    if (isFrame) {
      return {
        height: bytes.u16be(at + 3),
        width: bytes.u16be(at + 5),
        frames: 1,
        animated: false,
        progressive: marker === 0xc2 || marker === 0xc6 || marker === 0xca || marker === 0xce,
        components: bytes.byte(at + 7),
      };
    }
    at += length;
  }
}

function jpegEnding(bytes: Bytes): string | undefined {
  if (endsWith(bytes.tail(), [0xff, 0xd9])) return undefined;
  return (
    'is cut short: a JPEG ends with an end-of-image marker (FF D9) and this one does not, so an upload or an export ' +
    'stopped early (or other data was appended to it); upload it again'
  );
}

// ---------------------------------------------------------------------------------------------------------------------
// PNG: IHDR, then chunks up to the first IDAT (an animated PNG's acTL comes before it); it must end with IEND.

const pngEnd = [0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82];

function pngFacts(bytes: Bytes): ImageFacts {
  if (bytes.ascii(12, 4) !== 'IHDR') throw new Broken('is not a valid PNG: it does not start with a header chunk');
  const width = bytes.u32be(16);
  const height = bytes.u32be(20);
  let frames = 1;
  let at = 33;
  for (;;) {
    const length = bytes.u32be(at);
    const type = bytes.ascii(at + 4, 4);
    if (type === 'IDAT' || type === 'IEND') break;
    if (type === 'acTL') frames = bytes.u32be(at + 8);
    at += 12 + length;
  }
  return { width, height, frames, animated: frames > 1 };
}

function pngEnding(bytes: Bytes): string | undefined {
  if (endsWith(bytes.tail(), pngEnd)) return undefined;
  return (
    'is cut short: a PNG ends with an IEND chunk and this one does not, so an upload or an export stopped early ' +
    '(or other data was appended to it); upload it again'
  );
}

// ---------------------------------------------------------------------------------------------------------------------
// GIF: every block is walked (frames are counted exactly); it must end with the trailer 0x3B.

function skipSubBlocks(bytes: Bytes, from: number): number {
  let at = from;
  for (let size = bytes.byte(at); size !== 0; size = bytes.byte(at)) at += size + 1;
  return at + 1;
}

function gifFacts(bytes: Bytes): ImageFacts {
  const width = bytes.u16le(6);
  const height = bytes.u16le(8);
  const flags = bytes.byte(10);
  let at = 13 + ((flags & 0x80) === 0 ? 0 : 3 * 2 ** ((flags & 0x07) + 1));
  let frames = 0;
  for (;;) {
    const block = bytes.byte(at);
    if (block === 0x3b) break;
    if (block === 0x21) at = skipSubBlocks(bytes, at + 2);
    else if (block === 0x2c) {
      frames++;
      const local = bytes.byte(at + 9);
      at += 10 + ((local & 0x80) === 0 ? 0 : 3 * 2 ** ((local & 0x07) + 1));
      at = skipSubBlocks(bytes, at + 1);
    } else throw new Broken('is not a valid GIF: its blocks are damaged; export it again');
  }
  if (frames === 0) throw new Broken('is a GIF without any image in it; export it again');
  return { width, height, frames, animated: frames > 1 };
}

// ---------------------------------------------------------------------------------------------------------------------
// WebP: the RIFF size says how long the file is; the first chunk (VP8, VP8L or VP8X) gives the size and animation.

function webpFacts(bytes: Bytes): ImageFacts {
  const declared = bytes.u32le(4) + 8;
  if (declared > bytes.size) {
    throw new Broken(
      `is cut short: its header says ${declared.toLocaleString('en-US')} bytes and the object has ` +
        `${bytes.size.toLocaleString('en-US')}, so an upload or an export stopped early; upload it again`,
    );
  }
  const chunk = bytes.ascii(12, 4);
  if (chunk === 'VP8X') {
    const animated = (bytes.byte(20) & 0x02) !== 0;
    return { width: bytes.u24le(24) + 1, height: bytes.u24le(27) + 1, frames: 1, animated };
  }
  if (chunk === 'VP8 ') {
    return { width: bytes.u16le(26) & 0x3fff, height: bytes.u16le(28) & 0x3fff, frames: 1, animated: false };
  }
  if (chunk === 'VP8L') {
    const bits = bytes.u32le(21);
    return { width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1, frames: 1, animated: false };
  }
  throw new Broken(`is not a valid WebP: its first chunk is ${JSON.stringify(chunk)}; export it again`);
}

// ---------------------------------------------------------------------------------------------------------------------

const typeNames: Readonly<Record<ImageType, string>> = { jpeg: 'JPEG', png: 'PNG', gif: 'GIF', webp: 'WebP' };

/** Why an image with these facts cannot be a control image, or undefined when it can. */
export function unusableFactsProblem(type: ImageType, facts: ImageFacts): string | undefined {
  const name = typeNames[type];
  if (facts.animated) {
    const frames = facts.frames > 1 ? ` (${facts.frames.toLocaleString('en-US')} frames)` : '';
    return (
      `is an animated ${name}${frames}: the model would use only its first frame; ` +
      'export the frame you want as a PNG or JPEG'
    );
  }
  const size = `${facts.width.toLocaleString('en-US')} × ${facts.height.toLocaleString('en-US')} px`;
  if (facts.width === 0 || facts.height === 0) return `has no pixels (${size}): export it again`;
  if (
    Math.max(facts.width, facts.height) > MAX_CONTROL_IMAGE_SIDE ||
    facts.width * facts.height > MAX_CONTROL_IMAGE_PIXELS
  ) {
    return (
      `is ${size}, over depthq's limit of ${MAX_CONTROL_IMAGE_SIDE.toLocaleString('en-US')} px a side and ` +
      `${MAX_CONTROL_IMAGE_PIXELS / 1_000_000} megapixels (the model renders at about 1 megapixel): ` +
      'downscale it, e.g. to 2,048 px on its long side'
    );
  }
  return undefined;
}

/**
 * Examines an image of `type` and `size` bytes from the windows read so far (at least the first bytes): its facts, a
 * problem (cut short, animated, too large, damaged), or the bytes it needs next.
 */
export function examineImage(type: ImageType, size: number, windows: readonly ImageWindow[]): ImageVerdict {
  const bytes = new Bytes(windows, size, type === 'gif' ? GIF_WINDOW : SEGMENT_WINDOW);
  try {
    let facts: ImageFacts;
    let ending: string | undefined;
    if (type === 'jpeg') {
      facts = jpegFacts(bytes);
      ending = jpegEnding(bytes);
    } else if (type === 'png') {
      facts = pngFacts(bytes);
      ending = pngEnding(bytes);
    } else if (type === 'gif') facts = gifFacts(bytes);
    else facts = webpFacts(bytes);
    const problem = ending ?? unusableFactsProblem(type, facts);
    return problem === undefined ? { kind: 'facts', facts } : { kind: 'problem', problem };
  } catch (thrown) {
    if (thrown instanceof NeedBytes) return { kind: 'need', offset: thrown.offset, length: thrown.length };
    if (thrown instanceof Broken) return { kind: 'problem', problem: thrown.problem };
    throw thrown;
  }
}
