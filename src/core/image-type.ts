/**
 * Image types by content, not by name: a control image called `photo.png` may hold a JPEG, and the model accepts only
 * JPEG, PNG, GIF and WebP. Also the mapping from a model's `output_format` value to the Content-Type and file extension
 * of the stored output, so the key's extension and the object's Content-Type can never disagree.
 *
 * Pure: no I/O.
 */

export type ImageType = 'jpeg' | 'png' | 'gif' | 'webp';

export const IMAGE_TYPES: readonly ImageType[] = ['jpeg', 'png', 'gif', 'webp'];

/** WebP needs the most bytes to recognise: "RIFF", four bytes of size, then "WEBP". Read at least this many. */
export const MIN_SNIFF_BYTES = 12;

function startsWith(bytes: Uint8Array, signature: readonly number[], offset = 0): boolean {
  if (bytes.length < offset + signature.length) return false;
  return signature.every((byte, index) => bytes[offset + index] === byte);
}

function ascii(text: string): number[] {
  return Array.from(text, (character) => character.charCodeAt(0));
}

const jpegSignature = [0xff, 0xd8, 0xff];
const pngSignature = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const gif87aSignature = ascii('GIF87a');
const gif89aSignature = ascii('GIF89a');
const riffSignature = ascii('RIFF');
const webpSignature = ascii('WEBP');

/** The image type the first bytes announce, or `undefined` when they announce none of the four (or are too few). */
export function sniffImageType(bytes: Uint8Array): ImageType | undefined {
  if (startsWith(bytes, jpegSignature)) return 'jpeg';
  if (startsWith(bytes, pngSignature)) return 'png';
  if (startsWith(bytes, gif87aSignature) || startsWith(bytes, gif89aSignature)) return 'gif';
  // RIFF is a container for audio and video too; only the WEBP form type makes it an image.
  if (startsWith(bytes, riffSignature) && startsWith(bytes, webpSignature, 8)) return 'webp';
  return undefined;
}

const contentTypes: Readonly<Record<ImageType, string>> = {
  jpeg: 'image/jpeg',
  png: 'image/png',
  gif: 'image/gif',
  webp: 'image/webp',
};

export function contentTypeOfImageType(type: ImageType): string {
  return contentTypes[type];
}

/** The extension a file of this type gets when depthq names it: `jpg`, the spelling Replicate's formats use. */
export function extensionOfImageType(type: ImageType): string {
  return type === 'jpeg' ? 'jpg' : type;
}

/**
 * Output format values models take (`output_format`), lowercase exactly as Replicate spells them. Both JPEG spellings
 * exist because flux models say `jpg` while other models say `jpeg`.
 */
const outputFormats: Readonly<Record<string, ImageType>> = {
  jpg: 'jpeg',
  jpeg: 'jpeg',
  png: 'png',
  webp: 'webp',
  gif: 'gif',
};

export const OUTPUT_FORMATS: readonly string[] = Object.keys(outputFormats);

/** The image type a model's `output_format` value produces; throws for a format depthq cannot store correctly. */
export function imageTypeOfOutputFormat(format: string): ImageType {
  const type = Object.hasOwn(outputFormats, format) ? outputFormats[format] : undefined;
  if (type === undefined) {
    throw new RangeError(
      `Unknown output format ${JSON.stringify(format)}: depthq knows ${OUTPUT_FORMATS.map((f) => JSON.stringify(f)).join(', ')}`,
    );
  }
  return type;
}

/** The Content-Type of an output in this format: `jpg` → `image/jpeg`. */
export function contentTypeOfOutputFormat(format: string): string {
  return contentTypeOfImageType(imageTypeOfOutputFormat(format));
}

/** The file extension of an output in this format: the format's own spelling, so `jpg` stays `jpg`, `jpeg` `jpeg`. */
export function extensionOfOutputFormat(format: string): string {
  imageTypeOfOutputFormat(format);
  return format;
}
