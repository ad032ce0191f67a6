import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findFreePort, findRedisServer, LocalStackError, startRedisServer } from '../../src/local/redis.js';
import { S3RVER_CREDENTIALS, startS3Server } from '../../src/local/s3.js';
import { LOCAL_SIMULATOR_TOKEN, startLocalStack } from '../../src/local/stack.js';
import { portRefusesConnections, processIsGone, uniqueName, useLocalStack } from '../helpers/stack.js';

async function withRedis<T>(url: string, use: (client: Redis) => Promise<T>): Promise<T> {
  // No reconnects: a test that talks to a stopped server must fail, not wait.
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  // ioredis reports why a connection failed (e.g. NOAUTH on its HELLO) as an 'error' event, then rejects with a generic
  // "Connection is closed": surface the reason.
  let connectionError: Error | undefined;
  client.on('error', (error: Error) => {
    connectionError = error;
  });
  try {
    await client.connect();
    return await use(client);
  } catch (error) {
    throw connectionError ?? error;
  } finally {
    client.disconnect();
  }
}

/** Holds a port with a plain TCP server (that hangs up on every connection), so another start on it must fail. */
async function occupyPort(): Promise<{ port: number; release: () => Promise<void> }> {
  const server = net.createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address !== 'object') throw new Error('no address');
  return {
    port: address.port,
    release: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

describe('startRedisServer', () => {
  it('answers on a free port, and stop() ends the process, frees the port and removes its temp dir', async () => {
    const redis = await startRedisServer();
    expect(redis.port).not.toBe(6379);
    expect(redis.url).toBe(`redis://127.0.0.1:${redis.port}`);
    expect(path.basename(redis.dir)).toMatch(/^depthq-redis-/);
    expect(path.dirname(redis.dir)).toBe(os.tmpdir());
    expect(processIsGone(redis.pid)).toBe(false);

    const key = uniqueName('key');
    const info = await withRedis(redis.url, async (client) => {
      await client.set(key, 'value');
      expect(await client.get(key)).toBe('value');
      return client.info('server');
    });
    expect(info).toContain(`process_id:${redis.pid}`);
    await withRedis(redis.url, async (client) => {
      expect(await client.config('GET', 'maxmemory-policy')).toEqual(['maxmemory-policy', 'noeviction']);
      expect(await client.config('GET', 'save')).toEqual(['save', '']);
    });

    await redis.stop();
    expect(processIsGone(redis.pid)).toBe(true);
    expect(await portRefusesConnections(redis.port)).toBe(true);
    expect(existsSync(redis.dir)).toBe(false);
    await expect(redis.stop()).resolves.toBeUndefined();
  });

  it('keeps a key across restart() with appendOnly, on the same port and dir', async () => {
    const redis = await startRedisServer({ appendOnly: true });
    try {
      const firstPid = redis.pid;
      const { port, dir } = redis;
      await withRedis(redis.url, (client) => client.set('survives', 'restart'));
      await redis.restart();
      expect(redis.pid).not.toBe(firstPid);
      expect(processIsGone(firstPid)).toBe(true);
      expect(redis.port).toBe(port);
      expect(redis.dir).toBe(dir);
      expect(await withRedis(redis.url, (client) => client.get('survives'))).toBe('restart');
    } finally {
      await redis.stop();
    }
  });

  it('loses nothing acknowledged when kill() crashes it with appendOnly, and restart() brings it back', async () => {
    const redis = await startRedisServer({ appendOnly: true });
    try {
      await withRedis(redis.url, (client) => client.set('written-before-crash', '1'));
      const crashedPid = redis.pid;
      await redis.kill();
      expect(processIsGone(crashedPid)).toBe(true);
      expect(await portRefusesConnections(redis.port)).toBe(true);
      expect(existsSync(redis.dir)).toBe(true);

      await redis.restart();
      expect(await withRedis(redis.url, (client) => client.get('written-before-crash'))).toBe('1');
    } finally {
      await redis.stop();
    }
    expect(existsSync(redis.dir)).toBe(false);
  });

  it('without appendOnly a restart starts empty (no RDB snapshot is written)', async () => {
    const redis = await startRedisServer();
    try {
      await withRedis(redis.url, (client) => client.set('gone-after-restart', '1'));
      await redis.restart();
      expect(await withRedis(redis.url, (client) => client.get('gone-after-restart'))).toBeNull();
    } finally {
      await redis.stop();
    }
  });

  it('keeps a dir the caller gave it', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'depthq-test-own-dir-'));
    try {
      const redis = await startRedisServer({ dir, appendOnly: true });
      expect(redis.dir).toBe(dir);
      await redis.stop();
      expect(existsSync(dir)).toBe(true);
      expect(await readdir(dir)).toContain('redis-server.log');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('requires the password it was given, and puts it in the url', async () => {
    const password = 'p@ss word/"quoted"';
    const redis = await startRedisServer({ password });
    try {
      expect(redis.url).toBe(`redis://:${encodeURIComponent(password)}@127.0.0.1:${redis.port}`);
      expect(await withRedis(redis.url, (client) => client.ping())).toBe('PONG');
      await expect(withRedis(`redis://127.0.0.1:${redis.port}`, (client) => client.ping())).rejects.toThrow(/NOAUTH/);
    } finally {
      await redis.stop();
    }
  });

  it('fails with a LocalStackError carrying the log tail when its port is taken, and cleans up', async () => {
    const occupied = await occupyPort();
    const before = new Set(await readdir(os.tmpdir()));
    try {
      const failure = startRedisServer({ port: occupied.port });
      await expect(failure).rejects.toBeInstanceOf(LocalStackError);
      await expect(failure).rejects.toThrow(/Address already in use/);
    } finally {
      await occupied.release();
    }
    const after = await readdir(os.tmpdir());
    // Another file may start its own servers meanwhile; only dirs made during this test and still there would be ours.
    const leftovers = after.filter((name) => name.startsWith('depthq-redis-') && !before.has(name));
    for (const name of leftovers) {
      const log = path.join(os.tmpdir(), name, 'redis-server.log');
      expect(existsSync(log) ? readFileSync(log, 'utf8') : '').not.toContain(`${occupied.port}`);
    }
  });

  it('finds the redis-server binary the global setup made sure of', async () => {
    expect(await findRedisServer()).toMatch(/redis-server$/);
  });
});

describe('startS3Server', () => {
  it('round-trips put/get/head in its bucket and answers NotFound for a missing key', async () => {
    const s3 = await startS3Server({ bucket: uniqueName('bucket') });
    try {
      const client = s3.client();
      expect(s3.client()).toBe(client);
      const body = randomBytes(4096);
      await client.send(
        new PutObjectCommand({ Bucket: s3.bucket, Key: 'dir/a.png', Body: body, ContentType: 'image/png' }),
      );
      const head = await client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: 'dir/a.png' }));
      expect(head.ContentLength).toBe(4096);
      expect(head.ContentType).toBe('image/png');
      const got = await client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: 'dir/a.png' }));
      expect(Buffer.from((await got.Body?.transformToByteArray()) ?? [])).toEqual(body);

      const missing = client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: 'dir/missing.png' }));
      await expect(missing).rejects.toMatchObject({ name: 'NotFound', $metadata: { httpStatusCode: 404 } });
      const missingGet = client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: 'dir/missing.png' }));
      await expect(missingGet).rejects.toMatchObject({ name: 'NoSuchKey' });
    } finally {
      await s3.stop();
    }
    expect(await portRefusesConnections(s3.port)).toBe(true);
    expect(existsSync(s3.directory)).toBe(false);
    await expect(s3.stop()).resolves.toBeUndefined();
  });

  it('rejects (rather than crashing the process) when its port is taken, and removes its temp dir', async () => {
    const occupied = await occupyPort();
    try {
      const failure = startS3Server({ port: occupied.port });
      await expect(failure).rejects.toBeInstanceOf(LocalStackError);
      await expect(failure).rejects.toThrow(/EADDRINUSE/);
    } finally {
      await occupied.release();
    }
  });

  it('refuses a bucket name S3 would refuse', async () => {
    await expect(startS3Server({ bucket: 'Bad_Bucket' })).rejects.toBeInstanceOf(LocalStackError);
  });
});

