/**
 * `depthq simulate` as a child process: it prints where it listens and how to point depthq at it, serves the API,
 * refuses bad flags naming the flag, and stops cleanly on SIGTERM / SIGINT.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { once } from 'node:events';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientFor, type FixtureServer, makePng, startFixtureServer } from '../helpers/sim-fixtures.js';

const repoRoot = resolve(import.meta.dirname, '../..');
const children: ChildProcessWithoutNullStreams[] = [];
let images: FixtureServer;

function startCli(args: string[]): { child: ChildProcessWithoutNullStreams; output: () => string } {
  const child = spawn(process.execPath, ['bin/depthq.js', 'simulate', ...args], { cwd: repoRoot });
  children.push(child);
  let text = '';
  child.stdout.on('data', (chunk: Buffer) => {
    text += chunk.toString('utf8');
  });
  child.stderr.on('data', (chunk: Buffer) => {
    text += chunk.toString('utf8');
  });
  return { child, output: () => text };
}

async function waitForOutput(output: () => string, pattern: RegExp, timeoutMs = 30_000): Promise<RegExpExecArray> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const match = pattern.exec(output());
    if (match) return match;
    if (Date.now() > deadline) throw new Error(`output never matched ${pattern}:\n${output()}`);
    await new Promise((resolveSleep) => setTimeout(resolveSleep, 50));
  }
}

async function exitOf(child: ChildProcessWithoutNullStreams): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode;
  const [code] = (await once(child, 'exit')) as [number | null];
  return code;
}

beforeAll(async () => {
  images = await startFixtureServer();
  images.set('/room.png', { contentType: 'image/png', body: await makePng() });
});

afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  await images.close();
});

describe('depthq simulate', () => {
  it('prints the base URL and REPLICATE_BASE_URL, serves predictions, and stops on SIGTERM', async () => {
    const { child, output } = startCli([
      '--port',
      '0',
      '--latency-ms',
      '20-40',
      '--start-delay-ms',
      '5',
      '--output-max-side',
      '64',
      '--api-token',
      'r8_cli',
    ]);
    const [, baseUrl] = await waitForOutput(output, /export REPLICATE_BASE_URL=(http:\/\/127\.0\.0\.1:\d+\/v1)\n/);
    expect(output()).not.toContain('r8_cli');
    const client = clientFor({ baseUrl: String(baseUrl) }, 'r8_cli');
    const created = await client.predictions.create({
      model: 'black-forest-labs/flux-depth-pro',
      input: { prompt: 'a loft', control_image: `${images.url}/room.png`, seed: 1 },
      wait: 30,
    });
    expect(created.status).toBe('succeeded');

    child.kill('SIGTERM');
    expect(await exitOf(child)).toBe(0);
    expect(output()).toContain('SIGTERM: stopping the simulator');
    expect(output()).toContain('1 predictions created, 1 images billed');
  });

  it('stops on SIGINT too', async () => {
    const { child, output } = startCli(['--port', '0']);
    await waitForOutput(output, /listening on http/);
    child.kill('SIGINT');
    expect(await exitOf(child)).toBe(0);
  });

  const badFlags: Array<[string[], RegExp]> = [
    [['--failure-rate', '2'], /--failure-rate must be a share from 0 to 1/],
    [['--reset-rate', 'lots'], /--reset-rate must be a share from 0 to 1/],
    [['--latency-ms', '900-100'], /--latency-ms must be milliseconds or a range min-max/],
    [['--retention', 'forever'], /--retention must be a positive duration .*, got "forever"/],
    [['--port', '70000'], /--port must be a whole number from 0 to 65535/],
    [['--creates-per-minute', '0'], /--creates-per-minute must be a number above 0/],
    [['--fault-seed', '1.5'], /--fault-seed must be a whole number/],
  ];
  for (const [args, message] of badFlags) {
    it(`refuses ${args.join(' ')} with a message naming the flag`, async () => {
      // A flag given twice is refused on its own (program.ts): a case that sets --port replaces the default one.
      const port = args[0] === '--port' ? [] : ['--port', '0'];
      const { child, output } = startCli([...port, ...args]);
      const code = await exitOf(child);
      expect(code).not.toBe(0);
      expect(output()).toMatch(message);
      expect(output()).not.toContain('listening on');
    });
  }
});
