/**
 * The one place an S3Client is built, so every client in depthq — workers, ingest, the demo, the tests — gets the
 * checksum settings below.
 */
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import type { Config } from '../config/index.js';

export interface S3ClientOptions {
  readonly region: string;
  /** A non-AWS endpoint (s3rver, MinIO, …). @defaultValue AWS's endpoint for the region */
  readonly endpoint?: string;
  /** `bucket` in the path instead of the host name: needed by s3rver and most S3-compatible servers. @defaultValue false */
  readonly forcePathStyle?: boolean;
  /** @defaultValue the AWS SDK's own credential chain (env, profile, instance role, …) */
  readonly credentials?: NonNullable<S3ClientConfig['credentials']>;
}

export function createS3Client(options: S3ClientOptions): S3Client {
  const config: S3ClientConfig = {
    region: options.region,
    // With the SDK's default (WHEN_SUPPORTED) a PutObject whose Body is a stream is sent `aws-chunked` with a trailing
    // checksum, and S3-compatible servers that do not decode that framing (s3rver 3.7.1 among them) store the framing
    // inside the object — 100 bytes become 142 — and answer 200. Checksums only where an operation requires them keeps
    // the bytes on the wire the bytes of the object. Uploads are verified by our own sha256 instead.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  };
  if (options.endpoint !== undefined) config.endpoint = options.endpoint;
  if (options.forcePathStyle !== undefined) config.forcePathStyle = options.forcePathStyle;
  if (options.credentials !== undefined) config.credentials = options.credentials;
  return new S3Client(config);
}

/** The client every command and worker uses: region, endpoint and path style from the configuration, credentials from the SDK's chain. */
export function s3ClientForConfig(config: Pick<Config, 's3'>): S3Client {
  return createS3Client({
    region: config.s3.region,
    ...(config.s3.endpoint === undefined ? {} : { endpoint: config.s3.endpoint }),
    forcePathStyle: config.s3.forcePathStyle,
  });
}
