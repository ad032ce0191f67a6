/**
 * Bad environment variables, command-line flags and run ids (docs/input-rules.md): each refused with its exact message,
 * exit code 2, no stack trace, and nothing enqueued or written. Run in-process through `runCli`; a handful run the real
 * `node bin/depthq.js` to check exit code and stderr end to end.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeConnection, connectProducer, createProducerConnection } from '../../../src/queue/connections.js';
import { putBytesObject } from '../../../src/storage/s3.js';
import {
  controlImages,
  type EnvironmentChanges,
  expectRefused,
  runDepthq,
  STACK_LINE,
  spawnDepthq,
  utf16le,
  type WorldSnapshotter,
  worldOf,
  writeCase,
} from '../../helpers/bad-inputs.js';
import { useLocalStack } from '../../helpers/stack.js';

/** Generous: the fixtures and a first ingest on a machine other test files load too. */
const SETUP_TIMEOUT_MS = 180_000;

const stack = useLocalStack({ simulator: false });
let redis: Redis;
let root: string;
let world: WorldSnapshotter;
let environment: Record<string, string>;
/** A valid manifest: every case here fails on something else. */
let manifest: string;

beforeAll(async () => {
  const running = stack();
  if (running.redis === undefined || running.s3 === undefined) throw new Error('the stack lacks Redis or S3');
  redis = createProducerConnection(running.redis.url);
  await connectProducer(redis);
  const s3 = running.s3.client();
  await putBytesObject(
    s3,
    { bucket: running.s3.bucket, key: 'controls/a.jpg' },
    await controlImages.jpeg(),
    'image/jpeg',
  );
  world = worldOf(redis, s3, running.s3.bucket);
  environment = { ...running.env(), DEPTHQ_PREFIX: 'badcli' };
  root = await mkdtemp(path.join(os.tmpdir(), 'depthq-bad-cli-'));
  manifest = await writeCase(root, 'shots.csv', 'id,control_image,prompt\na,controls/a.jpg,a house\n');
  const created = await runDepthq(['ingest', manifest, '--run', 'villa', '--budget', '10'], environment);
  expect(created.stderr).toBe('');
  expect(created.code).toBe(0);
}, SETUP_TIMEOUT_MS);

afterAll(async () => {
  await closeConnection(redis);
  await rm(root, { recursive: true, force: true });
});

/** `depthq ingest <valid manifest> --run villa <flags>` with `changes` to the environment must be refused. */
function refusedIngest(flags: readonly string[], changes: EnvironmentChanges, expected: string | RegExp) {
  return expectRefused(world, ['ingest', manifest, ...flags], { ...environment, ...changes }, expected);
}

const invalidVariable = (lines: string) =>
  `depthq: depthq cannot start: an environment variable is invalid\n${lines}\nSee .env.example for what each one expects.\n`;

describe('bad environment', () => {
  it('a malformed REDIS_URL', async () => {
    await refusedIngest(
      ['--run', 'villa'],
      { REDIS_URL: 'localhost:6379' },
      invalidVariable(
        '  REDIS_URL (got "localhost:6379"): expected redis://[user:password@]host:port[/db] or rediss://… for TLS',
      ),
    );
  });

  it('a REDIS_URL where no Redis answers', async () => {
    await refusedIngest(
      ['--run', 'villa'],
      { REDIS_URL: 'redis://127.0.0.1:1' },
      'depthq: cannot reach Redis at redis://127.0.0.1:1 (REDIS_URL): connect ECONNREFUSED 127.0.0.1:1\n',
    );
  });

  it('S3_BUCKET missing', async () => {
    await refusedIngest(
      ['--run', 'villa'],
      { S3_BUCKET: undefined },
      'depthq: S3_BUCKET is not set: name the bucket that receives the outputs (and holds control images)\n',
    );
  });

  it('a malformed S3_BUCKET', async () => {
    await refusedIngest(
      ['--run', 'villa'],
      { S3_BUCKET: 'Renders_2026' },
      invalidVariable(
        "  S3_BUCKET (got \"Renders_2026\"): expected an S3 bucket name, which must use lowercase letters, digits, '.' and '-' only, and start and end with a letter or digit",
      ),
    );
  });

  it('a malformed S3_ENDPOINT', async () => {
    await refusedIngest(
      ['--run', 'villa'],
      { S3_ENDPOINT: 'minio:9000' },
      invalidVariable(
        '  S3_ENDPOINT (got "minio:9000"): expected an http(s) URL for an S3-compatible endpoint, e.g. http://127.0.0.1:9000',
      ),
    );
  });

  it('a malformed DEPTHQ_PREFIX', async () => {
    await refusedIngest(
      ['--run', 'villa'],
      { DEPTHQ_PREFIX: 'Studio Queue' },
      invalidVariable(
        "  DEPTHQ_PREFIX (got \"Studio Queue\"): expected 1–32 lowercase letters, digits, '_' or '-', starting with a letter",
      ),
    );
  });

  it('REPLICATE_API_TOKEN missing, before a worker starts', async () => {
    await expectRefused(
      world,
      ['worker'],
      { ...environment, REPLICATE_API_TOKEN: undefined },
      'depthq: REPLICATE_API_TOKEN is not set: create a token at https://replicate.com/account/api-tokens and export it, or point REPLICATE_BASE_URL at a local simulator (`depthq simulate`) with any token.\n',
    );
  });

  it('several malformed variables, every one listed', async () => {
    await refusedIngest(
      ['--run', 'villa'],
      { DEPTHQ_JOB_ATTEMPTS: 'many', LOG_LEVEL: 'loud', S3_FORCE_PATH_STYLE: 'maybe' },
      /^depthq: depthq cannot start: environment variables are invalid\n {2}S3_FORCE_PATH_STYLE \(got "maybe"\): .+\n {2}DEPTHQ_JOB_ATTEMPTS \(got "many"\): expected a whole number for attempts per job\n {2}LOG_LEVEL \(got "loud"\): .+\nSee \.env\.example for what each one expects\.\n$/,
    );
  });
});

