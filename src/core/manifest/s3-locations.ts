/**
 * `s3://` locations: a control image as a manifest writes it (a key in the default bucket, or `s3://bucket/key`), read
 * or refused with what to write instead.
 *
 * Pure: no I/O, no clock, no environment.
 */
import { objectKeyProblem } from '../keys.js';
import { bucketNameProblem } from '../render-job.js';

export interface S3Location {
  readonly bucket: string;
  readonly key: string;
}

export type ParsedLocation =
  | { readonly ok: true; readonly location: S3Location }
  | { readonly ok: false; readonly message: string };

/**
 * A control image as a manifest writes it: a key in the default bucket (`S3_BUCKET`) or `s3://bucket/key`. Keys are
 * taken literally (S3 keys are not URL-encoded). Web URLs are refused on purpose: depthq presigns control images itself
 * when a prediction starts, so a URL in a manifest would be a credential that expires in the queue.
 */
export function parseS3Location(text: string, defaultBucket: string | undefined): ParsedLocation {
  const value = text.trim();
  const example = defaultBucket === undefined ? 's3://bucket/controls/shot-1.png' : 'controls/shot-1.png';
  if (value === '') {
    return { ok: false, message: `control_image is empty: write the image's S3 key, e.g. ${example}` };
  }
  if (/^s3:\/\//i.test(value)) {
    const rest = value.slice(5);
    const slash = rest.indexOf('/');
    const bucket = slash === -1 ? rest : rest.slice(0, slash);
    const key = slash === -1 ? '' : rest.slice(slash + 1);
    if (bucket === '') return { ok: false, message: `"${value}" names no bucket: write s3://bucket/key` };
    const bucketProblem = bucketNameProblem(bucket);
    if (bucketProblem !== undefined) {
      return { ok: false, message: `"${value}": "${bucket}" is not an S3 bucket name, which ${bucketProblem}` };
    }
    if (key === '') return { ok: false, message: `"${value}" names no key: write s3://${bucket}/path/to/image.png` };
    const keyProblem = objectKeyProblem(key);
    if (keyProblem !== undefined) return { ok: false, message: `"${value}": the key is not usable: ${keyProblem}` };
    return { ok: true, location: { bucket, key } };
  }
  if (/^s3:/i.test(value)) {
    return { ok: false, message: `"${value}" is not an s3:// URI: write s3://bucket/key (two slashes)` };
  }
  if (/^https?:\/\//i.test(value)) {
    return {
      ok: false,
      message:
        `"${value}" is a web URL: control_image must be an S3 object (a key, or s3://bucket/key), ` +
        'which depthq presigns itself when the prediction starts',
    };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) {
    return { ok: false, message: `"${value}" is not an S3 location: write a key, or s3://bucket/key` };
  }
  if (defaultBucket === undefined) {
    return {
      ok: false,
      message: `"${value}" is a key, but S3_BUCKET is not set: write s3://bucket/${value.replace(/^\/+/, '')} or set S3_BUCKET`,
    };
  }
  const keyProblem = objectKeyProblem(value);
  if (keyProblem !== undefined) {
    const hint = value.startsWith('/') ? `: write ${value.replace(/^\/+/, '')}` : '';
    return { ok: false, message: `key "${value}" is not usable: ${keyProblem}${hint}` };
  }
  return { ok: true, location: { bucket: defaultBucket, key: value } };
}
