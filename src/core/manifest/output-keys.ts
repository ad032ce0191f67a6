/**
 * Output keys as a row writes them: the placeholders of a key template, and whether a key's extension names another
 * image type than the data it holds.
 *
 * Pure: no I/O, no clock, no environment.
 */
import { imageTypeOfOutputFormat } from '../image-type.js';

const PLACEHOLDER = /\{([^{}]+)\}/g;

/** The `{name}` placeholders of an output key template, in order. */
export function placeholdersOf(template: string): string[] {
  return [...template.matchAll(PLACEHOLDER)].map((match) => match[1] ?? '');
}

/** The file extension of a key's last segment, lowercased, if it has one. */
export function extensionOf(key: string): string | undefined {
  const name = key.slice(key.lastIndexOf('/') + 1);
  const dot = name.lastIndexOf('.');
  return dot > 0 ? name.slice(dot + 1).toLowerCase() : undefined;
}

export function sameImageType(a: string, b: string): boolean {
  try {
    return imageTypeOfOutputFormat(a) === imageTypeOfOutputFormat(b);
  } catch {
    return false;
  }
}

export function isImageExtension(extension: string): boolean {
  try {
    imageTypeOfOutputFormat(extension);
    return true;
  } catch {
    return false;
  }
}