describe('createS3Client against s3rver: streamed bodies are stored byte for byte', () => {
  let s3: Awaited<ReturnType<typeof startS3Server>>;
  beforeAll(async () => {
    s3 = await startS3Server();
  });
  afterAll(async () => {
    await s3.stop();
  });

  async function storedBytes(client: S3Client, key: string): Promise<Buffer> {
    const got = await client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
    return Buffer.from((await got.Body?.transformToByteArray()) ?? []);
  }

  it('PutObject with a Readable body', async () => {
    const client = s3.client();
    for (const size of [100, 300_000]) {
      const body = randomBytes(size);
      const key = `put-stream-${size}`;
      await client.send(
        new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: Readable.from([body]), ContentLength: size }),
      );
      const stored = await storedBytes(client, key);
      expect(stored.length).toBe(size);
      expect(sha256(stored)).toBe(sha256(body));
    }
  });

  it('lib-storage Upload of a stream, single part and multipart', async () => {
    const client = s3.client();
    for (const size of [100, 11 * 1024 * 1024]) {
      const body = randomBytes(size);
      const key = `upload-stream-${size}`;
      // Chunks of 64 KiB, as a download stream delivers them.
      const chunks = Array.from({ length: Math.ceil(size / 65_536) }, (_, index) =>
        body.subarray(index * 65_536, (index + 1) * 65_536),
      );
      const upload = new Upload({
        client,
        params: { Bucket: s3.bucket, Key: key, Body: Readable.from(chunks) },
        partSize: 5 * 1024 * 1024,
      });
      await upload.done();
      const stored = await storedBytes(client, key);
      expect(stored.length).toBe(size);
      expect(sha256(stored)).toBe(sha256(body));
    }
  });

  it('the trap is real: a client with the SDK defaults stores the aws-chunked framing in the object', async () => {
    // If this starts failing after an SDK or s3rver upgrade, the trap is gone: update docs/stack-facts.md, keep the
    // settings.
    const defaults = new S3Client({
      region: 'us-east-1',
      endpoint: s3.endpoint,
      forcePathStyle: true,
      credentials: S3RVER_CREDENTIALS,
    });
    try {
      const body = randomBytes(100);
      await defaults.send(
        new PutObjectCommand({ Bucket: s3.bucket, Key: 'trap', Body: Readable.from([body]), ContentLength: 100 }),
      );
      const stored = await storedBytes(defaults, 'trap');
      expect(stored.length).toBeGreaterThan(100);
    } finally {
      defaults.destroy();
    }
  });
});