describe('bad flags', () => {
  it('an unknown flag', async () => {
    await refusedIngest(
      ['--run', 'villa', '--bogus'],
      {},
      "error: unknown option '--bogus'\n(run with --help for usage)\n",
    );
  });

  it('a misspelt flag, with a suggestion', async () => {
    await refusedIngest(
      ['--run', 'villa', '--budgte', '5'],
      {},
      "error: unknown option '--budgte'\n(Did you mean --budget?)\n(run with --help for usage)\n",
    );
  });

  it('--preflight-concurrency out of range, low and high', async () => {
    await refusedIngest(
      ['--run', 'villa', '--preflight-concurrency', '0'],
      {},
      'depthq: --preflight-concurrency must be a whole number from 1 to 1000, got "0"\n',
    );
    await refusedIngest(
      ['--run', 'villa', '--preflight-concurrency', '5000'],
      {},
      'depthq: --preflight-concurrency must be a whole number from 1 to 1000, got "5000"\n',
    );
  });

  it('--max-rows below 1', async () => {
    await refusedIngest(
      ['--run', 'villa', '--max-rows', '-3'],
      {},
      'depthq: --max-rows must be a whole number from 1 to 100000000, got "-3"\n',
    );
  });

  it('--budget negative, and not a number', async () => {
    const expected = (got: string) =>
      `depthq: --budget must be a dollar amount with at most six decimals, up to $9,007,199,254.740991 (e.g. 25, 0.05 or $1200.50), got "${got}"\n`;
    await refusedIngest(['--run', 'villa', '--budget', '-5'], {}, expected('-5'));
    await refusedIngest(['--run', 'villa', '--budget', 'lots'], {}, expected('lots'));
  });

  it('--run given twice', async () => {
    await refusedIngest(
      ['--run', 'villa', '--run', 'villa-2'],
      {},
      'depthq: --run is given twice ("villa", then "villa-2"): give it once\n',
    );
  });

  it('--budget given twice', async () => {
    await refusedIngest(
      ['--run', 'villa', '--budget', '5', '--budget', '50'],
      {},
      'depthq: --budget is given twice ("5", then "50"): give it once\n',
    );
  });

  it('--set given twice for one input with different values', async () => {
    await refusedIngest(
      ['--run', 'villa', '--set', 'steps=30', '--set', 'steps=40'],
      {},
      'depthq: --set steps is given twice with different values: keep one\n',
    );
  });

  it('--set of an input the model does not have', async () => {
    await refusedIngest(
      ['--run', 'villa', '--set', 'stepz=30'],
      {},
      'depthq: --set stepz=30: black-forest-labs/flux-depth-pro has no input named "stepz"; it takes prompt, seed, steps, guidance, prompt_upsampling, safety_tolerance, output_format\n',
    );
  });

  it('--set with a value of the wrong type', async () => {
    await refusedIngest(
      ['--run', 'villa', '--set', 'steps=many'],
      {},
      'depthq: --set steps=many: steps must be a whole number from 15 to 50, got "many"\n',
    );
  });

  it('--model that is not registered', async () => {
    await refusedIngest(
      ['--run', 'villa', '--model', 'black-forest-labs/flux-depth-ultra'],
      {},
      'depthq: --model: "black-forest-labs/flux-depth-ultra" is not a registered model: depthq knows black-forest-labs/flux-depth-pro, black-forest-labs/flux-depth-dev\n',
    );
  });

  it("--output-prefix with '..'", async () => {
    await refusedIngest(
      ['--run', 'villa', '--output-prefix', 'renders/../../etc'],
      {},
      `depthq: --output-prefix: output key prefix "renders/../../etc" is not allowed: it has a '..' segment, which would climb out of its prefix\n`,
    );
  });

  it('--output-key-template with an unknown placeholder', async () => {
    await refusedIngest(
      ['--run', 'villa', '--output-key-template', '{run}/{colour}/{id}.{ext}'],
      {},
      'depthq: --output-key-template: Output key template "{run}/{colour}/{id}.{ext}" uses the unknown placeholder {colour}: known placeholders are {run}, {id}, {style}, {seed}, {ext}, {model} and {meta.<column>}\n',
    );
  });

  it('--run missing, or without its value', async () => {
    await refusedIngest([], {}, "error: required option '--run <id>' not specified\n(run with --help for usage)\n");
    await refusedIngest(['--run'], {}, "error: option '--run <id>' argument missing\n(run with --help for usage)\n");
  });

  it('the manifest argument missing', async () => {
    await expectRefused(
      world,
      ['ingest', '--run', 'villa'],
      environment,
      "error: missing required argument 'manifest.csv'\n(run with --help for usage)\n",
    );
  });
});

