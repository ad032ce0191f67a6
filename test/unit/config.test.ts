import { describe, expect, it } from 'vitest';
import { describeConfig, loadConfig, requireBucket, requireReplicateToken } from '../../src/config/index.js';
import { ConfigError } from '../../src/core/errors.js';

function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('loadConfig accepted a bad environment');
}

describe('loadConfig', () => {
  it('fills defaults for an empty environment', () => {
    const config = loadConfig({});
    expect(config.redisUrl).toBe('redis://127.0.0.1:6379');
    expect(config.replicate).toEqual({
      apiToken: undefined,
      baseUrl: 'https://api.replicate.com/v1',
      retentionMs: 3_600_000,
      retentionMarginMs: 300_000,
    });
    expect(config.s3).toEqual({ bucket: undefined, endpoint: undefined, forcePathStyle: false, region: 'us-east-1' });
    expect(config.prefix).toBe('depthq');
    expect(config.logLevel).toBe('info');
  });

  it('reads every variable and treats empty values as unset', () => {
    const config = loadConfig({
      REDIS_URL: 'redis://:pw@redis.internal:6380/2',
      REPLICATE_API_TOKEN: 'r8_secret',
      REPLICATE_BASE_URL: 'http://127.0.0.1:8787/v1/',
      S3_BUCKET: 'studio-renders',
      S3_ENDPOINT: 'http://127.0.0.1:9000',
      S3_FORCE_PATH_STYLE: '',
      AWS_REGION: 'eu-west-1',
      DEPTHQ_PREFIX: 'studio-a',
      LOG_LEVEL: 'debug',
    });
    expect(config.replicate.baseUrl).toBe('http://127.0.0.1:8787/v1');
    expect(config.s3).toEqual({
      bucket: 'studio-renders',
      endpoint: 'http://127.0.0.1:9000',
      forcePathStyle: true,
      region: 'eu-west-1',
    });
    expect(config.prefix).toBe('studio-a');
    expect(loadConfig({ S3_ENDPOINT: 'http://minio:9000', S3_FORCE_PATH_STYLE: 'false' }).s3.forcePathStyle).toBe(
      false,
    );
    expect(loadConfig({ S3_FORCE_PATH_STYLE: 'true' }).s3.forcePathStyle).toBe(true);
  });

  it("takes the provider's retention for a simulator, with a margin that fits inside it", () => {
    const short = loadConfig({ DEPTHQ_PROVIDER_RETENTION_MS: '8000' }).replicate;
    expect(short).toMatchObject({ retentionMs: 8000, retentionMarginMs: 2000 });
    const explicit = loadConfig({ DEPTHQ_PROVIDER_RETENTION_MS: '8000', DEPTHQ_RETENTION_MARGIN_MS: '500' });
    expect(explicit.replicate.retentionMarginMs).toBe(500);
    expect(
      loadConfig({ DEPTHQ_PROVIDER_RETENTION_MS: '8000', DEPTHQ_RETENTION_MARGIN_MS: '9000' }).replicate,
    ).toMatchObject({ retentionMarginMs: 8000 });
    expect(loadConfig({ DEPTHQ_POST_CREATE_RETRY_MS: '1500' }).worker.postCreateRetryMs).toBe(1500);
  });

  it('names every bad variable, what it got and what it expects, in one error', () => {
    const error = configError({
      REDIS_URL: 'localhost:6379',
      S3_BUCKET: 'My_Bucket',
      S3_FORCE_PATH_STYLE: 'yes please',
      LOG_LEVEL: 'loud',
    });
    expect(error.message).toContain('REDIS_URL (got "localhost:6379"): expected redis://');
    expect(error.message).toContain('S3_BUCKET (got "My_Bucket"): expected an S3 bucket name');
    expect(error.message).toContain('S3_FORCE_PATH_STYLE (got "yes please")');
    expect(error.message).toContain('LOG_LEVEL (got "loud")');
    expect(error.message).toContain('.env.example');
    expect(error.message.split('\n')).toHaveLength(6);
  });

  it('refuses a base URL that is not http(s)', () => {
    expect(configError({ REPLICATE_BASE_URL: 'ftp://example.com' }).message).toContain('REPLICATE_BASE_URL');
    expect(configError({ S3_ENDPOINT: 'minio:9000' }).message).toContain('S3_ENDPOINT');
  });

  it('never prints the token, even when it is the bad value', () => {
    const config = loadConfig({ REPLICATE_API_TOKEN: 'r8_topsecret', REDIS_URL: 'redis://:hunter2@host:6379' });
    const described = JSON.stringify(describeConfig(config));
    expect(described).not.toContain('r8_topsecret');
    expect(described).not.toContain('hunter2');
    expect(describeConfig(config).REPLICATE_API_TOKEN).toBe('(set, hidden)');
  });

  it('asks for the token and the bucket only where a command needs them', () => {
    const config = loadConfig({});
    expect(() => requireReplicateToken(config)).toThrow(/REPLICATE_API_TOKEN is not set/);
    expect(() => requireBucket(config)).toThrow(/S3_BUCKET is not set/);
    const full = loadConfig({ REPLICATE_API_TOKEN: 't', S3_BUCKET: 'renders' });
    expect(requireReplicateToken(full)).toBe('t');
    expect(requireBucket(full)).toBe('renders');
  });

  it('reads worker tuning, leaving absent values to the built-in defaults', () => {
    expect(loadConfig({}).worker).toEqual({});
    const config = loadConfig({
      DEPTHQ_WORKER_CONCURRENCY: ' 4 ',
      DEPTHQ_LOCK_DURATION_MS: '4000',
      DEPTHQ_JOB_ATTEMPTS: '',
    });
    expect(config.worker).toEqual({ concurrency: 4, lockDurationMs: 4000 });
    expect(describeConfig(config)['worker.concurrency']).toBe('4');
  });

  it('refuses worker tuning that is not a whole number in range, naming the variable', () => {
    const error = configError({
      DEPTHQ_WORKER_CONCURRENCY: '0',
      DEPTHQ_CREATE_WAIT_SECONDS: '90',
      DEPTHQ_POLL_MAX_MS: '1.5',
      DEPTHQ_GLOBAL_CONCURRENCY: 'many',
    });
    expect(error.message).toContain(
      'DEPTHQ_WORKER_CONCURRENCY (got "0"): expected jobs in flight per worker process of at least 1',
    );
    expect(error.message).toContain(
      'DEPTHQ_CREATE_WAIT_SECONDS (got "90"): expected seconds a create may hold (Prefer: wait) of at most 60',
    );
    expect(error.message).toContain('DEPTHQ_POLL_MAX_MS (got "1.5"): expected a whole number');
    expect(error.message).toContain('DEPTHQ_GLOBAL_CONCURRENCY (got "many"): expected a whole number');
  });
});
