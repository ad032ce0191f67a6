/**
 * A local S3 (s3rver 3.7.1, in this process) with one bucket, for the demo and the tests.
 *
 * s3rver's own `run()` creates its http.Server without an 'error' listener, so a port already taken crashes the whole
 * process with an uncaught EADDRINUSE instead of rejecting. We therefore let s3rver create its buckets, and serve its
 * request listener from a server we own: a taken port becomes a LocalStackError, and stop() can close every socket.
 */
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import S3rver from 's3rver';
import { createS3Client } from '../storage/s3-client.js';
import { LocalStackError } from './redis.js';

/** s3rver accepts only this key pair (its hard-coded dummy account); it does not check v4 signatures. */
export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;
export const LOCAL_S3_REGION = 'us-east-1';
export const DEFAULT_LOCAL_BUCKET = 'depthq-local';

const S3_HOST = '127.0.0.1';
// S3's rule for new bucket names (no dots: path-style and virtual-host URLs both stay simple).
const bucketNamePattern = /^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/;

export interface S3ServerOptions {
  /** @defaultValue 'depthq-local' */
  readonly bucket?: string;
  /** A store dir the caller owns: kept on stop(). @defaultValue a new `depthq-s3-*` dir under os.tmpdir(), removed on stop() */
  readonly directory?: string;
  /** @defaultValue a free port */
  readonly port?: number;
}

export interface RunningS3 {
  /** `http://127.0.0.1:port`; use path-style addressing. */
  readonly endpoint: string;
  readonly bucket: string;
  readonly port: number;
  readonly directory: string;
  /** One client per server (path-style, s3rver's credentials), destroyed by stop(). */
  client(): S3Client;
  /** Closes the server and its connections, then removes the temp dir. Idempotent. */
  stop(): Promise<void>;
}

const ownedDirectories = new Set<string>();

function removeOwnedDirectoriesOnExit(): void {
  for (const directory of ownedDirectories) {
    try {
      rmSync(directory, { recursive: true, force: true });
    } catch {
      // The process is exiting; there is no one left to tell.
    }
  }
}

function trackOwnedDirectory(directory: string, owned: boolean): void {
  if (owned) ownedDirectories.add(directory);
  else ownedDirectories.delete(directory);
  process.off('exit', removeOwnedDirectoriesOnExit);
  if (ownedDirectories.size > 0) process.on('exit', removeOwnedDirectoriesOnExit);
}

function listen(server: http.Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => reject(error);
    server.once('error', onError);
    server.listen(port, S3_HOST, () => {
      server.off('error', onError);
      const address = server.address();
      if (address !== null && typeof address === 'object') resolve(address.port);
      else reject(new LocalStackError('could not read the port s3rver listens on'));
    });
  });
}

function closeServer(server: http.Server): Promise<void> {
  return new Promise((resolve, reject) => {
    server.close((error) => (error === undefined ? resolve() : reject(error)));
    // Keep-alive sockets of SDK clients would hold close() open until they time out.
    server.closeAllConnections();
  });
}

export async function startS3Server(options: S3ServerOptions = {}): Promise<RunningS3> {
  const bucket = options.bucket ?? DEFAULT_LOCAL_BUCKET;
  if (!bucketNamePattern.test(bucket)) {
    throw new LocalStackError(
      `"${bucket}" is not a usable bucket name: 3–63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit`,
    );
  }
  const ownsDirectory = options.directory === undefined;
  const directory = options.directory ?? (await mkdtemp(path.join(os.tmpdir(), 'depthq-s3-')));
  trackOwnedDirectory(directory, ownsDirectory);
  const requestedPort = options.port ?? 0;

  const s3rver = new S3rver({
    address: S3_HOST,
    port: requestedPort,
    silent: true,
    directory,
    configureBuckets: [{ name: bucket }],
  });
  const server = http.createServer(s3rver.callback());
  let port: number;
  try {
    await s3rver.configureBuckets();
    port = await listen(server, requestedPort);
  } catch (error) {
    if (ownsDirectory) {
      await rm(directory, { recursive: true, force: true });
      trackOwnedDirectory(directory, false);
    }
    const reason = error instanceof Error ? error.message : String(error);
    throw new LocalStackError(`could not start s3rver on ${S3_HOST}:${requestedPort}: ${reason}`, { cause: error });
  }

  const endpoint = `http://${S3_HOST}:${port}`;
  let client: S3Client | undefined;
  let stopping: Promise<void> | undefined;
  return {
    endpoint,
    bucket,
    port,
    directory,
    client() {
      if (stopping !== undefined) throw new LocalStackError('s3rver was stopped');
      client ??= createS3Client({
        region: LOCAL_S3_REGION,
        endpoint,
        forcePathStyle: true,
        credentials: S3RVER_CREDENTIALS,
      });
      return client;
    },
    stop() {
      stopping ??= (async () => {
        client?.destroy();
        await closeServer(server);
        if (ownsDirectory) {
          await rm(directory, { recursive: true, force: true });
          trackOwnedDirectory(directory, false);
        }
      })();
      return stopping;
    },
  };
}