describe('startLocalStack', () => {
  const stack = useLocalStack();

  it('runs all three parts and hands their endpoints to child processes through env()', async () => {
    const { redis, s3, simulator } = stack();
    if (redis === undefined || s3 === undefined || simulator === undefined) throw new Error('a part is missing');
    expect(stack().env()).toEqual({
      REDIS_URL: redis.url,
      S3_ENDPOINT: s3.endpoint,
      S3_BUCKET: s3.bucket,
      S3_FORCE_PATH_STYLE: 'true',
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
      REPLICATE_BASE_URL: simulator.baseUrl,
      REPLICATE_API_TOKEN: LOCAL_SIMULATOR_TOKEN,
    });
    expect(await withRedis(redis.url, (client) => client.ping())).toBe('PONG');
    await s3.client().send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'k', Body: 'v' }));

    // The simulator takes the local token and refuses any other.
    const authorized = await fetch(`${simulator.baseUrl}/predictions`, {
      headers: { Authorization: `Bearer ${LOCAL_SIMULATOR_TOKEN}` },
    });
    expect(authorized.status).toBe(200);
    const unauthorized = await fetch(`${simulator.baseUrl}/predictions`, {
      headers: { Authorization: 'Bearer not-the-token' },
    });
    expect(unauthorized.status).toBe(401);
  });

  it('starts only the parts asked for', async () => {
    const onlyS3 = await startLocalStack({ redis: false, simulator: false });
    try {
      expect(onlyS3.redis).toBeUndefined();
      expect(onlyS3.simulator).toBeUndefined();
      expect(onlyS3.s3).toBeDefined();
      expect(Object.keys(onlyS3.env()).sort()).toEqual(
        [
          'AWS_ACCESS_KEY_ID',
          'AWS_REGION',
          'AWS_SECRET_ACCESS_KEY',
          'S3_BUCKET',
          'S3_ENDPOINT',
          'S3_FORCE_PATH_STYLE',
        ].sort(),
      );
    } finally {
      await onlyS3.stop();
    }
  });

  it('gives two stacks started at once different ports', async () => {
    const [first, second] = await Promise.all([startLocalStack(), startLocalStack()]);
    try {
      const ports = [first, second].flatMap((each) => [each.redis?.port, each.s3?.port, each.simulator?.port]);
      expect(ports.every((port) => typeof port === 'number' && port > 0)).toBe(true);
      expect(new Set(ports).size).toBe(6);
      expect(first.redis?.dir).not.toBe(second.redis?.dir);
    } finally {
      await Promise.all([first.stop(), second.stop()]);
    }
  });

  it('stop() is idempotent: later calls share the first outcome and everything is down', async () => {
    const local = await startLocalStack();
    const { redis, s3, simulator } = local;
    if (redis === undefined || s3 === undefined || simulator === undefined) throw new Error('a part is missing');
    const first = local.stop();
    const second = local.stop();
    expect(second).toBe(first);
    await first;
    await expect(local.stop()).resolves.toBeUndefined();
    expect(processIsGone(redis.pid)).toBe(true);
    for (const port of [redis.port, s3.port, simulator.port]) expect(await portRefusesConnections(port)).toBe(true);
    expect(existsSync(redis.dir)).toBe(false);
    expect(existsSync(s3.directory)).toBe(false);
  });

  it('stops the parts that started when another fails to start (an s3 port already taken)', async () => {
    const occupied = await occupyPort();
    const redisPort = await findFreePort();
    const simulatorPort = await findFreePort();
    try {
      const failure = startLocalStack({
        redis: { port: redisPort },
        s3: { port: occupied.port },
        simulator: { port: simulatorPort },
      });
      await expect(failure).rejects.toBeInstanceOf(LocalStackError);
      await expect(failure).rejects.toThrow(/s3rver/);
    } finally {
      await occupied.release();
    }
    expect(await portRefusesConnections(redisPort)).toBe(true);
    expect(await portRefusesConnections(simulatorPort)).toBe(true);
  });
});
