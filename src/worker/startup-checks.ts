/**
 * What a render worker checks before it takes a job: Redis answers and will not evict jobs, the default bucket (when
 * S3_BUCKET is set) is reachable, and the provider's API answers and accepts the token. Each failure is a
 * StartupCheckError (a ConfigError: its message alone, exit code 2) that names the variable to fix.
 */
import { HeadBucketCommand, type S3Client } from '@aws-sdk/client-s3';
import type { Redis } from 'ioredis';
import type { Config } from '../config/index.js';
import { ConfigError, coerceError } from '../core/errors.js';
import { defaultModelId } from '../core/models.js';

/** A dependency the worker cannot run without is unreachable or refuses it: a clear message, exit code 2. */
export class StartupCheckError extends ConfigError {
  override readonly name: string = 'StartupCheckError';
}

/** Redis first (the S3 and provider checks are pointless without it), then S3 and the provider at once. */
export async function runStartupChecks(redis: Redis, s3: S3Client, config: Config, token: string): Promise<void> {
  await checkRedis(redis, config);
  await Promise.all([checkS3(s3, config), checkProvider(config, token)]);
}

async function withTimeout<T>(what: string, ms: number, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

async function checkRedis(redis: Redis, config: Config): Promise<void> {
  // A worker connection retries forever, so a refused connection would only show as the timeout: fail on its first error.
  let onError: ((error: Error) => void) | undefined;
  const connectionError = new Promise<never>((_, reject) => {
    onError = reject;
    redis.once('error', reject);
  });
  try {
    await withTimeout('Redis', 5_000, Promise.race([redis.ping(), connectionError]));
  } catch (error) {
    throw new StartupCheckError(
      `cannot reach Redis at ${new URL(config.redisUrl).host} (REDIS_URL): ${coerceError(error).message}`,
      { cause: error },
    );
  } finally {
    if (onError) redis.off('error', onError);
  }
  const policy = await redis.config('GET', 'maxmemory-policy').catch(() => undefined);
  const value = Array.isArray(policy) ? policy[1] : undefined;
  if (value !== undefined && value !== 'noeviction') {
    throw new StartupCheckError(
      `Redis maxmemory-policy is ${value}: BullMQ needs noeviction (an evicted job is a lost job). ` +
        'Set `maxmemory-policy noeviction` in redis.conf.',
    );
  }
}

async function checkS3(s3: S3Client, config: Config): Promise<void> {
  // Workers read and write whatever buckets the jobs name; when a default bucket is configured, check it is reachable.
  if (config.s3.bucket === undefined) return;
  try {
    await withTimeout('S3', 10_000, s3.send(new HeadBucketCommand({ Bucket: config.s3.bucket })));
  } catch (error) {
    const where = config.s3.endpoint ?? `AWS S3 (${config.s3.region})`;
    throw new StartupCheckError(
      `cannot reach bucket ${config.s3.bucket} at ${where} (S3_BUCKET, S3_ENDPOINT, AWS credentials): ${coerceError(error).name} ${coerceError(error).message}`,
      { cause: error },
    );
  }
}

async function checkProvider(config: Config, token: string): Promise<void> {
  const url = `${config.replicate.baseUrl}/models/${defaultModelId}`;
  let response: Response;
  try {
    response = await fetch(url, { headers: { Authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(10_000) });
  } catch (error) {
    // fetch says only "fetch failed"; what failed (ECONNREFUSED, ENOTFOUND, a certificate) is in its cause.
    const failure = coerceError(error);
    const detail = failure.cause instanceof Error ? `${failure.message}: ${failure.cause.message}` : failure.message;
    throw new StartupCheckError(
      `cannot reach the Replicate API at ${config.replicate.baseUrl} (REPLICATE_BASE_URL): ${detail}`,
      { cause: error },
    );
  }
  await response.body?.cancel();
  if (response.status === 401 || response.status === 403) {
    throw new StartupCheckError(
      `the Replicate API at ${config.replicate.baseUrl} refused REPLICATE_API_TOKEN (HTTP ${response.status})`,
    );
  }
  // Any other answer (a 404 for a retired model, a 429, a passing 5xx) shows the API is there: jobs handle the rest.
}
