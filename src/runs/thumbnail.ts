/** The thumbnail of the contact sheet and the dashboard's gallery: one size, one encoding, EXIF rotation applied. */
import sharp from 'sharp';

/** The longer side of a thumbnail, in pixels; a smaller image is not enlarged. */
export const THUMBNAIL_SIDE = 320;

export function thumbnailJpeg(bytes: Uint8Array): Promise<Buffer> {
  return sharp(bytes)
    .rotate()
    .resize({ width: THUMBNAIL_SIDE, height: THUMBNAIL_SIDE, fit: 'inside', withoutEnlargement: true })
    .jpeg({ quality: 82 })
    .toBuffer();
}