const RUN_ID_RULE = "use 1–64 characters: lowercase letters, digits, '.', '_' or '-', starting with a letter or digit";

describe('bad run ids', () => {
  it.each([
    ['too long', 'v'.repeat(65)],
    ['uppercase', 'Villa-2026'],
    ['a path', '../etc'],
    ['a folder separator', 'villa/2026'],
    ['a backslash', 'villa\\2026'],
    ['a space', 'villa 2026'],
    ['an accent', 'vïlla'],
    ['empty', ''],
  ])('%s, at ingest', async (_case, run) => {
    await refusedIngest(
      ['--run', run],
      {},
      `depthq: --run: ${JSON.stringify(run)} is not a valid run id: ${RUN_ID_RULE}\n`,
    );
  });

  it('uppercase and path characters in the run commands too', async () => {
    for (const args of [
      ['status', 'Villa'],
      ['report', '../villa'],
      ['cancel', 'villa/2026'],
      ['budget', 'VILLA', '20'],
    ]) {
      await expectRefused(
        world,
        args,
        environment,
        `depthq: ${JSON.stringify(args[1])} is not a valid run id: ${RUN_ID_RULE}\n`,
      );
    }
  });
});

describe('end to end: the real process', () => {
  it('exit code 2 and the message alone on stderr: a malformed variable, a flag given twice, a UTF-16 manifest', async () => {
    const utf16 = await writeCase(root, 'shots.csv', utf16le('id,control_image,prompt\nb,controls/a.jpg,a street\n'));
    const before = await world.snapshot();
    // At once: each child takes seconds to start (tsx) on a loaded machine.
    const [variable, repeated, encoding] = await Promise.all([
      spawnDepthq(['ingest', manifest, '--run', 'villa'], { ...environment, REDIS_URL: 'localhost:6379' }),
      spawnDepthq(['ingest', manifest, '--run', 'villa', '--run', 'villa-2'], environment),
      spawnDepthq(['ingest', utf16, '--run', 'villa'], environment),
    ]);
    expect(variable.stderr).toBe(
      invalidVariable(
        '  REDIS_URL (got "localhost:6379"): expected redis://[user:password@]host:port[/db] or rediss://… for TLS',
      ),
    );
    expect(repeated.stderr).toBe('depthq: --run is given twice ("villa", then "villa-2"): give it once\n');
    expect(encoding.stderr).toMatch(
      /^shots\.csv:1: is UTF-16 text .+\ndepthq: shots\.csv: 1 problem; nothing was enqueued\. Fix them and ingest again\n$/,
    );
    for (const result of [variable, repeated, encoding]) {
      expect(result.stderr).not.toMatch(STACK_LINE);
      expect(result.stdout).toBe('');
      expect(result.code).toBe(2);
    }
    expect(await world.snapshot()).toEqual(before);
  }, 300_000);
});
