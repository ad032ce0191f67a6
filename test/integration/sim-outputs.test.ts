/**
 * What a prediction produces: output files served by the simulator, deterministic renders, logs with the seed,
 * metrics, retention, and the failures a bad control image causes.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningSimulator, startSimulator } from '../../src/sim/index.js';
import {
  clientFor,
  eventually,
  type FixtureServer,
  makePng,
  startFixtureServer,
  waitForEnd,
} from '../helpers/sim-fixtures.js';

const PRO = 'black-forest-labs/flux-depth-pro';
const DEV = 'black-forest-labs/flux-depth-dev';

let images: FixtureServer;
let sim: RunningSimulator;
let png: Buffer;

beforeAll(async () => {
  images = await startFixtureServer();
  png = await makePng(80, 60);
  images.set('/room.png', { contentType: 'image/png', body: png });
  images.set('/notes.txt', { contentType: 'image/png', body: 'hello, this is not an image at all' });
  images.set('/forbidden.png', { status: 403, contentType: 'text/plain', body: 'AccessDenied' });
  images.set('/large.png', { contentType: 'image/png', body: Buffer.concat([png, Buffer.alloc(300_000)]) });
  sim = await startSimulator({
    startDelayMs: { min: 5, max: 20 },
    latencyMs: { min: 20, max: 50 },
    outputMaxSide: 96,
    maxControlImageBytes: 200_000,
    createsPerMinute: 100_000,
    requestsPerMinute: 100_000,
  });
});

afterAll(async () => {
  await sim.close();
  await images.close();
});

async function run(input: Record<string, unknown>, model = PRO) {
  const client = clientFor(sim);
  const created = await client.predictions.create({ model, input });
  return waitForEnd(client, created.id);
}

async function download(url: string): Promise<{ response: Response; bytes: Buffer }> {
  const response = await fetch(url);
  return { response, bytes: Buffer.from(await response.arrayBuffer()) };
}

function input(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    prompt: 'a scandinavian living room',
    control_image: `${images.url}/room.png`,
    seed: 42,
    steps: 20,
    ...extra,
  };
}

describe('output files', () => {
  it('serves the output at /files/{id}/output-0.jpg with its Content-Type and Content-Length', async () => {
    const done = await run(input());
    expect(done.status).toBe('succeeded');
    expect(done.output).toBe(`${sim.url}/files/${done.id}/output-0.jpg`);
    const { response, bytes } = await download(String(done.output));
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('image/jpeg');
    expect(Number(response.headers.get('content-length'))).toBe(bytes.length);
    expect([...bytes.subarray(0, 3)]).toEqual([0xff, 0xd8, 0xff]);
  });

  it('honours output_format png', async () => {
    const done = await run(input({ output_format: 'png' }));
    expect(String(done.output)).toMatch(/output-0\.png$/);
    const { response, bytes } = await download(String(done.output));
    expect(response.headers.get('content-type')).toBe('image/png');
    expect(bytes.subarray(1, 4).toString('latin1')).toBe('PNG');
  });

  it('gives flux-depth-dev an array of num_outputs images, each from seed + i', async () => {
    const done = await run(
      { prompt: 'a garden', control_image: `${images.url}/room.png`, seed: 9, num_outputs: 3, output_format: 'webp' },
      DEV,
    );
    expect(done.status).toBe('succeeded');
    expect(done.output).toEqual([0, 1, 2].map((i) => `${sim.url}/files/${done.id}/output-${i}.webp`));
    expect(done.metrics).toMatchObject({ image_count: 3 });
    const files = await Promise.all((done.output as string[]).map(download));
    for (const { response } of files) expect(response.headers.get('content-type')).toBe('image/webp');
    expect(new Set(files.map(({ bytes }) => bytes.toString('base64'))).size).toBe(3);
    // Output i is what seed + i renders alone.
    const second = await run(
      { prompt: 'a garden', control_image: `${images.url}/room.png`, seed: 10, num_outputs: 1, output_format: 'webp' },
      DEV,
    );
    const alone = await download(String((second.output as string[])[0]));
    expect(alone.bytes.equals(files[1]?.bytes ?? Buffer.alloc(0))).toBe(true);
  });

  it('serves a web page for urls.web', async () => {
    const done = await run(input());
    const page = await fetch(String(done.urls.web));
    expect(page.status).toBe(200);
    expect(await page.text()).toContain(done.id);
  });
});

describe('determinism', () => {
  it('renders identical bytes for the same input, also from a re-presigned URL of the same image', async () => {
    const first = await run(input());
    const second = await run(input({ control_image: `${images.url}/room.png?X-Amz-Signature=another` }));
    const a = await download(String(first.output));
    const b = await download(String(second.output));
    expect(a.bytes.equals(b.bytes)).toBe(true);
  });

  it('renders different bytes for another seed', async () => {
    const first = await run(input({ seed: 1 }));
    const second = await run(input({ seed: 2 }));
    const a = await download(String(first.output));
    const b = await download(String(second.output));
    expect(a.bytes.equals(b.bytes)).toBe(false);
  });
});

describe('logs and metrics', () => {
  it('prints the given seed first, then progress lines, and reports predict_time and image_count', async () => {
    const done = await run(input({ seed: 1234 }));
    const lines = String(done.logs).trimEnd().split('\n');
    expect(lines[0]).toBe('Using seed: 1234');
    expect(lines.some((line) => /^\s*100%\|.*\| 50\/50/.test(line))).toBe(true);
    expect(lines.length).toBeGreaterThanOrEqual(3);
    expect(done.metrics?.predict_time).toBeGreaterThan(0);
    expect(done.metrics).toMatchObject({ image_count: 1 });
  });

  it('picks and logs a random seed when none is given; that seed reproduces the output', async () => {
    const { seed: _omitted, ...withoutSeed } = input();
    const done = await run(withoutSeed);
    expect(done.input).toEqual(withoutSeed);
    const seed = Number(/^Using seed: (\d+)$/m.exec(String(done.logs))?.[1]);
    expect(Number.isInteger(seed)).toBe(true);
    const again = await run(input({ seed }));
    const a = await download(String(done.output));
    const b = await download(String(again.output));
    expect(a.bytes.equals(b.bytes)).toBe(true);
  });
});

describe('retention', () => {
  it('removes input, output, logs and files retentionMs after creation', async () => {
    const short = await startSimulator({
      startDelayMs: { min: 0, max: 0 },
      latencyMs: { min: 10, max: 10 },
      retentionMs: 300,
      outputMaxSide: 64,
    });
    try {
      const client = clientFor(short);
      const created = await client.predictions.create({ model: PRO, input: input(), wait: 10 });
      expect(created.status).toBe('succeeded');
      const url = String(created.output);
      const removed = await eventually(async () => {
        const current = await client.predictions.get(created.id);
        return current.data_removed ? current : undefined;
      });
      expect(removed).toMatchObject({ status: 'succeeded', output: null, input: {}, logs: '', data_removed: true });
      expect((await fetch(url)).status).toBe(404);
      expect(short.stats().outputBytesHeld).toBe(0);
    } finally {
      await short.close();
    }
  });
});

describe('outputMinBytes', () => {
  it('serves each output padded with zero bytes to that size, the rendered image first, and holds only the image', async () => {
    const padded = await startSimulator({
      startDelayMs: { min: 0, max: 0 },
      latencyMs: { min: 0, max: 0 },
      outputMaxSide: 96,
      outputMinBytes: 300_000,
    });
    try {
      const same = input({ seed: 4242 });
      const [plainEnd, paddedEnd] = [
        await run(same),
        await waitForEnd(
          clientFor(padded),
          (await clientFor(padded).predictions.create({ model: PRO, input: same })).id,
        ),
      ];
      const plain = await download(String(plainEnd.output));
      const served = await download(String(paddedEnd.output));
      expect(served.response.headers.get('content-length')).toBe('300000');
      expect(served.bytes.length).toBe(300_000);
      expect(served.bytes.subarray(0, plain.bytes.length).equals(plain.bytes)).toBe(true);
      expect(served.bytes.subarray(plain.bytes.length).every((byte) => byte === 0)).toBe(true);
      expect(padded.stats().outputBytesHeld).toBe(plain.bytes.length);
    } finally {
      await padded.close();
    }
  });
});

describe('control image failures end the prediction `failed` with an error naming the input', () => {
  it('unreachable host', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const done = await run(input({ control_image: `http://127.0.0.1:${port}/gone.png` }));
    expect(done.status).toBe('failed');
    expect(done.error).toMatch(/^control_image: could not fetch http:\/\/127\.0\.0\.1:\d+\/gone\.png: .*ECONNREFUSED/);
  });

  it('non-2xx answer, without leaking the presigned query string', async () => {
    const done = await run(input({ control_image: `${images.url}/forbidden.png?X-Amz-Signature=secret123` }));
    expect(done.status).toBe('failed');
    expect(done.error).toBe(`control_image: fetching ${images.url}/forbidden.png answered HTTP 403 Forbidden`);
    expect(String(done.error)).not.toContain('secret123');
  });

  it('bytes that are not jpeg, png, gif or webp (whatever the Content-Type says)', async () => {
    const done = await run(input({ control_image: `${images.url}/notes.txt` }));
    expect(done.status).toBe('failed');
    expect(done.error).toContain(
      'control_image: expected jpeg, png, gif or webp, got text (first bytes "hello, this is n")',
    );
  });

  it('too large', async () => {
    const done = await run(input({ control_image: `${images.url}/large.png` }));
    expect(done.status).toBe('failed');
    expect(done.error).toMatch(/^control_image: .*200000-byte limit/);
  });

  it('missing file (404)', async () => {
    const done = await run(input({ control_image: `${images.url}/nothing.png` }));
    expect(done.status).toBe('failed');
    expect(done.error).toContain('answered HTTP 404');
  });

  it('accepts a data: URI and refuses one holding text', async () => {
    const ok = await run(input({ control_image: `data:image/png;base64,${png.toString('base64')}` }));
    expect(ok.status).toBe('succeeded');
    const bad = await run(input({ control_image: 'data:text/plain,just%20words' }));
    expect(bad.status).toBe('failed');
    expect(bad.error).toContain('control_image: expected jpeg, png, gif or webp, got text');
  });

  it('a failed fetch bills nothing', () => {
    const stats = sim.stats();
    expect(stats.billedPredictions).toBe(stats.predictions.succeeded);
  });
});
