/**
 * The servers a chaos run breaks: a redis-server with AOF (`appendfsync always`) that is SIGKILLed and started again on
 * the same port and data dir, an s3rver that is closed and started again on the same port and store directory, and the
 * Replicate simulator with its faults. All three run as the test process's own; workers are child processes.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { type RunningRedis, startRedisServer } from '../../src/local/redis.js';
import { LOCAL_S3_REGION, type RunningS3, S3RVER_CREDENTIALS, startS3Server } from '../../src/local/s3.js';
import { LOCAL_SIMULATOR_TOKEN } from '../../src/local/stack.js';
import { type RunningSimulator, type SimulatorOptionsInput, startSimulator } from '../../src/sim/index.js';
import { createS3Client } from '../../src/storage/s3-client.js';

export interface ChaosStack {
  readonly redis: RunningRedis;
  readonly simulator: RunningSimulator;
  readonly bucket: string;
  /** The S3 endpoint; the same before and after a restart. */
  readonly s3Endpoint: string;
  /** A client of the test's own, which outlives s3rver restarts (the server's own client is destroyed on stop). */
  readonly s3: S3Client;
  /** The environment a worker child needs for these servers (REDIS_URL, S3_*, AWS_*, REPLICATE_*). */
  env(): Record<string, string>;
  /** SIGKILL, `downMs` with nothing listening, then the same port and data dir again: AOF brings the data back. */
  crashRedis(downMs: number): Promise<void>;
  /** Closes s3rver (every connection dropped), waits `downMs`, then serves the same store on the same port again. */
  restartS3(downMs: number): Promise<void>;
  stop(): Promise<void>;
}

export interface ChaosStackOptions {
  readonly bucket: string;
  readonly simulator: SimulatorOptionsInput;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function startChaosStack(options: ChaosStackOptions): Promise<ChaosStack> {
  const s3Directory = await mkdtemp(path.join(os.tmpdir(), 'depthq-chaos-s3-'));
  const started: Array<() => Promise<void>> = [async () => rm(s3Directory, { recursive: true, force: true })];
  const stopStarted = async () => {
    for (const stop of started.splice(0).reverse()) await stop().catch(() => undefined);
  };
  try {
    // appendOnly: `appendfsync always`, so a SIGKILL loses no acknowledged write (docs/durability.md).
    const redis = await startRedisServer({ appendOnly: true });
    started.push(() => redis.stop());
    let s3Server: RunningS3 = await startS3Server({ bucket: options.bucket, directory: s3Directory });
    started.push(() => s3Server.stop());
    const simulator = await startSimulator({ apiToken: LOCAL_SIMULATOR_TOKEN, ...options.simulator });
    started.push(() => simulator.close());
    const { port, endpoint } = s3Server;
    const s3 = createS3Client({
      region: LOCAL_S3_REGION,
      endpoint,
      forcePathStyle: true,
      credentials: S3RVER_CREDENTIALS,
    });
    started.push(async () => s3.destroy());

    return {
      redis,
      simulator,
      bucket: options.bucket,
      s3Endpoint: endpoint,
      s3,
      env: () => ({
        REDIS_URL: redis.url,
        S3_ENDPOINT: endpoint,
        S3_BUCKET: options.bucket,
        S3_FORCE_PATH_STYLE: 'true',
        AWS_REGION: LOCAL_S3_REGION,
        AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
        REPLICATE_BASE_URL: simulator.baseUrl,
        REPLICATE_API_TOKEN: LOCAL_SIMULATOR_TOKEN,
      }),
      async crashRedis(downMs) {
        await redis.kill('SIGKILL');
        await sleep(downMs);
        await redis.restart();
      },
      async restartS3(downMs) {
        // The directory is ours, so stop() keeps it: the restarted server serves every object stored before.
        await s3Server.stop();
        await sleep(downMs);
        s3Server = await startS3Server({ bucket: options.bucket, directory: s3Directory, port });
      },
      stop: stopStarted,
    };
  } catch (error) {
    await stopStarted();
    throw error;
  }
}
